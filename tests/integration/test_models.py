"""LitLogReg / LitMLP / LitCNN: shapes, loss, metrics, plain hyperparameters, refusal of absurd sizes."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pytest
import torch
import torch.nn.functional as F
from helpers import quiet_trainer
from lightning.pytorch.cli import LRSchedulerCallable

import mnist_lightning
from mnist_lightning import MNISTDataModule
from mnist_lightning.checkpoint import Allowlist, build_model
from mnist_lightning.cli.parser import CLASS_OPTIONS
from mnist_lightning.errors import CheckpointError, ConfigError
from mnist_lightning.models import (
    ALLOWLIST,
    MODEL_CLASSES,
    CosineToZeroLR,
    LitClassifier,
    LitCNN,
    LitLogReg,
    LitMLP,
    import_path,
)
from mnist_lightning.models.checks import is_int, require
from mnist_lightning.models.classifier import OptimizerFactory
from mnist_lightning.models.deskew import deskew
from mnist_lightning.models.nets import cnn_cost, cnn_layers


@pytest.mark.parametrize("model_class", [LitLogReg, LitMLP, LitCNN])
@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (5, 784)])
def test_forward_returns_logits_for_images_or_flat_vectors(model_class, shape) -> None:
    assert model_class()(torch.rand(shape)).shape == (5, 10)


def test_training_step_is_cross_entropy_and_sums_the_epochs_metrics() -> None:
    model = LitLogReg()
    batches = [(torch.randn(8, 1, 28, 28), torch.arange(8) % 10), (torch.randn(4, 1, 28, 28), torch.arange(4))]
    losses = [model.training_step(batch, index) for index, batch in enumerate(batches)]
    for (images, labels), loss in zip(batches, losses, strict=True):
        assert loss.item() == pytest.approx(F.cross_entropy(model(images), labels).item())
    correct = sum((model(images).argmax(1) == labels).sum().item() for images, labels in batches)
    model.train_sums.update(model.train_loss, model.train_acc)  # what the end of a training epoch does
    assert model.train_acc.compute().item() == pytest.approx(correct / 12)
    assert model.train_loss.compute().item() == pytest.approx((losses[0].item() * 8 + losses[1].item() * 4) / 12)


def test_label_smoothing_changes_the_training_loss_only() -> None:
    model = LitCNN(channels=(4,), kernel_sizes=(3,), hidden_dim=0, dropout=0.0, label_smoothing=0.1)
    images, labels = torch.rand(6, 1, 28, 28), torch.arange(6)
    logits = model(images)
    trained = model.training_step((images, labels), 0)
    assert trained.item() == pytest.approx(F.cross_entropy(logits, labels, label_smoothing=0.1).item(), rel=1e-5)
    assert trained.item() != pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)
    model.validation_step((images, labels), 0)
    assert model.val_loss.compute().item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)
    assert model.hparams.label_smoothing == 0.1


def test_each_stage_has_its_own_metric_objects() -> None:
    model = LitLogReg()
    assert len({id(model.train_acc), id(model.val_acc), id(model.test_acc)}) == 3
    model.validation_step((torch.randn(4, 784), torch.zeros(4, dtype=torch.long)), 0)
    assert model.test_acc.update_count == 0
    assert model.val_acc.update_count == 1


def test_predict_step_returns_probabilities_labels_and_indices() -> None:
    out = LitLogReg().predict_step((torch.randn(3, 784), torch.tensor([1, 2, 3]), torch.tensor([7, 8, 9])), 0)
    assert torch.allclose(out["probs"].sum(1), torch.ones(3))
    assert torch.equal(out["preds"], out["probs"].argmax(1))
    assert out["target"].tolist() == [1, 2, 3]
    assert out["index"].tolist() == [7, 8, 9]


def test_mlp_has_the_tutorial_layout_on_request_and_a_wider_one_by_default() -> None:
    shapes = [tuple(p.shape) for p in LitMLP(hidden_dims=(128, 64)).parameters()]
    assert shapes == [(128, 784), (128,), (64, 128), (64,), (10, 64), (10,)]
    default = LitMLP()
    assert [tuple(p.shape) for p in default.parameters()][::2] == [(512, 784), (256, 512), (10, 256)]
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.2 for m in default.net)


@pytest.mark.parametrize(
    ("model_class", "kwargs", "message"),
    [
        (LitLogReg, {"lr": 0.0}, "lr"),
        (LitLogReg, {"lr": float("nan")}, "lr"),
        (LitLogReg, {"input_dim": 10**8}, "parameters"),
        (LitLogReg, {"num_classes": 1}, "num_classes"),
        (LitLogReg, {"deskew": True, "input_dim": 783}, "deskew needs square images"),
        (LitLogReg, {"deskew": "yes"}, "deskew must be true or false"),
        (LitMLP, {"hidden_dims": (10**6, 10**6)}, "parameters"),
        (LitMLP, {"dropout": 1.0}, "dropout"),
        (LitMLP, {"activation": "softmax"}, "activation"),
        (LitCNN, {"channels": (16, 32, 64, 64, 64)}, "channels"),
        (LitCNN, {"channels": (16, 32), "kernel_sizes": (5,)}, "kernel_sizes"),
        (LitCNN, {"kernel_sizes": (4, 4)}, "kernel_sizes"),
        (LitCNN, {"hidden_dim": -1}, "hidden_dim"),
        (LitCNN, {"batch_norm": "yes"}, "batch_norm"),
        (LitCNN, {"label_smoothing": 1.0}, "label_smoothing"),
        (LitCNN, {"label_smoothing": -0.1}, "label_smoothing"),
        (LitCNN, {"channels": (256, 256, 256, 256), "kernel_sizes": (9, 9, 9, 9)}, "multiply-adds"),
        (LitCNN, {"channels": (8,), "kernel_sizes": (3,), "hidden_dim": 10**6}, "parameters"),
    ],
)
def test_absurd_hyperparameters_are_refused_before_allocation(model_class, kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        model_class(**kwargs)


def test_cosine_schedule_spans_the_whole_fit(synthetic_dir: Path, tmp_path: Path) -> None:
    model = LitLogReg()
    dm = MNISTDataModule(data_dir=synthetic_dir, download=False, val_size=200, batch_size=100)
    trainer = quiet_trainer(tmp_path, max_epochs=2, enable_checkpointing=False)
    trainer.fit(model, dm)
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert isinstance(scheduler, CosineToZeroLR)
    assert scheduler.total_steps == 2 * 10  # 1,000 training images in batches of 100, two epochs
    assert scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)
    assert trainer.callback_metrics["val/acc"] > 0.5


def test_script_built_checkpoints_hold_only_plain_values_and_reload(synthetic_dir: Path, tmp_path: Path) -> None:
    model = LitMLP(hidden_dims=(32,), optimizer=functools.partial(torch.optim.SGD, momentum=0.9), lr=0.05)
    dm = MNISTDataModule(data_dir=synthetic_dir, download=False, val_size=200, batch_size=100)
    trainer = quiet_trainer(tmp_path, max_steps=3, enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(model, dm)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    hparams = torch.load(path, weights_only=True)["hyper_parameters"]
    assert hparams["optimizer"] == {"class_path": "torch.optim.SGD", "init_args": {"momentum": 0.9}}
    restored = LitMLP.load_from_checkpoint(path, weights_only=True)
    assert list(restored.hparams.hidden_dims) == [32]
    optimizer = restored.optimizer_factory(restored.parameters(), restored.hparams.lr)
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["momentum"] == 0.9
    assert optimizer.defaults["lr"] == 0.05
    images = torch.randn(4, 784)
    model.eval()
    assert torch.equal(restored.eval()(images), model(images))


def test_logreg_deskew_is_kept_in_the_checkpoint_and_shears_the_input_before_the_layer(tmp_path: Path) -> None:
    model = LitLogReg(deskew=True).eval()
    model.set_input_statistics(0.1307, 0.3081)
    assert model.hparams["deskew"] is True
    path = tmp_path / "deskew.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    restored = LitLogReg.load_from_checkpoint(path).eval()
    assert restored.deskew is True
    plain = LitLogReg().eval()
    plain.load_state_dict(model.state_dict())
    images = torch.zeros(2, 1, 28, 28)
    for row in range(6, 22):
        images[0, 0, row, 12 + (row - 14) // 2 : 14 + (row - 14) // 2] = 1.0
    images[1] = torch.rand(1, 28, 28)
    with torch.no_grad():
        logits = restored(images)
        assert torch.allclose(logits, plain(deskew(images)), atol=1e-5)
        assert torch.allclose(restored(images.reshape(2, 784)), logits, atol=1e-6)
        assert not torch.allclose(logits, plain(images), atol=1e-3)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_cnn_layers_follow_the_arguments_and_the_cost_estimate(batch_norm: bool) -> None:
    model = LitCNN(channels=(8, 16, 24), kernel_sizes=(5, 3, 3), hidden_dim=0, dropout=0.0, batch_norm=batch_norm)
    convs = [m for m in model.net if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(8, (5, 5)), (16, (3, 3)), (24, (3, 3))]
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.net) is batch_norm
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.net)
    params, _ = cnn_cost((8, 16, 24), (5, 3, 3), 0)
    counted = sum(p.numel() for p in model.net.parameters())
    assert counted == params if not batch_norm else counted == params - (8 + 16 + 24) + 2 * (8 + 16 + 24)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_cnn_blocks_can_hold_pairs_of_convolutions_and_one_is_the_old_layout() -> None:
    paired = LitCNN(channels=(8, 16), kernel_sizes=(3, 3), hidden_dim=32, batch_norm=True, convs_per_block=2)
    convs = [m for m in paired.net if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 8), (8, 8), (8, 16), (16, 16)]
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in paired.net) == 2
    params, macs = cnn_cost((8, 16), (3, 3), 32, convs_per_block=2)
    bn_extra = 2 * (8 + 8 + 16 + 16) - (8 + 8 + 16 + 16)  # batch norm's scale and shift instead of conv biases
    assert sum(p.numel() for p in paired.net.parameters()) == params + bn_extra
    assert macs > cnn_cost((8, 16), (3, 3), 32)[1]
    assert paired(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    # the default keeps the state_dict of checkpoints made before the option existed
    assert [k for k in LitCNN().state_dict() if k.endswith("weight")] == [
        "net.0.weight",
        "net.3.weight",
        "net.7.weight",
        "net.10.weight",
    ]
    with pytest.raises(ConfigError, match="convs_per_block must be a whole number 1-4"):
        LitCNN(convs_per_block=0)


@pytest.mark.parametrize(("batch_norm", "convs_per_block"), [(False, 1), (True, 1), (True, 2)])
def test_cnn_pools_before_its_last_relu_with_the_same_outputs_and_gradients(
    batch_norm: bool, convs_per_block: int
) -> None:
    torch.manual_seed(0)
    net = cnn_layers((6, 8), (5, 3), 16, 0.0, batch_norm, convs_per_block=convs_per_block)
    modules = list(net)
    pools = [i for i, m in enumerate(modules) if isinstance(m, torch.nn.MaxPool2d)]
    assert all(isinstance(modules[i + 1], torch.nn.ReLU) for i in pools)
    textbook = list(modules)
    for i in pools:  # conv [batch norm] ReLU, then pooling: the usual order
        textbook[i], textbook[i + 1] = textbook[i + 1], textbook[i]
    textbook_net = torch.nn.Sequential(*textbook)
    assert list(textbook_net.state_dict()) == list(net.state_dict())
    images, labels = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    results = []
    for candidate in (net, textbook_net):
        candidate.zero_grad()
        logits = candidate(images)
        F.cross_entropy(logits, labels).backward()
        results.append((logits.detach(), [p.grad.clone() for p in candidate.parameters()]))
    (logits, grads), (textbook_logits, textbook_grads) = results
    assert torch.equal(logits, textbook_logits)
    assert all(torch.equal(a, b) for a, b in zip(grads, textbook_grads, strict=True))


def test_cnn_is_channels_last_and_its_filters_are_its_first_kernels() -> None:
    model = LitCNN(channels=(12, 16), kernel_sizes=(5, 3))
    assert model.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model.input_filters().shape == (12, 5, 5)
    assert torch.equal(model.input_filters(), model.net[0].weight[:, 0])


def test_cnn_standardizes_its_input() -> None:
    model = LitCNN().eval()
    images = torch.rand(3, 1, 28, 28)
    before = model(images)
    model.set_input_statistics(0.5, 2.0)
    with torch.no_grad():
        assert torch.allclose(model(images), model.net((images - 0.5) / 2.0), atol=1e-6)
    assert not torch.allclose(model(images), before)


# --- one list of model classes; hyperparameter checks bound to the constructors -----------------------------


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_every_model_class_is_derived_from_the_one_list(model_class: type[LitClassifier]) -> None:
    name = model_class.__name__
    assert getattr(mnist_lightning, name) is model_class
    assert name in dir(mnist_lightning)
    assert name in mnist_lightning.__all__
    assert import_path(model_class) == f"mnist_lightning.{name}"
    assert ALLOWLIST.models[f"mnist_lightning.{name}"] is model_class
    assert ALLOWLIST.models[f"mnist_lightning.models.{name}"] is model_class  # the path version 0.1 wrote
    assert name in CLASS_OPTIONS["--model"]


def test_the_package_face_stays_lazy_for_submodules() -> None:
    with pytest.raises(AttributeError, match="no attribute 'no_such_module'"):
        mnist_lightning.no_such_module  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'LitNoSuchModel'"):
        mnist_lightning.LitNoSuchModel  # noqa: B018


def test_hyperparameter_checks_take_the_constructors_defaults() -> None:
    # one channel given: the default kernel_sizes (5, 3) of LitCNN's signature no longer fit
    with pytest.raises(ConfigError, match=r"one odd size 1-27 per conv block \(1 here\), got \(5, 3\)"):
        LitCNN.check_hparams({"channels": [8]})
    LitCNN.check_hparams({"channels": [8], "kernel_sizes": [3]})
    with pytest.raises(ConfigError, match="LitMLP: got an unexpected keyword argument 'hidden_dim'"):
        LitMLP.check_hparams({"hidden_dim": 3})


class LitTiny(LitClassifier):
    """The docs' worked example of a new model: one class, its own layers and checks."""

    def __init__(
        self,
        width: int = 16,
        num_classes: int = 10,
        lr: float | None = None,
        optimizer: OptimizerFactory = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = CosineToZeroLR,
        scheduler_interval: Literal["step", "epoch"] = "step",
        init_from: str | None = None,
    ) -> None:
        super().__init__(num_classes, lr, optimizer, scheduler, scheduler_interval, init_from)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(784, width), torch.nn.ReLU(), torch.nn.Linear(width, num_classes)
        )

    @classmethod
    def check_arguments(cls, args: Mapping[str, Any]) -> None:
        super().check_arguments(args)
        require(is_int(args["width"]) and 1 <= args["width"] <= 4096, f"width must be 1-4096, got {args['width']!r}")


def test_a_new_model_is_one_class_and_one_entry_in_the_list() -> None:
    with pytest.raises(ConfigError, match="width must be 1-4096, got 0"):
        LitTiny(width=0)
    model = LitTiny(width=8)
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    with pytest.raises(CheckpointError, match=r"names model class 'test_models\.LitTiny'"):
        build_model(checkpoint, ALLOWLIST)
    allowed = Allowlist.of((*MODEL_CLASSES, LitTiny), schedulers=(CosineToZeroLR,))
    restored = build_model(checkpoint, allowed)
    assert isinstance(restored, LitTiny)
    assert restored.hparams.width == 8
    images = torch.rand(2, 1, 28, 28)
    assert torch.equal(restored(images), model(images))
