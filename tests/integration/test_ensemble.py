"""Ensembles: the model (mean of calibrated probabilities), the vetting of their nested members, and the
``mnist-ensemble`` command whose checkpoint loads, predicts, exports and tests like any."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
import torch
from drawing import draw_digit
from fastapi.testclient import TestClient
from helpers import nudge_weights, quiet_trainer
from litserve.utils import wrap_litserve_start
from PIL import Image
from serve_helpers import drawing

from mnist_lightning.checkpoint import build_model
from mnist_lightning.commands import ensemble, export
from mnist_lightning.commands.runner import run
from mnist_lightning.data import MNISTDataModule
from mnist_lightning.errors import CheckpointError, ConfigError
from mnist_lightning.inference import classify, load_model, predict_images
from mnist_lightning.models import ALLOWLIST, LitCNN, LitEnsemble, LitLogReg
from mnist_lightning.models import ensemble as ensemble_module
from mnist_lightning.serve.app import create_server


def _roundtrip(checkpoint: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _pair() -> tuple[LitCNN, LitLogReg]:
    torch.manual_seed(0)
    cnn, linear = LitCNN(channels=(4,), kernel_sizes=(3,), hidden_dim=0).eval(), LitLogReg().eval()
    cnn.temperature.fill_(0.5)
    linear.set_input_statistics(0.1, 0.3)
    return cnn, linear


def test_an_ensemble_answers_the_mean_of_its_members_calibrated_probabilities() -> None:
    cnn, linear = _pair()
    ensemble = LitEnsemble.of([cnn, linear]).eval()
    images = torch.rand(5, 1, 28, 28)
    mean = (cnn.probabilities(images) + linear.probabilities(images)) / 2
    assert torch.allclose(ensemble.probabilities(images), mean, atol=1e-6)
    ensemble.temperature.fill_(2.0)
    assert torch.allclose(ensemble.probabilities(images), (mean.log() / 2).softmax(dim=1), atol=1e-6)
    assert torch.equal(ensemble.probabilities(images).argmax(1), mean.argmax(1)), "a temperature keeps the answer"


def test_an_ensemble_checkpoint_is_rebuilt_from_vetted_members_with_their_own_temperatures() -> None:
    cnn, linear = _pair()
    ensemble = LitEnsemble.of([cnn, linear]).eval()
    checkpoint = _roundtrip({"state_dict": ensemble.state_dict(), "hyper_parameters": dict(ensemble.hparams)})
    rebuilt = build_model(checkpoint, ALLOWLIST).eval()
    assert [type(m) for m in rebuilt.members] == [LitCNN, LitLogReg]
    assert float(rebuilt.members[0].temperature) == 0.5
    assert float(rebuilt.members[1].input_std) == pytest.approx(0.3)
    images = torch.rand(3, 1, 28, 28)
    assert torch.allclose(rebuilt(images), ensemble(images))


def test_a_members_zero_temperature_is_refused_when_the_ensemble_loads() -> None:
    ensemble = LitEnsemble.of(list(_pair()))
    state = {name: tensor.clone() for name, tensor in ensemble.state_dict().items()}
    state["members.1.temperature"].fill_(0.0)
    with pytest.raises(CheckpointError, match=r"members\.1\.temperature is 0, expected a fitted temperature"):
        build_model({"state_dict": state, "hyper_parameters": dict(ensemble.hparams)}, ALLOWLIST)


def _ensemble_hparams(members: object) -> dict:
    return {"_class_path": "mnist_lightning.LitEnsemble", "members": members, "num_classes": 10}


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ("mnist_lightning.LitLogReg", "expected a list of 1-16"),
        ([{"_class_path": "mnist_lightning.LitLogReg"}] * 17, "members holds 17 models, expected 1-16"),
        ([{"_class_path": "mnist_lightning.LitLogReg"}, "mnist_lightning.LitCNN"], "members[1] is 'mnist_lightning"),
        ([{"_class_path": "mnist_lightning.LitLogReg"}, {}], "members[1] is {}, expected a model's hyperparameters"),
        ([{"_class_path": "os.system"}], "names model class 'os.system'"),
        ([{"_class_path": "mnist_lightning.LitLogReg", "lr_lambda": "os._exit"}], "no argument 'lr_lambda'"),
        ([{"_class_path": "mnist_lightning.LitLogReg"}, {"_class_path": ["a"]}], "names model class ['a']"),
        ([_ensemble_hparams([{"_class_path": "mnist_lightning.LitLogReg"}] * 2)] * 2, "nests models itself"),
        ([{"_class_path": "mnist_lightning.LitLogReg"}], "at least 2 members"),
        ([{"_class_path": "mnist_lightning.LitLogReg", "num_classes": 5}] * 2, "num_classes 10"),
    ],
)
def test_an_ensemble_checkpoint_with_bad_members_is_refused_before_anything_is_built(
    members: object, message: str
) -> None:
    with pytest.raises(CheckpointError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_model({"state_dict": {}, "hyper_parameters": _ensemble_hparams(members)}, ALLOWLIST)


def test_the_members_together_may_not_exceed_one_models_parameter_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ensemble_module, "MAX_PARAMETERS", 10_000)  # a LitLogReg has 7,850
    hparams = _ensemble_hparams([{"_class_path": "mnist_lightning.LitLogReg"}] * 2)
    with pytest.raises(CheckpointError, match="more than the 10,000 parameters one model may have, together"):
        build_model({"state_dict": {}, "hyper_parameters": hparams}, ALLOWLIST)


def test_a_value_nested_too_deep_to_print_is_refused_in_one_line() -> None:
    deep: object = 1
    for _ in range(5_000):
        deep = [deep]
    member = {"_class_path": "mnist_lightning.LitCNN", "channels": deep}
    with pytest.raises(CheckpointError, match="channels holds a list nested too deep to show"):
        build_model({"state_dict": {}, "hyper_parameters": _ensemble_hparams([member] * 2)}, ALLOWLIST)


def test_an_ensemble_nesting_ensembles_without_end_is_refused_at_once() -> None:
    deep: object = [{"_class_path": "mnist_lightning.LitLogReg"}] * 2
    for _ in range(5_000):  # deeper than Python's recursion limit: refused at the first level, never recursed into
        deep = [_ensemble_hparams(deep)] * 2
    with pytest.raises(CheckpointError, match="nests models itself"):
        build_model({"state_dict": {}, "hyper_parameters": _ensemble_hparams(deep)}, ALLOWLIST)


def _fit(root: Path, data_dir: Path, model: torch.nn.Module, seed: int = 42) -> Path:
    trainer = quiet_trainer(root, max_steps=6)
    trainer.fit(model, MNISTDataModule(data_dir=data_dir, download=False, val_size=200, batch_size=100, seed=seed))
    path = root / "model.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path) -> list[Path]:
    """Two small CNNs from different random starts on the same split, and a LitLogReg on another split."""
    paths = []
    for name, seed in (("a", 1), ("b", 2)):
        torch.manual_seed(seed)
        model = LitCNN(channels=(4, 8), kernel_sizes=(3, 3), hidden_dim=16, batch_norm=True)
        paths.append(_fit(tmp_path_factory.mktemp(name), synthetic_dir, model))
    paths.append(_fit(tmp_path_factory.mktemp("other_split"), synthetic_dir, LitLogReg(), seed=7))
    return paths


@pytest.fixture(scope="module")
def assembled(members: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ensemble") / "ensemble.ckpt"
    assert run(ensemble.main, ["--ckpt", str(members[0]), str(members[1]), "--out", str(out)]) == 0
    return out


def test_the_command_writes_an_ensemble_that_loads_and_predicts_like_any_model(
    members: list[Path], assembled: Path, synthetic_dir: Path
) -> None:
    model = load_model(assembled)
    assert isinstance(model, LitEnsemble)
    assert not model.training
    assert [type(m) for m in model.members] == [LitCNN, LitCNN]
    assert float(model.temperature) != 1.0, "the ensemble's own temperature is fitted on the validation split"
    images = MNISTDataModule(data_dir=synthetic_dir, download=False, val_size=200).split("val")[0][:8]
    expected = sum(load_model(path).probabilities(images) for path in members[:2]) / 2
    assert torch.equal(model(images).argmax(1), expected.argmax(1))
    answer = predict_images(model, [draw_digit(3), draw_digit(7)])
    assert torch.allclose(answer.probabilities.sum(1), torch.ones(2))


def test_the_command_reports_each_members_validation_accuracy(members: list[Path], tmp_path: Path, capsys) -> None:
    assert run(ensemble.main, ["--ckpt", str(members[0]), str(members[1]), "--out", str(tmp_path / "e.ckpt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:4]] == [str(members[0]), str(members[1]), "ensemble"]
    assert all(line.split()[1].endswith("%") for line in lines[1:4])
    assert lines[-1].startswith(f"wrote {tmp_path / 'e.ckpt'}: 2 members")


def test_predict_export_and_train_py_test_take_an_ensemble(
    assembled: Path, synthetic_dir: Path, tmp_path: Path, run_cli, capsys
) -> None:
    image = tmp_path / "three.png"
    draw_digit(3).save(image)
    rows = classify(str(assembled), [str(image)])
    assert rows[0]["file"] == str(image)
    assert 0 <= rows[0]["label"] <= 9
    onnx = tmp_path / "ensemble.onnx"
    assert run(export.main, ["--ckpt", str(assembled), "--format", "onnx", "--out", str(onnx)]) == 0
    assert onnx.stat().st_size > 0
    assert run(export.main, ["--ckpt", str(assembled), "--format", "state_dict", "--out", str(tmp_path / "s.pt")]) == 2
    assert "export it with --format onnx or --format torch_export" in capsys.readouterr().err
    assert not (tmp_path / "s.pt").exists()
    capsys.readouterr()
    assert run_cli("test", "--ckpt_path", str(assembled), "--data.data_dir", str(synthetic_dir)) == 0
    assert "test/acc" in capsys.readouterr().out
    assert run_cli("predict", "--ckpt_path", str(assembled), "--data.data_dir", str(synthetic_dir)) == 0
    (written,) = tmp_path.glob("lightning_logs/version_*/predictions.csv")
    assert len(written.read_text().splitlines()) == 301, "a header and the 300 test digits"


def test_the_server_answers_with_an_ensemble(assembled: Path) -> None:
    with wrap_litserve_start(create_server(assembled)) as started, TestClient(started.app) as client:
        response = client.post("/predict", content=drawing(), headers={"Content-Type": "image/png"})
        info = client.get("/info").json()["model"]
    assert response.status_code == 200, response.text
    expected = predict_images(load_model(assembled), Image.open(io.BytesIO(drawing())))
    assert response.json()["label"] == int(expected.labels[0])
    assert torch.allclose(torch.tensor(response.json()["probabilities"]), expected.probabilities[0], atol=1e-5)
    assert info["model_class"] == "LitEnsemble"


def test_an_ensemble_cannot_be_fitted(assembled: Path, synthetic_dir: Path, run_cli, capsys) -> None:
    assert run_cli("fit", "--ckpt_path", str(assembled), "--data.data_dir", str(synthetic_dir)) == 2
    assert "assembled from trained checkpoints, not fitted" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not fitted"):
        load_model(assembled).setup("fit")


@pytest.mark.parametrize(
    ("choose", "message"),
    [
        (lambda m, e, t: [m[0], m[0]], "given twice"),
        (lambda m, e, t: [m[0], m[2]], "different validation splits (data.seed 42 vs 7)"),
        (lambda m, e, t: [m[0], e], "is an ensemble already"),
        (lambda m, e, t: [m[0], t / "missing.ckpt"], "does not exist"),
        (lambda m, e, t: [m[0], ""], "argument --ckpt: an empty name"),
    ],
)
def test_the_command_refuses_members_that_make_no_ensemble(
    members: list[Path], assembled: Path, tmp_path: Path, capsys, choose, message: str
) -> None:
    out = tmp_path / "out.ckpt"
    assert run(ensemble.main, ["--ckpt", *map(str, choose(members, assembled, tmp_path)), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_the_command_refuses_one_member_and_never_writes_over_a_member(members: list[Path], capsys) -> None:
    before = members[0].read_bytes()
    assert run(ensemble.main, ["--ckpt", str(members[0]), "--out", str(members[0])]) == 2
    assert "--ckpt needs at least 2 checkpoints" in capsys.readouterr().err
    assert run(ensemble.main, ["--ckpt", str(members[0]), str(members[1]), "--out", str(members[0])]) == 2
    assert "is one of the members" in capsys.readouterr().err
    assert members[0].read_bytes() == before


def test_a_folder_stands_for_the_best_checkpoint_of_its_latest_run(shared_run: Path, tmp_path: Path, capsys) -> None:
    for shift, name in enumerate(("seed1", "seed2")):
        shutil.copytree(shared_run / "lightning_logs", tmp_path / name / "lightning_logs")
        nudge_weights(tmp_path / name, shift)
    assert (
        run(
            ensemble.main,
            ["--ckpt", str(tmp_path / "seed1"), str(tmp_path / "seed2"), "--out", str(tmp_path / "e.ckpt")],
        )
        == 0
    )
    members = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:3]]
    assert [Path(m).parts[-5] for m in members] == ["seed1", "seed2"]
    assert all(Path(m).name.startswith("epoch") for m in members), "the best checkpoint, not last.ckpt"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(ensemble.main, ["--ckpt", str(tmp_path / "seed1"), str(empty), "--out", str(tmp_path / "f.ckpt")]) == 2
    assert f"{empty} holds no run with a best checkpoint: pass a .ckpt file" in capsys.readouterr().err


def test_a_copy_of_a_member_or_a_damaged_member_is_refused(members: list[Path], tmp_path: Path, capsys) -> None:
    copy = tmp_path / "copy.ckpt"
    shutil.copyfile(members[0], copy)
    assert run(ensemble.main, ["--ckpt", str(members[0]), str(copy), "--out", str(tmp_path / "e.ckpt")]) == 2
    assert f"{members[0]} and {copy} hold the same model" in capsys.readouterr().err
    recalibrated = torch.load(members[0], weights_only=True)
    recalibrated["state_dict"]["temperature"].mul_(1.5)  # the same weights made to sound surer
    torch.save(recalibrated, copy)
    assert run(ensemble.main, ["--ckpt", str(members[0]), str(copy), "--out", str(tmp_path / "e.ckpt")]) == 2
    assert f"{members[0]} and {copy} hold the same model" in capsys.readouterr().err
    checkpoint = torch.load(members[1], weights_only=True)
    checkpoint["state_dict"]["net.0.weight"].fill_(float("nan"))
    torch.save(checkpoint, tmp_path / "nan.ckpt")
    assert (
        run(ensemble.main, ["--ckpt", str(members[0]), str(tmp_path / "nan.ckpt"), "--out", str(tmp_path / "e.ckpt")])
        == 2
    )
    assert "The checkpoint's net.0.weight hold NaN or infinite values: it is damaged" in capsys.readouterr().err
    checkpoint = torch.load(members[1], weights_only=True)
    checkpoint["state_dict"]["temperature"].fill_(0.0)
    torch.save(checkpoint, tmp_path / "cold.ckpt")
    assert (
        run(ensemble.main, ["--ckpt", str(members[0]), str(tmp_path / "cold.ckpt"), "--out", str(tmp_path / "e.ckpt")])
        == 2
    )
    assert "The checkpoint's temperature is 0, expected a fitted temperature" in capsys.readouterr().err
    assert not (tmp_path / "e.ckpt").exists()


def test_the_command_says_where_it_looked_for_the_data(members: list[Path], tmp_path: Path, capsys) -> None:
    """Data that cannot be read fails the command (1), as for every command; the checkpoints were fine."""
    out = tmp_path / "e.ckpt"
    code = run(ensemble.main, ["--ckpt", *map(str, members[:2]), "--out", str(out), "--data.data_dir", str(tmp_path)])
    assert code == 1
    assert f"no mnist files in {tmp_path / 'MNIST' / 'raw'}: pass --data.data_dir" in capsys.readouterr().err
    assert not out.exists()


def test_a_validation_size_given_as_a_fraction_is_the_same_split_as_its_count(
    members: list[Path], tmp_path: Path
) -> None:
    """One member wrote ``val_size`` as a count, the other as the fraction of the 60,000 images it rounds to."""
    checkpoint = torch.load(members[1], weights_only=True)
    checkpoint["datamodule_hyper_parameters"]["val_size"] = 200 / 60_000
    torch.save(checkpoint, tmp_path / "fraction.ckpt")
    out = tmp_path / "e.ckpt"
    assert run(ensemble.main, ["--ckpt", str(members[0]), str(tmp_path / "fraction.ckpt"), "--out", str(out)]) == 0
    assert out.is_file()
