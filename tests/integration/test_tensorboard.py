"""What a run shows in TensorBoard, read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import FAST, best_checkpoint, quiet_trainer, run_folder
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torchmetrics.classification import MulticlassF1Score

from mnist_lightning import LitCNN, LitLogReg, LitMLP, MNISTDataModule
from mnist_lightning.callbacks import ClassReport, HParamsMetrics, TensorBoardPictures
from mnist_lightning.callbacks.tensorboard import filters_to_draw


def events(run: Path) -> EventAccumulator:
    (path,) = run.glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(path), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


@pytest.fixture
def fitted(run_cli, synthetic_dir: Path, tmp_path: Path) -> Path:
    args = ("--data.data_dir", str(synthetic_dir), *FAST, "--pictures.every_n_epochs", "1")
    assert run_cli("fit", *args) == 0
    return tmp_path / "lightning_logs"


def test_fit_logs_scalars_learning_rate_and_hparams_metric(fitted: Path) -> None:
    run = events(fitted / "version_0")
    scalars = set(run.Tags()["scalars"])
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "hp/best_val_acc"} <= scalars
    assert any(tag.startswith("lr-") for tag in scalars), "LearningRateMonitor is on by default"
    assert "hp_metric" not in scalars, "no stuck placeholder"
    assert "epoch" not in scalars, "no epoch card before the accuracy and loss (TensorBoard orders cards by name)"
    assert [e.step for e in run.Scalars("val/acc")] == [9, 19]
    best = run.Scalars("hp/best_val_acc")[-1].value
    assert best == pytest.approx(max(e.value for e in run.Scalars("val/acc")))
    assert run.summary_metadata["_hparams_/session_start_info"].plugin_data.plugin_name == "hparams"
    session = run.summary_metadata["_hparams_/session_start_info"].plugin_data.content
    for setting in (b"lr", b"optimizer", b"Adam", b"data.batch_size", b"LitLogReg"):
        assert setting in session
    for setting in (b"data.extra_dirs", b"data.extra_repeats", b"init_from"):  # what a fine-tune changes
        assert setting in session
    assert b"_instantiator" not in session, "only settings that tell runs apart"


def test_a_fine_tune_names_its_base_checkpoint_in_hparams() -> None:
    fine_tune = HParamsMetrics.comparable(LitLogReg(init_from="lightning_logs/version_0/checkpoints/last.ckpt"), None)
    assert fine_tune["init_from"] == "lightning_logs/version_0/checkpoints/last.ckpt"
    assert HParamsMetrics.comparable(LitLogReg(), None)["init_from"] == "none", "a run from scratch"


def test_fit_draws_legible_pictures_each_epoch(fitted: Path) -> None:
    run = events(fitted / "version_0")
    images = {tag: run.Images(tag) for tag in run.Tags()["images"]}
    assert set(images) == {"val/confusion_matrix", "val/filters", "val/most_confident_mistakes"}
    for tag, drawn in images.items():
        assert [e.step for e in drawn] == [10, 20], tag  # after epochs 1 and 2 (global step)
        assert all(e.width >= 400 and e.height >= 100 for e in drawn), tag  # readable at TensorBoard's size


def test_test_run_logs_pictures_per_class_metrics_and_a_table(
    trained: Path, synthetic_dir: Path, run_cli, capsys
) -> None:
    assert run_cli("test", "--ckpt_path", str(best_checkpoint(trained)), "--data.data_dir", str(synthetic_dir)) == 0
    out = capsys.readouterr().out
    assert "macro F1" in out
    assert "0 - zero" in out
    run = events(run_folder(trained, 1))
    scalars = set(run.Tags()["scalars"])
    assert {f"test/acc_class_{k}" for k in range(10)} | {"test/f1_macro", "hp/test_acc", "test/acc"} <= scalars
    assert set(run.Tags()["images"]) == {"test/confusion_matrix", "test/filters", "test/most_confident_mistakes"}


def test_default_run_draws_only_the_final_state(shared_run: Path) -> None:
    run = events(run_folder(shared_run))
    assert [e.step for e in run.Images("val/confusion_matrix")] == [20]
    (matrix,) = run.Images("val/confusion_matrix")
    assert (matrix.width, matrix.height) == (562, 626)


def test_pictures_can_be_switched_off_one_by_one_or_all(run_cli, synthetic_dir: Path, tmp_path: Path) -> None:
    base = ("--data.data_dir", str(synthetic_dir), *FAST)
    assert run_cli("fit", *base, "--pictures.mistakes", "false", "--pictures.filters", "false") == 0
    assert events(tmp_path / "lightning_logs" / "version_0").Tags()["images"] == ["val/confusion_matrix"]
    assert run_cli("fit", *base, "--pictures", "null", "--lr_monitor", "null") == 0
    assert events(tmp_path / "lightning_logs" / "version_1").Tags()["images"] == []


CSV_LOGGER = '{"class_path": "CSVLogger", "init_args": {"save_dir": "csv"}}'


@pytest.mark.parametrize("logger", ["false", CSV_LOGGER], ids=["no_logger", "csv_logger"])
def test_pictures_and_reports_are_harmless_without_tensorboard(
    run_cli, synthetic_dir: Path, tmp_path: Path, logger: str
) -> None:
    args = ("--data.data_dir", str(synthetic_dir), *FAST, "--trainer.logger", logger)
    assert run_cli("fit", *args, "--pictures.every_n_epochs", "1") == 0
    (best,) = tmp_path.rglob("epoch*.ckpt")
    assert run_cli("test", "--ckpt_path", str(best), "--trainer.logger", logger, *args[:2]) == 0
    assert not list(tmp_path.rglob("events.out.tfevents.*"))


def test_confusion_matrix_counts_every_evaluated_sample_once(synthetic_dir: Path, tmp_path: Path) -> None:
    pictures, report = TensorBoardPictures(), ClassReport(print_table=False)
    data = MNISTDataModule(data_dir=synthetic_dir, download=False, val_size=137, eval_batch_size=50)
    trainer = quiet_trainer(tmp_path, callbacks=[pictures, report], logger=True)
    model = LitMLP(hidden_dims=(16,), dropout=0.0)  # the direct computation below runs the model as it is
    trainer.validate(model, data)
    assert pictures._matrix.compute().sum().item() == 137
    results = trainer.test(model, data)[0]
    assert pictures._matrix.compute().sum().item() == 300
    assert report.metrics.compute()["counts"][:, 4].sum().item() == 300
    first_batch = next(iter(data.test_dataloader()))[0]
    all_images = torch.cat([b[0] for b in data.test_dataloader()])
    all_labels = torch.cat([b[1] for b in data.test_dataloader()])
    with torch.no_grad():
        f1 = MulticlassF1Score(10, average="macro")(model(all_images), all_labels).item()
    assert results["test/f1_macro"] == pytest.approx(f1, abs=1e-6)
    with torch.no_grad():
        hits = model(all_images).argmax(1) == all_labels
    for k in range(10):
        assert results[f"test/acc_class_{k}"] == pytest.approx(hits[all_labels == k].float().mean().item(), abs=1e-6)
    assert first_batch.shape[0] == 50


def test_linear_model_filters_are_its_ten_class_templates() -> None:
    weights, labels = filters_to_draw(LitLogReg())
    assert weights.shape == (10, 28, 28)
    assert labels[3] == "class 3"
    weights, labels = filters_to_draw(LitMLP())
    assert weights.shape == (16, 28, 28)
    assert all(label.startswith("unit ") for label in labels)
    weights, labels = filters_to_draw(LitCNN(channels=(8, 16), kernel_sizes=(5, 3)))
    assert weights.shape == (8, 5, 5), "the CNN shows its first convolution's kernels, even fewer than ten"
    assert all(label.startswith("unit ") for label in labels)


def test_cnn_fit_draws_its_first_kernels(run_cli, synthetic_dir: Path, tmp_path: Path) -> None:
    model = ("--model", "LitCNN", "--model.channels", "[4, 8]", "--model.hidden_dim", "16")
    assert (
        run_cli("fit", "--data.data_dir", str(synthetic_dir), *FAST, *model, "--trainer.limit_train_batches", "2") == 0
    )
    assert "val/filters" in events(run_folder(tmp_path)).Tags()["images"]
