"""DistillationCallback: distillation added to a docs-style LightningModule without changing it."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
import torch.nn.functional as F

from conftest import quiet_trainer, two_process_results
from docs_style import LitClassifier, accuracy
from lightning_spiral import DistillationCallback, KDLoss, PruningCallback
from lightning_spiral.distill import LogitMSELoss
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.measure import count_params


def teacher_net(state: dict) -> torch.nn.Module:
    """The user's trained network, as the teacher."""
    model = LitClassifier()
    model.load_state_dict(state)
    return model.net


class TermProbe(L.Callback):
    """The distillation term on one fixed batch (eval mode) when training starts and when it ends."""

    def __init__(self, distillation: DistillationCallback, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.distillation = distillation
        self.batch = batch
        self.terms: list[float] = []

    def _measure(self, pl_module: L.LightningModule) -> None:
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            x, y = self.batch
            self.terms.append(self.distillation.distillation_term(pl_module(x), x, y).item())
        pl_module.train(was_training)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._measure(pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._measure(pl_module)


def test_pruned_docs_style_module_learns_from_the_teacher(trained_digits_classifier, tmp_path) -> None:
    state, data = trained_digits_classifier
    teacher = teacher_net(state)
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    model = LitClassifier()
    model.load_state_dict(state)
    params = count_params(model)
    data.setup("fit")
    distillation = DistillationCallback(teacher, loss=KDLoss(temperature=4.0, alpha=1.0), weight=2.0)
    probe = TermProbe(distillation, next(iter(data.val_dataloader())))
    trainer = quiet_trainer(max_epochs=2, callbacks=[PruningCallback(amount=0.5, verbose=0), distillation, probe])
    trainer.fit(model, datamodule=data)

    assert count_params(model) < 0.4 * params  # both callbacks in one Trainer
    assert all(torch.isfinite(torch.tensor(probe.terms)))
    assert probe.terms[1] < 0.5 * probe.terms[0]  # the pruned student moved towards the teacher
    assert torch.isfinite(trainer.callback_metrics["train/loss/distill"])
    assert accuracy(model, data.test_dataloader()) > 0.5  # chance is 0.1
    # the teacher: frozen, never updated, no gradient, not in the optimizer
    assert not teacher.training and all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(v, teacher_before[k]) for k, v in teacher.state_dict().items())
    optimized = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert optimized == {id(p) for p in model.parameters()}
    # the user's module is given back as written, and its checkpoint holds only its own weights
    assert "training_step" not in vars(model)
    trainer.save_checkpoint(tmp_path / "user.ckpt")
    checkpoint = torch.load(tmp_path / "user.ckpt", weights_only=False)
    assert set(checkpoint["state_dict"]) == set(model.state_dict())


class StepRecorder(L.Callback):
    """By hand, before the step: user loss + weight · KD of the first batch; then the loss the step returned."""

    def __init__(self, teacher: torch.nn.Module, loss: KDLoss, weight: float) -> None:
        self.teacher, self.loss, self.weight = teacher, loss, weight
        self.expected: list[tuple[float, float]] = []
        self.returned: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        x, y = batch
        with torch.no_grad():
            logits = pl_module(x)  # train mode, as in the step (no dropout, BN uses batch statistics)
            kd = self.loss(logits, self.teacher(x), y)
            self.expected.append((F.cross_entropy(logits, y).item(), kd.item()))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.returned.append(outputs["loss"].item())


@pytest.mark.parametrize("loss", [KDLoss(temperature=2.0, alpha=1.0), LogitMSELoss()], ids=["kd", "mse"])
def test_loss_is_user_loss_plus_weighted_term(trained_digits_classifier, loss) -> None:
    state, data = trained_digits_classifier
    teacher = teacher_net(state)
    torch.manual_seed(1)
    model = LitClassifier()
    recorder = StepRecorder(teacher, loss, weight=0.7)
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0,
                            callbacks=[DistillationCallback(teacher, loss=loss, weight=0.7), recorder])
    trainer.fit(model, datamodule=data)
    for (user, kd), returned in zip(recorder.expected, recorder.returned, strict=True):
        assert kd > 0.01
        assert returned == pytest.approx(user + 0.7 * kd, rel=1e-5)


def test_bf16_mixed(trained_digits_classifier) -> None:
    state, data = trained_digits_classifier
    model = LitClassifier()
    distillation = DistillationCallback(teacher_net(state))
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=5, limit_val_batches=0, precision="bf16-mixed",
                            callbacks=[distillation])
    trainer.fit(model, datamodule=data)
    term = trainer.callback_metrics["train/loss/distill"]
    assert term.dtype == torch.float32 and torch.isfinite(term) and term > 0
    assert all(p.grad is None for p in distillation.teacher.parameters())


def test_attr_net_and_dict_outputs(trained_digits_classifier) -> None:
    state, data = trained_digits_classifier

    class DictStep(LitClassifier):
        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            return {"loss": loss, "detached": loss.detach()}

    trainer = quiet_trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=0,
                            callbacks=[DistillationCallback(teacher_net(state), attr="net")])
    trainer.fit(DictStep(), datamodule=data)
    assert torch.isfinite(trainer.callback_metrics["train/loss/distill"])


def test_network_not_called_in_the_step(trained_digits_classifier) -> None:
    state, data = trained_digits_classifier
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0,
                            callbacks=[DistillationCallback(teacher_net(state), attr="val_accuracy")])
    model = LitClassifier()
    with pytest.raises(SpiralConfigError, match=r"MulticlassAccuracy was not called during `training_step` \(`attr`='val_accuracy'\)"):
        trainer.fit(model, datamodule=data)
    assert "training_step" not in vars(model)  # restored after the failed fit too


def test_teacher_inside_the_module_is_refused(tiny_data) -> None:
    model = LitClassifier()
    trainer = quiet_trainer(max_epochs=1, callbacks=[DistillationCallback(model.net)])
    with pytest.raises(SpiralConfigError, match=r"`teacher` is a submodule of LitClassifier"):
        trainer.fit(model, datamodule=tiny_data)


def test_manual_optimization_is_refused(tiny_data) -> None:
    class Manual(LitClassifier):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False

    trainer = quiet_trainer(max_epochs=1, callbacks=[DistillationCallback(torch.nn.Linear(64, 10))])
    with pytest.raises(SpiralConfigError, match=r"uses manual optimization"):
        trainer.fit(Manual(), datamodule=tiny_data)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"teacher": "resnet20"}, r"`teacher` must be an nn.Module \(the trained network\), got str"),
        ({"loss": torch.nn.MSELoss()}, r"`loss` must be a DistillationLoss \(KDLoss, DKDLoss, LogitMSELoss, ...\), a FeatureLoss .* got MSELoss"),
        ({"mode": "sum"}, r"`mode` must be one of \['add', 'replace'\], got 'sum'. 'add': user loss \+ weight x distillation"),
        ({"outputs": 2.5}, r"`outputs` must be None \(a tensor as is; .* got 2.5"),
        ({"weight": 0.0}, r"`weight` must be a finite number > 0, got 0.0. Typical weights are 0.5-10."),
        ({"weight": float("nan")}, r"`weight` must be a finite number > 0"),
        ({"inputs": "x"}, r"`inputs` must be None or a function of the batch, got 'x'"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    arguments = {"teacher": torch.nn.Linear(4, 2), **kwargs}
    with pytest.raises(SpiralConfigError, match=match):
        DistillationCallback(**arguments)


DDP_SCRIPT = """
import json, os, sys
import torch
from conftest import quiet_trainer
from docs_style import LitClassifier
from lightning_spiral import DistillationCallback, KDLoss, PruningCallback
from lightning_spiral.data import DigitsDataModule
from lightning_spiral.distill import FitNetLoss, WeightedSum
from lightning_spiral.measure import count_params

torch.manual_seed(0)
teacher = LitClassifier().net  # untrained is enough to check the mechanics across processes
model = LitClassifier()
params = count_params(model)
torch.manual_seed(int(os.environ.get("LOCAL_RANK", 0)))  # each rank would build a different adapter
loss = WeightedSum({"kd": 1.0, "hint": 1.0}, {"kd": KDLoss(alpha=1.0), "hint": FitNetLoss("2")})
distillation = DistillationCallback(teacher, loss, weight=1.0, attr="net")
trainer = quiet_trainer(max_epochs=1, limit_train_batches=4, limit_val_batches=0, strategy="ddp", devices=2,
                        callbacks=[PruningCallback(amount=0.5, verbose=0), distillation])
trainer.fit(model, datamodule=DigitsDataModule(batch_size=32))
adapter = loss.losses["hint"].adapter.weight.detach().flatten().tolist()
with open(f"{sys.argv[1]}.{trainer.global_rank}", "w") as f:
    json.dump({
        "term": trainer.callback_metrics["train/loss/distill"].item(),
        "params": params, "params_after": count_params(model),
        "teacher_grad": any(p.grad is not None for p in teacher.parameters()),
        "restored": "training_step" not in vars(model),
        "adapter": adapter, "first_weight": model.net[0].weight.detach().flatten()[:8].tolist(),
    }, f)
torch.distributed.destroy_process_group()  # left to interpreter exit, gloo's threads can abort the process
"""


@pytest.mark.slow
def test_two_process_cpu_ddp(tmp_path: Path) -> None:
    outcome, other = two_process_results(tmp_path, DDP_SCRIPT)
    assert torch.isfinite(torch.tensor(outcome["term"])) and outcome["term"] > 0
    assert outcome["params_after"] < 0.4 * outcome["params"]
    assert not outcome["teacher_grad"] and outcome["restored"]
    # the adapter lives outside the DDP wrapper: broadcast from rank 0, gradients averaged, so the ranks agree
    assert outcome["adapter"] == pytest.approx(other["adapter"], abs=1e-6)
    assert outcome["first_weight"] == pytest.approx(other["first_weight"], abs=1e-6)


def test_two_distillation_callbacks_stack_and_are_both_removed(tiny_data) -> None:
    model = LitClassifier()
    teachers = [LitClassifier().net, LitClassifier().net]
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=0,
                            callbacks=[DistillationCallback(teacher) for teacher in teachers])
    trainer.fit(model, datamodule=tiny_data)
    assert torch.isfinite(trainer.callback_metrics["train/loss/distill"])
    assert "training_step" not in vars(model)
