"""Export a trained checkpoint for use outside Lightning.

    python -m mnist_lightning.export --ckpt PATH --format state_dict|onnx|torch_export --out FILE

Every format takes images as the tutorials feed them: ``(N, 1, 28, 28)`` (or ``(N, 784)`` for
``state_dict``) with pixels in [0, 1], white digit on black, as ``transforms.ToTensor()`` makes them. The
training normalization is folded into the first layer, so nothing else has to be remembered:

- ``state_dict``: a plain ``{name: tensor}`` file with the module's own keys (``linear.weight`` and
  ``linear.bias`` for LitLogReg, the tutorials' ``nn.Linear(784, 10)`` model); load it with
  ``model.load_state_dict(torch.load(path, weights_only=True))``;
- ``onnx``: an ONNX graph with a dynamic batch dimension (input ``images``, output ``logits``), checked with
  onnxruntime against PyTorch before it is written;
- ``torch_export``: a ``torch.export`` program (``torch.export.load(path).module()(images)``).

Files are written atomically: a reader never sees a half-written export.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from copy import deepcopy
from pathlib import Path

import torch
from torch import nn

from mnist_lightning.checkpoints import atomic_write
from mnist_lightning.errors import CheckpointError
from mnist_lightning.inference import load_model
from mnist_lightning.models import LitClassifier

FORMATS = ("state_dict", "onnx", "torch_export")


def folded(model: LitClassifier) -> LitClassifier:
    """A copy of the model whose first layer also does the input normalization, in eval mode.

    ``(x - mean) / std`` followed by ``W x + b`` equals ``(W / std) x + (b - mean / std * W.sum(1))``.
    """
    copy = deepcopy(model).cpu().eval()
    first = next(m for m in copy.modules() if isinstance(m, nn.Linear))
    mean, std = model.input_mean, model.input_std
    with torch.no_grad():
        first.bias -= first.weight.sum(dim=1) * (mean / std)
        first.weight /= std
    copy.input_mean, copy.input_std = 0.0, 1.0
    return copy


def export_state_dict(model: LitClassifier, out: Path) -> None:
    state = {name: tensor.detach().clone() for name, tensor in folded(model).state_dict().items()}
    atomic_write(out, lambda stream: torch.save(state, stream))


def export_onnx(model: LitClassifier, out: Path) -> None:
    classifier = folded(model)
    sample = torch.rand(2, 1, 28, 28)
    program = torch.onnx.export(
        classifier,
        (sample,),
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
        verbose=False,
    )
    data = program.model_proto.SerializeToString()
    check_onnx(data, classifier)
    atomic_write(out, lambda stream: stream.write(data))


def check_onnx(data: bytes, classifier: nn.Module) -> None:
    """Run the ONNX graph with onnxruntime on a batch size it was not traced with; it must match PyTorch."""
    import onnxruntime

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    images = torch.rand(5, 1, 28, 28)
    (logits,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        expected = classifier(images)
    if not torch.allclose(torch.from_numpy(logits), expected, atol=1e-4):
        raise RuntimeError("the ONNX export does not reproduce the model's outputs; nothing was written")


def export_torch(model: LitClassifier, out: Path) -> None:
    program = torch.export.export(
        folded(model), (torch.rand(2, 1, 28, 28),), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    atomic_write(out, lambda stream: stream.write(buffer.getvalue()))


def export(ckpt: str, fmt: str, out: str) -> Path:
    """Export the checkpoint ``ckpt`` in format ``fmt`` to ``out``; returns the path written."""
    model = load_model(ckpt)
    writers = {"state_dict": export_state_dict, "onnx": export_onnx, "torch_export": export_torch}
    writers[fmt](model, Path(out))
    return Path(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_lightning.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by train.py fit")
    parser.add_argument("--format", choices=FORMATS, default="state_dict")
    parser.add_argument("--out", required=True, help="the file to write")
    args = parser.parse_args(argv)
    try:
        path = export(args.ckpt, args.format, args.out)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ImportError as err:
        print(f"error: {err.name} is needed for --format {args.format}: pip install -e '.[export]'", file=sys.stderr)
        return 2
    print(f"wrote {path} ({args.format}); it takes (N, 1, 28, 28) images with pixels in [0, 1]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
