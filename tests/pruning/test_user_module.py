"""Acceptance: a docs-style LightningModule fine-tuned with ``PruningCallback`` added to its Trainer, nothing else changed."""

from __future__ import annotations

import lightning.pytorch as L
import pytest
import torch
import torch.nn.functional as F

from conftest import quiet_trainer
from docs_style import LitClassifier, accuracy
from lightning_spiral import PruningCallback
from lightning_spiral.measure import count_macs, count_params

EXAMPLE = torch.randn(1, 1, 8, 8)


class LossProbe(L.Callback):
    """Measures the cross-entropy on one fixed batch when training starts (after pruning) and ends."""

    def __init__(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.batch = batch
        self.losses: list[float] = []

    def _measure(self, pl_module: L.LightningModule) -> None:
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            self.losses.append(F.cross_entropy(pl_module(self.batch[0]), self.batch[1]).item())
        pl_module.train(was_training)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._measure(pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._measure(pl_module)


@pytest.mark.parametrize("attr", [None, "net"])
@pytest.mark.parametrize("data_as", ["datamodule", "dataloaders"])
def test_docs_style_module_is_pruned_and_keeps_training(trained_digits_classifier, attr: str | None, data_as: str) -> None:
    state, data = trained_digits_classifier
    model = LitClassifier()
    model.load_state_dict(state)
    params, macs = count_params(model.net), count_macs(model.net, EXAMPLE)
    data.setup("fit")
    probe = LossProbe(next(iter(data.val_dataloader())))
    callback = PruningCallback(amount=0.5, attr=attr, verbose=0)
    trainer = quiet_trainer(max_epochs=2, callbacks=[callback, probe])
    if data_as == "datamodule":
        trainer.fit(model, datamodule=data)
    else:  # the docs' other way: loaders passed straight to fit
        trainer.fit(model, train_dataloaders=data.train_dataloader(), val_dataloaders=data.val_dataloader())

    assert count_params(model.net) < 0.4 * params
    assert count_macs(model.net, EXAMPLE) < 0.4 * macs
    assert callback.summary["macs_after"] < callback.summary["macs_before"]
    optimized = [p for group in trainer.optimizers[0].param_groups for p in group["params"]]
    assert {id(p) for p in optimized} == {id(p) for p in model.parameters()}  # the user's Adam got the new tensors
    assert all(trainer.optimizers[0].state[p] for p in optimized)  # ... and stepped them
    assert probe.losses[1] < probe.losses[0]  # fine-tuning after pruning lowers the loss
    assert accuracy(model, data.test_dataloader()) > 0.5  # chance is 0.1
    assert torch.isfinite(trainer.callback_metrics["train_loss"])


def test_taylor_importance_with_loaders_passed_to_fit(trained_digits_classifier) -> None:
    state, data = trained_digits_classifier
    model = LitClassifier()
    model.load_state_dict(state)
    params = count_params(model.net)
    data.setup("fit")
    callback = PruningCallback(amount=0.5, attr="net", importance="taylor", taylor_batches=2, verbose=0)
    quiet_trainer(max_epochs=1, limit_train_batches=2, callbacks=[callback]).fit(model, train_dataloaders=data.train_dataloader())
    assert count_params(model.net) < 0.4 * params
