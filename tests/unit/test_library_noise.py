"""Lightning's messages a user can act on reach them; its advertisements for other products do not."""

from __future__ import annotations

import logging

import pytest
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from mnist_lightning.cli.exit import silence_library_noise


def test_lightnings_tips_are_dropped_and_its_other_info_kept(caplog: pytest.LogCaptureFixture) -> None:
    silence_library_noise()
    silence_library_noise()  # twice: one filter, not two
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert len(rank_zero.filters) == 1
    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"):
        rank_zero_info("💡 Tip: For seamless cloud logging, try installing [litlogger]")
        rank_zero_info("GPU available: False, used: False")
    assert [record.getMessage() for record in caplog.records] == ["GPU available: False, used: False"]
