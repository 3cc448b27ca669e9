"""Lightning's messages a user can act on reach them; its advertisements for other products do not."""

from __future__ import annotations

import logging

from mnist_lightning.cli.exit import not_an_advert, silence_library_noise


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("lightning.pytorch.utilities.rank_zero", logging.INFO, __file__, 0, message, None, None)


def test_lightnings_tips_are_dropped_and_its_other_info_kept() -> None:
    """Checked through the logger's own filtering (what ``rank_zero_info`` goes through), not through a handler:
    a server test's logging configuration may have disabled the logger's output by then."""
    silence_library_noise()
    silence_library_noise()  # twice: one filter, not two
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert rank_zero.filters.count(not_an_advert) == 1
    assert not rank_zero.filter(record("💡 Tip: For seamless cloud logging, try installing [litlogger]"))
    assert rank_zero.filter(record("GPU available: False, used: False"))
