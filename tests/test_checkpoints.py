"""Lightning checkpoints of a pruned student: resumable fits and fresh-process loading, teacher included."""

from __future__ import annotations

import subprocess
import sys

import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from conftest import quiet_trainer
from lightning_spiral import KDLoss, PruningCallback, SpiralModule
from lightning_spiral.models import build_model


def _fit_pruned(tmp_path, tiny_data) -> tuple[SpiralModule, str]:
    student = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    teacher = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8), widths=[16, 32, 32])
    module = SpiralModule(student, teacher, loss=KDLoss(), num_classes=10)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, filename="last", save_last=False)
    trainer = quiet_trainer(max_epochs=2, enable_checkpointing=True, callbacks=[PruningCallback(amount=0.5, verbose=0), checkpoint])
    trainer.fit(module, datamodule=tiny_data)
    return module, str(tmp_path / "last.ckpt")


def test_load_from_checkpoint_in_a_fresh_process_rebuilds_pruned_shapes(tmp_path, tiny_data) -> None:
    module, path = _fit_pruned(tmp_path, tiny_data)
    x = torch.randn(3, 1, 8, 8)
    module.eval()
    torch.save({"x": x, "student": module(x).detach(), "teacher": module.teacher(x).detach()}, tmp_path / "io.pt")
    code = (
        "import torch; from lightning_spiral import SpiralModule\n"
        f"m = SpiralModule.load_from_checkpoint({path!r}).eval(); d = torch.load({str(tmp_path / 'io.pt')!r})\n"
        "assert torch.allclose(m(d['x']), d['student'], atol=1e-6)\n"
        "assert torch.allclose(m.teacher(d['x']), d['teacher'], atol=1e-6)\n"
        "assert not any(p.requires_grad for p in m.teacher.parameters())\n"
        "print(m.student.features[0][0].out_channels)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.strip().splitlines()[-1]) == module.student.features[0][0].out_channels < 64


def test_fit_resumes_from_a_checkpoint_of_a_pruned_student(tmp_path, tiny_data) -> None:
    _, path = _fit_pruned(tmp_path, tiny_data)
    student = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    teacher = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8), widths=[16, 32, 32])
    module = SpiralModule(student, teacher, loss=KDLoss(), num_classes=10)
    trainer = quiet_trainer(max_epochs=3, callbacks=[PruningCallback(amount=0.3, verbose=0)])  # another amount
    trainer.fit(module, datamodule=tiny_data, ckpt_path=path)  # shapes come from the checkpoint
    assert trainer.current_epoch == 3
    assert module.student.features[0][0].out_channels == 16  # 32 channels: the checkpoint's 50% pruning, not 30%
    optimized = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert optimized >= {id(p) for p in module.student.parameters()}
