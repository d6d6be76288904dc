"""DistillationCallback on the shared engine: replace mode = SpiralModule, feature losses, cache, any output shape."""

from __future__ import annotations

import copy
import dataclasses

import lightning.pytorch as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import CountingTeacher, quiet_trainer
from docs_style import LitClassifier
from lightning_spiral import DistillationCallback, KDLoss, PruningCallback, SpiralModule
from lightning_spiral.distill import FitNetLoss, LogitMSELoss, WeightedSum
from lightning_spiral.distill.callback import add_param_group, with_loss
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.models import build_model


class LossRecorder(L.Callback):
    """The loss every training step returned."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(outputs["loss"].item())


def _fit_steps(module: L.LightningModule, data, callbacks: list[L.Callback]) -> list[float]:
    recorder = LossRecorder()
    L.seed_everything(0, verbose=False)
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=0, callbacks=[*callbacks, recorder])
    trainer.fit(module, datamodule=data)
    return recorder.losses


def test_replace_mode_gives_the_numbers_of_spiral_module_with_a_teacher(tiny_data) -> None:
    torch.manual_seed(0)
    student = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    teacher = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    twin, twin_teacher, initial = copy.deepcopy(student), copy.deepcopy(teacher), copy.deepcopy(student)
    built_in = _fit_steps(SpiralModule(student, teacher, loss=KDLoss(alpha=0.9), num_classes=10), tiny_data, [])
    distillation = DistillationCallback(twin_teacher, KDLoss(alpha=0.9), attr="student", mode="replace")
    by_callback = _fit_steps(SpiralModule(twin, num_classes=10), tiny_data, [distillation])
    assert len(built_in) == 3 and by_callback == pytest.approx(built_in, abs=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(student.parameters(), twin.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(student.parameters(), initial.parameters()))  # the steps moved the weights


class SchedulerClassifier(LitClassifier):
    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=2)}


def test_feature_terms_after_pruning_join_the_users_optimizer(tiny_data) -> None:
    teacher = LitClassifier().net
    loss = WeightedSum({"kd": 1.0, "hint": 1.0}, {"kd": KDLoss(alpha=1.0), "hint": FitNetLoss("2")})  # net[2]: ReLU after 32 channels
    model = SchedulerClassifier()
    callbacks = [PruningCallback(amount=0.5, attr="net", verbose=0), DistillationCallback(teacher, loss, attr="net")]  # pruning first
    trainer = quiet_trainer(max_epochs=2, limit_val_batches=0, callbacks=callbacks)
    trainer.fit(model, datamodule=tiny_data)
    adapter = loss.losses["hint"].adapter
    assert adapter.in_channels == model.net[0].out_channels < adapter.out_channels == 32  # built after pruning
    optimizer = trainer.optimizers[0]
    assert len(optimizer.param_groups) == 2 and optimizer.param_groups[1]["params"] == [adapter.weight]
    assert optimizer.param_groups[1]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"])  # scheduled like group 0
    assert optimizer.state[adapter.weight]  # the adapter was trained
    assert {"train/loss/distill", "train/loss/kd", "train/loss/hint"} <= set(trainer.callback_metrics)
    assert not model.net[2]._forward_hooks and not teacher[2]._forward_hooks  # taps closed at teardown
    assert all(not p.requires_grad for p in teacher.parameters())


def test_add_param_group_extends_the_schedulers_lists() -> None:
    first = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([first], lr=0.2, momentum=0.9)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, min_lr=0.01)
    added = nn.Parameter(torch.zeros(1))
    add_param_group(optimizer, [added], [cosine, plateau])
    assert optimizer.param_groups[1]["momentum"] == 0.9 and cosine.base_lrs == [0.2, 0.2] and plateau.min_lrs == [0.01, 0.01]
    optimizer.step()
    cosine.step()
    assert optimizer.param_groups[0]["lr"] < 0.2 and optimizer.param_groups[1]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"])


def test_teacher_cache_in_the_callback(tiny_data) -> None:
    teacher = CountingTeacher(LitClassifier().net)
    distillation = DistillationCallback(teacher, cache_teacher=True)
    quiet_trainer(max_epochs=3, limit_val_batches=0, callbacks=[distillation]).fit(LitClassifier(), datamodule=tiny_data)
    assert teacher.samples == len(tiny_data.x)  # one epoch of teacher forwards, then cache hits
    tiny_data.augment = True
    with pytest.raises(SpiralConfigError, match=r"`cache_teacher`=True needs the same inputs every epoch"):
        trainer = quiet_trainer(max_epochs=1, callbacks=[DistillationCallback(teacher, cache_teacher=True)])
        trainer.fit(LitClassifier(), datamodule=tiny_data)


class AutoEncoder(L.LightningModule):
    """Flattens (N, 1, 8, 8) images to (N, 64) and reconstructs them; the loss is the reconstruction MSE."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 64))

    def training_step(self, batch, batch_idx):
        x = batch[0].flatten(1)  # (N, 64)
        return F.mse_loss(self.net(x), x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def test_logit_mse_on_an_autoencoder(tiny_data) -> None:
    torch.manual_seed(0)
    teacher = AutoEncoder().net  # the teacher is called on what the student got: the flattened images
    model = AutoEncoder()
    distillation = DistillationCallback(teacher, LogitMSELoss(alpha=1.0), weight=5.0, attr="net", targets=lambda batch: None)
    x = tiny_data.x.flatten(1)
    before = distillation.distillation_term(model.net(x), x, None).item()
    trainer = quiet_trainer(max_epochs=3, limit_val_batches=0, callbacks=[distillation])
    trainer.fit(model, datamodule=tiny_data)
    after = distillation.distillation_term(model.net(x), x, None).item()
    assert torch.isfinite(trainer.callback_metrics["train/loss/distill"])
    assert after < 0.5 * before


@dataclasses.dataclass
class Output:
    logits: torch.Tensor
    hidden: torch.Tensor


class Structured(nn.Module):
    """The docs-style network, returning its logits inside a dict, a tuple or an object."""

    def __init__(self, wrap) -> None:
        super().__init__()
        self.body, self.wrap = LitClassifier().net, wrap

    def forward(self, x: torch.Tensor):
        return self.wrap(self.body(x), x.flatten(1))


WRAPS = {"dict": lambda logits, hidden: {"hidden": hidden, "logits": logits},
         "tuple": lambda logits, hidden: (logits, hidden), "object": Output}


class StructuredClassifier(LitClassifier):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.net = Structured(WRAPS[kind])

    def training_step(self, batch, batch_idx):
        x, y = batch
        output = self.net(x)
        logits = output["logits"] if isinstance(output, dict) else output[0] if isinstance(output, tuple) else output.logits
        return F.cross_entropy(logits, y)


@pytest.mark.parametrize(
    ("kind", "outputs"), [("dict", None), ("dict", "logits"), ("tuple", 0), ("object", None), ("object", lambda out: out.logits)]
)
def test_structured_outputs(tiny_data, kind: str, outputs) -> None:
    teacher = Structured(WRAPS[kind])
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0,
                            callbacks=[DistillationCallback(teacher, attr="net", outputs=outputs)])
    trainer.fit(StructuredClassifier(kind), datamodule=tiny_data)
    assert torch.isfinite(trainer.callback_metrics["train/loss/distill"]) and trainer.callback_metrics["train/loss/distill"] > 0


def test_an_output_that_cannot_be_selected_is_a_clear_error(tiny_data) -> None:
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0,
                            callbacks=[DistillationCallback(Structured(WRAPS["dict"]), attr="net", outputs="scores")])
    with pytest.raises(SpiralConfigError, match=r"`outputs`='scores' cannot select a tensor from a network output of type dict"):
        trainer.fit(StructuredClassifier("dict"), datamodule=tiny_data)


def test_with_loss_adds_or_replaces() -> None:
    term = torch.tensor(2.0)
    assert with_loss(torch.tensor(1.0), lambda loss: loss + 0.5 * term).item() == 2.0
    assert with_loss({"loss": torch.tensor(1.0), "n": 3}, lambda _loss: term) == {"loss": term, "n": 3}
    assert with_loss(None, lambda loss: loss) is None
    with pytest.raises(SpiralConfigError, match=r"`training_step` returned str; DistillationCallback combines its term"):
        with_loss("loss", lambda loss: loss)


def test_a_new_loss_rebuilds_the_engine_with_the_same_options() -> None:
    distillation = DistillationCallback(nn.Linear(4, 2), outputs="logits", cache_teacher=True)
    distillation.loss = LogitMSELoss()
    assert isinstance(distillation.engine.loss, LogitMSELoss) and distillation.engine.outputs == "logits"
    with pytest.raises(SpiralConfigError, match=r"`cache_teacher`=True needs a frozen teacher and a loss of logit terms only"):
        distillation.loss = FitNetLoss("0")
