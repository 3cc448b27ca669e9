"""A trained checkpoint in formats for use outside Lightning (the ``mnist-export`` command's work).

Every format takes images as the tutorials feed them: ``(N, 1, 28, 28)`` (or ``(N, 784)`` for
``state_dict``) with pixels in [0, 1], white digit on black, as ``transforms.ToTensor()`` makes them:

- ``onnx``: the model as it is (its own input standardization included), an ONNX graph with a dynamic
  batch dimension (input ``images``, output ``logits``), checked with onnxruntime before it is written;
- ``torch_export``: the model as it is, a ``torch.export`` program (``torch.export.load(path).module()(images)``);
- ``state_dict``: a plain ``{name: tensor}`` file of the layers alone, for a bare torch module
  (``linear.weight`` and ``linear.bias`` for LitLogReg: the tutorials' ``nn.Linear(784, 10)``). A bare
  module has no place for the standardization, so it is folded into the first layer's weights and bias.
  A convolution's zero padding keeps that fold from being exact at the borders, so for LitCNN it is the
  model's own state_dict: ``input_mean``, ``input_std`` and ``net.*``, the layers of
  ``mnist_lightning.models.nets.cnn_layers`` (plain torch), which take ``(images - input_mean) / input_std``.
  A LitLogReg trained with ``deskew`` is refused here: its deskewing is no layer with weights, so only ``onnx``
  and ``torch_export`` carry it.

Every format outputs logits. Calibrated probabilities are ``softmax(logits / T)``, with the temperature ``T``
that training fitted on the validation split: ``mnist-export`` prints it (it is the checkpoint's
``state_dict["temperature"]``); it is not part of the exported layers, which stay plain torch.

Files are written atomically: a reader never sees a half-written export.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from mnist_lightning.errors import CheckpointError
from mnist_lightning.fileio import atomic_write
from mnist_lightning.inference import load_model
from mnist_lightning.models import LitClassifier
from mnist_lightning.models.nets import fold_standardization


def layer_weights(model: LitClassifier) -> dict[str, torch.Tensor]:
    """The model's layer weights under their own names, with the input standardization folded into the first
    ``nn.Linear`` (as the flat models' own forward does); a model whose first layer is no ``nn.Linear`` keeps
    its ``input_mean``/``input_std`` entries instead."""
    state = {name: t.detach().cpu().contiguous().clone() for name, t in model.state_dict().items()}
    del state["temperature"]  # not a layer: every format outputs logits, and the command prints the temperature
    first_layer = next(m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    if not isinstance(first_layer, nn.Linear):
        return state
    first = next(name for name, m in model.named_modules() if isinstance(m, nn.Linear))
    mean, std = state.pop("input_mean"), state.pop("input_std")
    weight, bias = fold_standardization(state[f"{first}.weight"], state[f"{first}.bias"], mean, std)
    state[f"{first}.weight"], state[f"{first}.bias"] = weight, bias
    return state


def export_state_dict(model: LitClassifier, out: Path) -> None:
    if getattr(model, "nested_models", ()):
        raise CheckpointError(
            f"--format state_dict holds the layers of one bare module and this {type(model).__name__} is several "
            "models whose probabilities are averaged; export it with --format onnx or --format torch_export"
        )
    if getattr(model, "deskew", False):
        raise CheckpointError(
            "--format state_dict holds layer weights alone and this LitLogReg deskews its input first (deskew: "
            "true), which no weight holds; export it with --format onnx or --format torch_export"
        )
    state = layer_weights(model)
    atomic_write(out, lambda stream: torch.save(state, stream))


def export_onnx(model: LitClassifier, out: Path) -> None:
    program = torch.onnx.export(
        model,
        (torch.rand(2, 1, 28, 28),),
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
        verbose=False,
    )
    data = program.model_proto.SerializeToString()
    check_onnx(data, model)
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
    program = torch.export.export(model, (torch.rand(2, 1, 28, 28),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    atomic_write(out, lambda stream: stream.write(buffer.getvalue()))


WRITERS = {"state_dict": export_state_dict, "onnx": export_onnx, "torch_export": export_torch}


def export(ckpt: str, fmt: str, out: str) -> LitClassifier:
    """Export the checkpoint ``ckpt`` in format ``fmt`` to ``out``; returns the model it exported."""
    model = load_model(ckpt, map_location="cpu")
    WRITERS[fmt](model, Path(out))
    return model
