"""Networks and LightningModules of "a user's own classes", importable by name from a fresh process.

Nothing here imports lightning-spiral or is registered anywhere: the restore tests build these
classes with constructor arguments, as a user would, and hand the instances to ``restore``.
"""

from __future__ import annotations

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch import nn


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


class AutoEncoder(nn.Module):
    """An MLP autoencoder of flattened 8x8 images: (N, 64) -> (N, 64)."""

    def __init__(self, hidden: int = 32, latent: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


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

    def __init__(self, backbone: nn.Module, learning_rate: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate)


class LitAutoEncoder(L.LightningModule):
    """As in the Lightning docs: ``training_step`` flattens the (N, 1, 8, 8) images the network never sees."""

    def __init__(self, autoencoder: nn.Module | None = None) -> None:
        super().__init__()
        self.autoencoder = autoencoder or AutoEncoder()

    def training_step(self, batch, batch_idx):
        x, _ = batch
        x = x.view(x.size(0), -1)  # (N, 1, 8, 8) -> (N, 64)
        loss = F.mse_loss(self.autoencoder(x), x)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)
