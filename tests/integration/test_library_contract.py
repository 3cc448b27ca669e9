"""Every private library attribute this project relies on, one test each: an upgrade that removes one, or stops
calling it, fails here with the reason, instead of somewhere deep in a run.

Each test's docstring says which file uses the attribute, what for, and why no public hook does the job. When
you replace a private use with a public one, delete its test here; when you add one, add its test here.
Sections: Lightning's CLI, Lightning's loops, torch's TensorBoard writer, the Python runtime (others: Optuna,
LitServe, append below).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import lightning as L
from helpers import quiet_trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.demos.boring_classes import BoringModel

# --- Lightning: LightningCLI ------------------------------------------------------------------------------


def test_lightning_cli_parse_ckpt_path_is_called_after_parsing(synthetic_dir: Path, tmp_path: Path) -> None:
    """``LightningCLI._parse_ckpt_path`` (mnist_lightning/cli/app.py overrides it with nothing).

    LightningCLI's own version reads the checkpoint again and hands its raw hyperparameters to jsonargparse,
    which imports and calls what they name. The public ``adapt_checkpoint_hparams`` runs only after that read,
    so the override is the only way to keep a checkpoint from being read twice and interpreted as code. If
    Lightning renames it, the override silently stops replacing it: this test sees the call go away.
    """
    from mnist_lightning.cli.app import MNISTCLI

    assert callable(getattr(LightningCLI, "_parse_ckpt_path", None)), "LightningCLI._parse_ckpt_path is gone"
    with mock.patch.object(MNISTCLI, "_parse_ckpt_path") as parse_ckpt_path:
        MNISTCLI(args=["--data.data_dir", str(synthetic_dir), "--trainer.default_root_dir", str(tmp_path)], run=False)
    parse_ckpt_path.assert_called_once_with()


def test_lightning_cli_instantiate_trainer_takes_config_and_callbacks() -> None:
    """``LightningCLI._instantiate_trainer(config, callbacks)`` (mnist_lightning/cli/app.py ``instantiate_trainer``).

    The public ``instantiate_trainer`` takes the callbacks from every ``add_lightning_class_args`` key, ``None``
    included (a callback switched off with ``--pictures null``), and no public hook filters them; the private
    step below it adds the trainer defaults' callbacks and the save-config callback, which this CLI needs too.
    """
    assert list(inspect.signature(LightningCLI._instantiate_trainer).parameters) == ["self", "config", "callbacks"]
    ours, always = Callback(), Callback()
    trainer_class = mock.Mock()
    fake_cli = SimpleNamespace(
        trainer_defaults={"callbacks": [always]}, save_config_callback=None, trainer_class=trainer_class
    )
    LightningCLI._instantiate_trainer(fake_cli, {"callbacks": [], "max_epochs": 3}, [ours])
    trainer_class.assert_called_once_with(callbacks=[ours, always], max_epochs=3)


# --- Lightning: the fit loop's progress counters ----------------------------------------------------------


class RecordProgress(Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        loop = trainer.fit_loop
        self.seen.append((loop.total_batch_idx, loop.epoch_loop.batch_progress.current.processed))


def test_fit_loop_counts_batches_where_the_data_module_reads_them(tmp_path: Path) -> None:
    """``trainer.fit_loop.total_batch_idx`` and ``fit_loop.epoch_loop.batch_progress.current.processed``
    (mnist_lightning/data/datamodule.py: the seed of a batch's augmentation, and the position a mid-epoch
    checkpoint resumes the loader at).

    Lightning's loop classes are private (``_FitLoop``, ``_TrainingEpochLoop``) and no public Trainer attribute
    counts the batches trained (``global_step`` counts optimizer steps: with gradient accumulation it differs).
    """
    record = RecordProgress()
    trainer = quiet_trainer(
        tmp_path,
        max_epochs=2,
        limit_train_batches=3,
        limit_val_batches=0,
        enable_checkpointing=False,
        callbacks=[record],
    )
    trainer.fit(BoringModel())
    assert record.seen == [(0, 1), (1, 2), (2, 3), (3, 1), (4, 2), (5, 3)]


# --- torch: TensorBoard's SummaryWriter ---------------------------------------------------------------------


def test_summary_writer_hands_out_its_file_writer(tmp_path: Path) -> None:
    """``SummaryWriter._get_file_writer()`` (mnist_lightning/callbacks/tensorboard.py ``HParamsMetrics``).

    The public ``add_hparams`` writes the hyperparameters into a new sub-run folder; TensorBoard's HParams tab
    needs them in the run's own event file, which only the file writer (as Lightning's TensorBoardLogger also
    uses it) can add a summary to.
    """
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    try:
        file_writer = writer._get_file_writer()
        assert callable(getattr(file_writer, "add_summary", None)), "FileWriter.add_summary is gone"
    finally:
        writer.close()
