"""Lightning's messages a user can act on reach them; its advertisements for other products do not."""

from __future__ import annotations

import logging

from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_only

from mnist_lightning.cli.exit import not_an_advert, silence_library_noise


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_lightnings_tips_are_dropped_and_its_other_info_kept(monkeypatch) -> None:
    silence_library_noise()
    silence_library_noise()  # twice: one filter, not two
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert rank_zero.filters.count(not_an_advert) == 1
    kept = Kept()
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    monkeypatch.setattr(rank_zero, "level", logging.INFO)
    rank_zero.addHandler(kept)  # on the logger itself: Lightning's loggers need not propagate to pytest's
    try:
        rank_zero_info("💡 Tip: For seamless cloud logging, try installing [litlogger]")
        rank_zero_info("GPU available: False, used: False")
    finally:
        rank_zero.removeHandler(kept)
    assert kept.messages == ["GPU available: False, used: False"]
