"""Shared fixtures: a tiny in-memory datamodule for fast Lightning tests, and the shared data path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import lightning.pytorch as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

if TYPE_CHECKING:
    from lightning_spiral.data import DigitsDataModule

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


class TinyDataModule(L.LightningDataModule):
    """Random 1x8x8 images whose class is encoded in their mean, so a small CNN can learn it."""

    num_classes = 10
    input_shape = (1, 8, 8)

    def __init__(self, n: int = 128, batch_size: int = 32) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.y = torch.arange(n) % self.num_classes
        self.x = torch.randn(n, *self.input_shape, generator=generator) * 0.5 + self.y.view(-1, 1, 1, 1) / 5.0
        self.batch_size = batch_size

    def _loader(self, shuffle: bool = False) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.batch_size, shuffle=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader(shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def test_dataloader(self) -> DataLoader:
        return self._loader()


class CountingTeacher(torch.nn.Module):
    """Wraps a network and counts how many samples went through its forward."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network
        self.samples = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.samples += len(x)
        return self.network(x)


@pytest.fixture
def tiny_data() -> TinyDataModule:
    return TinyDataModule()


def quiet_trainer(**kwargs) -> L.Trainer:
    """A CPU Trainer with no progress bar, logger, checkpoints or model summary."""
    defaults = dict(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )
    return L.Trainer(**{**defaults, **kwargs})


def two_process_results(tmp_path: Path, script_source: str) -> tuple[dict, dict]:
    """Run ``script_source`` (it starts a 2-process ``ddp`` fit and writes ``<argv[1]>.<rank>`` JSON); return both ranks' records."""
    script = tmp_path / "ddp_script.py"
    script.write_text(script_source)
    tests_dir = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "result.json")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    zero, one = (json.loads((tmp_path / f"result.json.{rank}").read_text()) for rank in (0, 1))
    return zero, one


@pytest.fixture(scope="session")
def trained_digits_classifier() -> tuple[dict, "DigitsDataModule"]:
    """A docs-style LitClassifier after its user's own training run (3 epochs on digits), as a state dict."""
    from docs_style import LitClassifier
    from lightning_spiral.data import DigitsDataModule

    torch.manual_seed(0)
    data = DigitsDataModule(batch_size=64)
    model = LitClassifier()
    quiet_trainer(max_epochs=3).fit(model, datamodule=data)
    return model.state_dict(), data
