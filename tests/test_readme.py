"""The README's Lightning example runs as written (docs that run)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_lightning_example_runs(tmp_path, monkeypatch) -> None:
    example = next(block for block in _python_blocks() if "PruningCallback(amount=0.3" in block)
    assert len(example.strip().splitlines()) <= 20
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert (tmp_path / "student.pt").is_file()
    assert any(getattr(c, "pruned", False) for c in namespace["trainer"].callbacks)


def test_readme_own_module_example_runs(tmp_path, monkeypatch) -> None:
    example = next(block for block in _python_blocks() if "DistillationCallback(teacher" in block)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, str(README), "exec"), namespace)  # noqa: S102 - our own README
    model, teacher, trainer = namespace["model"], namespace["teacher"], namespace["trainer"]
    assert model.net[0].out_channels == teacher[0].out_channels // 2
    assert torch.isfinite(trainer.callback_metrics["train/loss/distill"])
    assert "training_step" not in vars(model)  # the module is given back as written


def test_readme_api_imports_exist() -> None:
    imports = next(block for block in _python_blocks() if block.lstrip().startswith("from lightning_spiral import ("))
    exec(compile(imports, str(README), "exec"), {})  # noqa: S102


def test_readme_own_project_example_runs(tmp_path, monkeypatch) -> None:
    example = next(block for block in _python_blocks() if "module=LitClassifier(backbone=Backbone())" in block)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, str(README), "exec"), namespace)  # noqa: S102 - our own README
    report, net = namespace["report"], namespace["net"]
    assert report.final.stage == 3 and report.final.macs <= 0.3 * report.teacher.macs
    assert net.l1[0].out_channels < 32 and "val_acc" in report.final.metrics
