"""A ``--config`` or checkpoint file that is empty, no YAML, no mapping, or no regular file at all (a FIFO, a link to
``/dev/zero``) is refused in one line that names the file and says what it is, never read for ever."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import best_checkpoint

from mnist_lightning.commands import export, predict
from mnist_lightning.commands.runner import run
from mnist_lightning.tune.space import load_search


@pytest.fixture(autouse=True)
def never_for_ever() -> Iterator[None]:
    """Reading a FIFO waits for a writer: such a read fails the test instead of hanging it."""

    def stop(*args: object) -> None:
        raise TimeoutError("a read waited for ever")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


CONFIGS = {
    "empty": ("", "is empty: expected a mapping of options"),
    "comment-only": ("# nothing\n", "is empty: expected a mapping of options"),
    "malformed": ("trainer:\n  max_epochs: [1\n", "not valid YAML, line 3 column 1"),
    "tab": ("trainer:\n\tmax_epochs: 1\n", "not valid YAML, line 2 column 1"),
    "a-list": ("- a\n- b\n", "holds list"),
    "a-scalar-section": ("trainer: 3\n", "trainer is 3, expected a mapping of trainer options"),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_a_bad_config_file_is_named_with_its_line(case: str, run_cli, tmp_path: Path, capsys) -> None:
    text, said = CONFIGS[case]
    (tmp_path / "bad.yaml").write_text(text)
    assert run_cli("fit", "--config", "bad.yaml") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --config bad.yaml"), err
    assert said in err, err
    assert err.count("\n") == 1, err


def special_file(tmp_path: Path, kind: str, name: str) -> Path:
    path = tmp_path / name
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    return path


SAID = {"fifo": "is not a regular file (a FIFO)", "dev-zero": "is not a regular file (a character device)"}


@pytest.mark.parametrize("kind", list(SAID))
def test_a_special_config_file_says_what_it_is(kind: str, run_cli, tmp_path: Path, capsys) -> None:
    special_file(tmp_path, kind, "config.yaml")
    assert run_cli("fit", "--config", "config.yaml") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --config config.yaml {SAID[kind]}"), err
    assert err.count("\n") == 1


@pytest.mark.parametrize("kind", list(SAID))
def test_a_special_search_file_says_what_it_is(kind: str, tmp_path: Path) -> None:
    path = special_file(tmp_path, kind, "search.yaml")
    with pytest.raises(ValueError, match=re.escape(f"--config {path} {SAID[kind]}")):
        load_search(path, {})


@pytest.mark.parametrize("kind", list(SAID))
@pytest.mark.parametrize("command", ["train", "predict", "export"])
def test_a_special_checkpoint_says_what_it_is(kind: str, command: str, run_cli, tmp_path: Path, capsys) -> None:
    path = special_file(tmp_path, kind, "model.ckpt")
    if command == "train":
        code = run_cli("test", "--ckpt_path", str(path))
    elif command == "predict":
        code = run(predict.main, ["--ckpt", str(path), "digit.png"])
    else:
        code = run(export.main, ["--ckpt", str(path), "--out", str(tmp_path / "model.pt")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path} {SAID[kind]}"), err
    assert err.count("\n") == 1


@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), 100.0])
def test_a_damaged_temperature_reads_the_same_in_every_command(
    shared_run: Path, synthetic_dir: Path, run_cli, tmp_path: Path, capsys, temperature: float
) -> None:
    checkpoint = torch.load(best_checkpoint(shared_run), weights_only=True)
    checkpoint["state_dict"]["temperature"] = torch.tensor(temperature)
    path = tmp_path / "damaged.ckpt"
    torch.save(checkpoint, path)
    said = []
    assert run_cli("test", "--ckpt_path", str(path), "--data.data_dir", str(synthetic_dir)) == 2
    said.append(capsys.readouterr().err)
    assert run(predict.main, ["--ckpt", str(path), "digit.png"]) == 2
    said.append(capsys.readouterr().err)
    assert run(export.main, ["--ckpt", str(path), "--out", str(tmp_path / "model.pt")]) == 2
    said.append(capsys.readouterr().err)
    expected = f"The checkpoint's temperature is {temperature:g}, expected a fitted temperature of 0.25-4.0"
    assert said[0] == f"error: {expected}: it is damaged.\n"
    assert said == [said[0]] * 3, said
