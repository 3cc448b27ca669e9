"""Using a trained model: loading, preprocessing, predicting files, exports, the predictions CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from drawing import draw_digit
from helpers import quiet_trainer
from PIL import Image

from mnist_lightning.commands import export, predict
from mnist_lightning.commands.runner import run
from mnist_lightning.data import MNISTDataModule
from mnist_lightning.exporting import export as export_checkpoint
from mnist_lightning.images import ImageError
from mnist_lightning.inference import load_model, predict_image, predict_images
from mnist_lightning.models import LitCNN, LitLogReg, LitMLP, cnn_layers


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path) -> Path:
    """A LitLogReg checkpoint trained briefly on synthetic data through the CLI."""
    root = tmp_path_factory.mktemp("trained")
    trainer = quiet_trainer(root, max_epochs=2)
    data = MNISTDataModule(data_dir=synthetic_dir, download=False, val_size=200, batch_size=100)
    trainer.fit(LitLogReg(), data)
    path = root / "model.ckpt"
    trainer.save_checkpoint(path)
    return path


# --- loading -------------------------------------------------------------------------------------------


def test_load_model_returns_the_right_class_in_eval_mode_with_its_normalization(
    checkpoint: Path, synthetic_dir: Path
) -> None:
    model = load_model(checkpoint)
    assert type(model) is LitLogReg
    assert not model.training
    data = MNISTDataModule(data_dir=synthetic_dir, download=False, val_size=200)
    data.setup()
    assert model.input_mean.item() == pytest.approx(data.input_mean)
    assert model.input_std.item() == pytest.approx(data.input_std)


def test_load_model_picks_the_mlp_class_from_the_checkpoint(synthetic_dir: Path, tmp_path: Path) -> None:
    trainer = quiet_trainer(tmp_path, max_steps=2)
    trainer.fit(LitMLP(hidden_dims=(8,)), MNISTDataModule(data_dir=synthetic_dir, download=False, val_size=200))
    trainer.save_checkpoint(tmp_path / "mlp.ckpt")
    model = load_model(tmp_path / "mlp.ckpt")
    assert type(model) is LitMLP
    assert list(model.hparams.hidden_dims) == [8]


@pytest.fixture(scope="module")
def cnn_checkpoint(tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path) -> Path:
    """A small LitCNN (with batch norm and pairs of convolutions) trained for a few steps on synthetic data."""
    root = tmp_path_factory.mktemp("cnn")
    trainer = quiet_trainer(root, max_steps=4)
    data = MNISTDataModule(data_dir=synthetic_dir, download=False, val_size=200, batch_size=100)
    trainer.fit(LitCNN(channels=(4, 8), kernel_sizes=(5, 3), hidden_dim=16, batch_norm=True, convs_per_block=2), data)
    path = root / "cnn.ckpt"
    trainer.save_checkpoint(path)
    return path


def test_load_model_and_predict_images_work_with_the_cnn(cnn_checkpoint: Path) -> None:
    model = load_model(cnn_checkpoint)
    assert type(model) is LitCNN
    assert list(model.hparams.channels) == [4, 8]
    assert model.input_std.item() != 1.0, "the training split's statistics travel in the checkpoint"
    assert model.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    result = predict_images(model, [draw_digit(3), draw_digit(8, paper="black", ink="white")])
    assert result.labels.shape == (2,)
    assert torch.allclose(result.probabilities.sum(1), torch.ones(2))


# --- predicting images -----------------------------------------------------------------------------


def test_tensors_are_batches_and_numpy_arrays_are_one_image(checkpoint: Path) -> None:
    model = load_model(checkpoint)
    digits = [np.asarray(draw_digit(d, size=40, canvas=(50, 60), at=(10, 5), mode="L")) for d in (1, 4, 8)]
    one_by_one = torch.stack([predict_images(model, d).probabilities[0] for d in digits])
    batch = torch.from_numpy(np.stack(digits))  # (3, H, W): three images, never one RGB image
    for layout in (batch, batch[:, None], batch.float() / 255):
        assert torch.allclose(predict_images(model, layout).probabilities, one_by_one, atol=1e-5)
    assert predict_images(model, batch[0]).probabilities.shape == (1, 10), "(H, W) is one image"
    rgb = np.array(draw_digit(4, size=40, canvas=(50, 60), at=(10, 5), ink="navy"))
    as_tensor = torch.from_numpy(rgb).permute(2, 0, 1)[None]  # (1, 3, H, W): one RGB image
    assert torch.allclose(predict_images(model, rgb).probabilities, predict_images(model, as_tensor).probabilities)


@pytest.mark.parametrize(("images", "message"), [([], "no images given"), (".", "is a folder"), (42, "got int")])
def test_no_images_or_a_folder_get_a_clear_error(checkpoint: Path, images, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        predict_images(load_model(checkpoint), images)


def test_inputs_can_be_paths_tensors_arrays_and_pil_images(checkpoint: Path, tmp_path: Path) -> None:
    image = draw_digit(5)
    image.save(tmp_path / "five.png")
    gray = np.array(image.convert("L"))
    model = load_model(checkpoint)
    inputs = [tmp_path / "five.png", str(tmp_path / "five.png"), image, gray, torch.from_numpy(gray)]
    inputs.append(torch.from_numpy(gray).float().div(255)[None])
    result = predict_images(model, inputs)
    assert result.probabilities.shape == (6, 10)
    assert torch.allclose(result.probabilities.sum(1), torch.ones(6))
    assert len(set(result.labels.tolist())) == 1, "the same picture in any form gets the same answer"
    assert predict_image(image, model) == result.labels[0].item()
    assert predict_images(model, image).labels.shape == (1,)


# --- the predict command ----------------------------------------------------------------------------------


def test_predict_command_classifies_files_and_folders_and_reports_bad_ones(
    checkpoint: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "digits"
    folder.mkdir()
    for digit in (1, 2):
        draw_digit(digit).save(folder / f"digit{digit}.png")
    draw_digit(3).save(tmp_path / "three.jpg")
    (tmp_path / "notes.png").write_text("not an image")
    Image.new("L", (40, 40), 255).save(tmp_path / "empty.png")
    Image.new("L", (7000, 6000), 255).save(tmp_path / "huge.png")
    inputs = [str(folder), str(tmp_path / "three.jpg"), str(tmp_path / "notes.png"), str(tmp_path / "empty.png")]
    inputs += [str(tmp_path / "huge.png"), str(tmp_path / "missing.png")]
    out_csv, out_json = tmp_path / "out.csv", tmp_path / "out.json"
    code = run(predict.main, ["--ckpt", str(checkpoint), *inputs, "--csv", str(out_csv), "--json", str(out_json)])
    assert code == 1, "some files failed"
    printed = capsys.readouterr()
    assert "4 of 7 files could not be classified" in printed.err
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert [Path(r["file"]).name for r in rows] == [
        "digit1.png",
        "digit2.png",
        "three.jpg",
        "notes.png",
        "empty.png",
        "huge.png",
        "missing.png",
    ]
    errors = {Path(r["file"]).name: r["error"] for r in rows if r["error"]}
    assert "not a readable image" in errors["notes.png"]
    assert "blank" in errors["empty.png"]
    assert "too large" in errors["huge.png"]
    assert "no such file" in errors["missing.png"]
    good = [r for r in rows if not r["error"]]
    assert all(0 <= int(r["label"]) <= 9 and 0 < float(r["probability"]) <= 1 for r in good)
    assert json.loads(out_json.read_text())[0]["file"].endswith("digit1.png")
    assert "digit1.png" in printed.out


def test_predict_command_reports_a_float_tiff_holding_nan_and_still_classifies_the_others(
    checkpoint: Path, tmp_path: Path, capsys
) -> None:
    draw_digit(6).save(tmp_path / "six.png")
    pixels = np.zeros((40, 40), dtype=np.float32)
    pixels[10:30, 18:22] = float("nan")
    Image.fromarray(pixels, mode="F").save(tmp_path / "nan.tiff")
    draw_digit(7).save(tmp_path / "seven.png")
    assert run(predict.main, ["--ckpt", str(checkpoint), str(tmp_path)]) == 1
    printed = capsys.readouterr()
    lines = {Path(line.split()[0]).name: line for line in printed.out.splitlines()[1:]}
    assert "error: the image holds NaN or infinite pixel values" in lines["nan.tiff"]
    assert "six.png" in printed.out
    assert "seven.png" in printed.out
    assert printed.out.count("error") == 1, "the other two files are classified"
    assert "1 of 3 files could not be classified" in printed.err
    with pytest.raises(ImageError, match="NaN or infinite"):
        predict_images(load_model(checkpoint), [tmp_path / "six.png", tmp_path / "nan.tiff"])


def test_predict_command_reports_broken_links_in_a_folder(checkpoint: Path, tmp_path: Path, capsys) -> None:
    draw_digit(6).save(tmp_path / "six.png")
    (tmp_path / "gone.png").symlink_to(tmp_path / "deleted.png")
    assert run(predict.main, ["--ckpt", str(checkpoint), str(tmp_path)]) == 1
    printed = capsys.readouterr()
    assert "gone.png  error: broken symbolic link" in printed.out
    assert "1 of 2 files could not be classified" in printed.err


def test_predict_command_exits_0_when_all_files_work_and_2_for_a_bad_checkpoint(
    checkpoint: Path, tmp_path: Path, capsys
) -> None:
    draw_digit(8).save(tmp_path / "eight.png")
    assert run(predict.main, ["--ckpt", str(checkpoint), str(tmp_path / "eight.png")]) == 0
    (tmp_path / "broken.ckpt").write_bytes(b"nope")
    assert run(predict.main, ["--ckpt", str(tmp_path / "broken.ckpt"), str(tmp_path / "eight.png")]) == 2
    assert "damaged" in capsys.readouterr().err


# --- train.py predict ------------------------------------------------------------------------------------


def test_train_predict_writes_a_csv_of_the_test_set(
    trained: Path, synthetic_dir: Path, run_cli, tmp_path: Path, capsys
) -> None:
    assert run_cli("predict", "--ckpt_path", "best", "--data.data_dir", str(synthetic_dir)) == 0
    assert "Predictions for 300 images written to" in capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "lightning_logs" / "version_1" / "predictions.csv").open()))
    assert [int(r["index"]) for r in rows] == list(range(300))
    assert set(rows[0]) == {"index", "true_label", "predicted_label", "probability"}
    accuracy = np.mean([r["true_label"] == r["predicted_label"] for r in rows])
    assert accuracy > 0.9


# --- exports ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["state_dict", "onnx", "torch_export"])
def test_exports_reproduce_the_checkpoint_on_raw_pixels(fmt: str, checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / f"model.{fmt}"
    export_checkpoint(str(checkpoint), fmt, str(out))
    model = load_model(checkpoint)
    pixels = torch.rand(37, 1, 28, 28)
    with torch.no_grad():
        expected = model(pixels)  # the model standardizes by itself, and so must every export
    if fmt == "state_dict":
        state = torch.load(out, weights_only=True)
        assert sorted(state) == ["linear.bias", "linear.weight"]
        bare = torch.nn.Linear(784, 10)  # the tutorials' model
        bare.load_state_dict({k.removeprefix("linear."): v for k, v in state.items()})
        actual = bare(pixels.flatten(1))
    elif fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        actual = torch.from_numpy(session.run(None, {"images": pixels.numpy()})[0])
    else:
        actual = torch.export.load(out).module()(pixels)
    assert torch.allclose(actual, expected, atol=1e-4)


@pytest.mark.parametrize("fmt", ["state_dict", "onnx", "torch_export"])
def test_cnn_exports_reproduce_the_checkpoint_on_raw_pixels(fmt: str, cnn_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / f"cnn.{fmt}"
    export_checkpoint(str(cnn_checkpoint), fmt, str(out))
    model = load_model(cnn_checkpoint)
    pixels = torch.rand(37, 1, 28, 28)
    with torch.no_grad():
        expected = model(pixels)
        if fmt == "state_dict":
            state = torch.load(out, weights_only=True)
            mean, std = state.pop("input_mean"), state.pop("input_std")
            hp = model.hparams
            layers = (hp.channels, hp.kernel_sizes, hp.hidden_dim, hp.dropout, hp.batch_norm)
            bare = cnn_layers(*layers, convs_per_block=hp.convs_per_block).eval()
            bare.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})  # plain torch layers
            actual = bare((pixels - mean) / std)
        elif fmt == "onnx":
            import onnxruntime

            session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            actual = torch.from_numpy(session.run(None, {"images": pixels.numpy()})[0])
        else:
            actual = torch.export.load(out).module()(pixels)
    assert torch.allclose(actual, expected, atol=1e-4)


def test_a_deskewing_logreg_exports_to_onnx_and_torch_export_and_refuses_a_bare_state_dict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = LitLogReg(deskew=True).eval()
    model.set_input_statistics(0.1307, 0.3081)
    ckpt = tmp_path / "deskew.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, ckpt)
    pixels = torch.rand(7, 1, 28, 28)
    with torch.no_grad():
        expected = model(pixels)
    import onnxruntime

    export_checkpoint(str(ckpt), "onnx", str(tmp_path / "m.onnx"))
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert torch.allclose(torch.from_numpy(session.run(None, {"images": pixels.numpy()})[0]), expected, atol=1e-4)
    export_checkpoint(str(ckpt), "torch_export", str(tmp_path / "m.pt2"))
    assert torch.allclose(torch.export.load(tmp_path / "m.pt2").module()(pixels), expected, atol=1e-5)
    out = tmp_path / "m.pt"
    assert run(export.main, ["--ckpt", str(ckpt), "--format", "state_dict", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --format state_dict holds layer weights alone and this LitLogReg deskews its input first (deskew: "
        "true), which no weight holds; export it with --format onnx or --format torch_export"
    ]
    assert not out.exists()
