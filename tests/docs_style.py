"""A LightningModule written the way the Lightning docs write one (``LitModel``), used unchanged by the tests.

It knows nothing about lightning-spiral: ``__init__`` builds the net, ``training_step`` computes the
loss and ``self.log``s it, ``configure_optimizers`` returns Adam. The tests add our callbacks to its
Trainer and change nothing else.
"""

from __future__ import annotations

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy


class LitClassifier(L.LightningModule):
    def __init__(self, num_classes: int = 10, lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes),
        )
        self.val_accuracy = MulticlassAccuracy(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.val_accuracy(self(x), y)
        self.log("val_acc", self.val_accuracy)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def accuracy(module: nn.Module, loader) -> float:
    """Top-1 of ``module`` over ``loader``, in eval mode."""
    module.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (module(x).argmax(1) == y).sum().item()
            total += len(y)
    return correct / total
