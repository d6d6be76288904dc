"""The user's networks and LightningModules (no lightning-spiral import anywhere in this package)."""

from __future__ import annotations

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy


class Backbone(nn.Module):
    """A small CNN for 1x8x8 digits."""

    def __init__(self, width: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        self.l1 = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.l2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.l2(self.l1(x)))


class ConvNet(nn.Module):
    """A small residual CNN for 1x8x8 images: conv-BN stem, one two-conv residual block, linear head."""

    def __init__(self, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.Conv2d(2 * width, width, 3, padding=1), nn.BatchNorm2d(width),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 1, 8, 8)
        h = self.stem(x)
        return self.head(F.relu(h + self.block(h)))


class TokenClassifier(nn.Module):
    """Token ids (N, T) -> embedding -> mean over tokens -> MLP -> 2 logits: an integer-input network."""

    def __init__(self, vocab: int = 100, dim: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # tokens: (N, T) int64
        return self.mlp(self.embed(tokens).mean(1))


class LitClassifier(L.LightningModule):
    """As in the Lightning docs: the backbone is passed in and left out of the hyperparameters."""

    def __init__(self, backbone: nn.Module, learning_rate: float = 2e-3) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.val_accuracy = MulticlassAccuracy(10, average="micro")
        self.test_accuracy = MulticlassAccuracy(10, average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.val_accuracy(self(x), y)
        self.log("val_acc", self.val_accuracy)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.test_accuracy(self(x), y)
        self.log("test_acc", self.test_accuracy)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate)


class AutoEncoder(nn.Module):
    """An MLP autoencoder of flattened 8x8 images with an 8-wide latent code."""

    def __init__(self, hidden: int = 48, latent: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class LitAutoEncoder(L.LightningModule):
    """Flattens images inside its steps, as Lightning's autoencoder example does; judged on ``val_loss``."""

    def __init__(self, hidden: int = 48, learning_rate: float = 3e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.autoencoder = AutoEncoder(hidden)

    def _loss(self, batch) -> torch.Tensor:
        x, _ = batch
        x = x.view(x.size(0), -1)
        return F.mse_loss(self.autoencoder(x), x)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def test_step(self, batch, batch_idx):
        self.log("test_loss", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate)
