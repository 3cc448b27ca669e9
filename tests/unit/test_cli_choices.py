"""What the CLI decides before anything trains: threads per process, and which subcommand's trainer gets which
callbacks."""

from __future__ import annotations

import os

import pytest
from jsonargparse import Namespace

from mnist_lightning.callbacks import ClassReport, CSVPredictionWriter, TensorBoardPictures
from mnist_lightning.cli.choices import cpu_threads, switch_callbacks


@pytest.mark.parametrize(
    ("threads", "model", "devices", "expected"),
    [
        ("auto", "mnist_lightning.LitLogReg", "auto", 1),
        ("auto", "mnist_lightning.LitMLP", 1, 1),
        ("auto", "mnist_lightning.LitCNN", "auto", "cores"),
        ("auto", "mnist_lightning.models.LitCNN", 2, "half"),
        (3, "mnist_lightning.LitCNN", "auto", 3),
        ("auto", "not_a_module.Model", "auto", 1),
    ],
)
def test_auto_threads_are_one_for_linear_models_and_every_core_for_the_cnn(
    threads, model, devices, expected, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    config = Namespace(torch_threads=threads, model=Namespace(class_path=model), trainer=Namespace(devices=devices))
    cores = len(os.sched_getaffinity(0))
    wanted = {"cores": cores, "half": max(1, cores // 2)}.get(expected, expected)
    assert cpu_threads(config) == wanted


def test_a_callback_of_one_subcommand_is_left_out_of_the_others_trainers() -> None:
    own = [ClassReport(), CSVPredictionWriter(), TensorBoardPictures()]

    def kinds(subcommand: str | None) -> set[str]:
        kept = switch_callbacks(subcommand, {"enable_progress_bar": False}, own, resumed=False)
        return {type(callback).__name__ for callback in kept}

    assert kinds("fit") == kinds("validate") == {"TensorBoardPictures"}
    assert kinds("test") == {"ClassReport", "TensorBoardPictures"}
    assert kinds("predict") == {"CSVPredictionWriter", "TensorBoardPictures"}
    assert kinds(None) == {"ClassReport", "CSVPredictionWriter", "TensorBoardPictures"}


def test_auto_threads_share_the_cores_among_torchrun_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    config = Namespace(torch_threads="auto", model=Namespace(class_path="mnist_lightning.LitCNN"))
    config.trainer = Namespace(devices="auto")  # torchrun's processes per machine are in LOCAL_WORLD_SIZE
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu_threads(config) == max(1, len(os.sched_getaffinity(0)) // 2)


@pytest.mark.parametrize(("omp", "expected"), [("1", 1), ("0", "cores"), ("two", "cores"), ("", "cores")])
def test_auto_threads_stay_within_omp_num_threads(monkeypatch: pytest.MonkeyPatch, omp: str, expected) -> None:
    config = Namespace(torch_threads="auto", model=Namespace(class_path="mnist_lightning.LitCNN"))
    config.trainer = Namespace(devices="auto")
    monkeypatch.setenv("OMP_NUM_THREADS", omp)
    cores = len(os.sched_getaffinity(0))
    assert cpu_threads(config) == (cores if expected == "cores" else expected)
    config.torch_threads = 3
    assert cpu_threads(config) == 3, "a number given on the command line is taken as it is"
