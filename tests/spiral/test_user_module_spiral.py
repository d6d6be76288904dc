"""Acceptance: the spiral drives a user's own LightningModule, unchanged, judged on its own metric.

(a) a docs-style classifier whose backbone is excluded from ``save_hyperparameters``, judged on
``val_acc``; (b) an autoencoder that flattens in ``training_step``, distilled with MSE, judged on
``val_loss`` with ``mode="min"``. Each final network is restored in a fresh process onto a freshly
built instance of the user's class, and the last stage's Lightning checkpoint reloads.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch

from lightning_spiral import LogitMSELoss, KDLoss, Monitor, PruningCallback, Spiral
from lightning_spiral.data import DigitsDataModule
from lightning_spiral.errors import SpiralConfigError
from user_project import Backbone, LitAutoEncoder, LitClassifier

TESTS = Path(__file__).resolve().parents[1]


class OptimizerRecorder(L.Callback):
    """A user callback: records the optimizer class of every fit it takes part in."""

    seen: list[str] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        OptimizerRecorder.seen.append(type(trainer.optimizers[0]).__name__)


TRAINER = functools.partial(L.Trainer, accelerator="cpu", devices=1, enable_progress_bar=False, log_every_n_steps=5,
                            enable_model_summary=False, callbacks=[OptimizerRecorder()])


def spiral_of(module: L.LightningModule, attr: str, tmp_path: Path, **overrides) -> Spiral:
    L.seed_everything(0, verbose=False)
    settings = dict(
        module=module, network=attr, datamodule=DigitsDataModule(batch_size=64), trainer=TRAINER,
        pruning=functools.partial(PruningCallback, verbose=0), loss=KDLoss(temperature=4.0, alpha=1.0),
        monitor=Monitor("val_acc", mode="max", max_drop=0.25), schedule="geometric", target_macs_ratio=0.3,
        max_stages=3, teacher_epochs=3, stage_epochs=[1, 1, 2], output_dir=str(tmp_path / "run"), latency_repeats=2,
        verbose=0,
    )
    return Spiral(**{**settings, **overrides})


def reload_in_a_fresh_process(run: Path, build: str, checkpoint_build: str, attr: str) -> dict[str, float]:
    """Restore the final network and the last stage's checkpoint in a new interpreter; max |Δ| of each."""
    script = f"""
import json, sys, torch
from lightning_spiral import restore, restore_checkpoint
from user_project import *
report = json.load(open({str(run / 'report.json')!r}))
final = report["final"]
saved = torch.load({str(run / 'expected.pt')!r}, weights_only=True)
network = restore({build}, {str(run)!r} + "/" + final["model_path"])
checkpoint = sorted(__import__("pathlib").Path({str(run)!r}, f"stage_{{final['stage']}}").rglob("*.ckpt"))[-1]
module = restore_checkpoint({checkpoint_build}, checkpoint).eval()
with torch.no_grad():
    print(json.dumps({{"model": (network(saved["x"]) - saved["y"]).abs().max().item(),
                      "checkpoint": (module.{attr}(saved["x"]) - saved["y"]).abs().max().item()}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(TESTS)})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def save_expected(run: Path, network: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        torch.save({"x": x, "y": network.eval()(x)}, run / "expected.pt")


def test_a_docs_style_classifier_runs_three_stages_on_its_own_metric(tmp_path) -> None:
    OptimizerRecorder.seen = []
    user_module = LitClassifier(backbone=Backbone())
    untouched = {k: v.clone() for k, v in user_module.state_dict().items()}
    spiral = spiral_of(user_module, "backbone", tmp_path)
    report = spiral.run()
    run = tmp_path / "run"

    assert [s.stage for s in report.stages] == [1, 2, 3] and all(s.kept for s in report.stages)
    macs = [report.teacher.macs, *(s.macs for s in report.stages)]
    assert macs == sorted(macs, reverse=True) and macs[-1] <= 0.3 * macs[0]
    for result in (report.teacher, *report.stages):  # judged and reported on what the module logs
        assert result.val_score == result.metrics["val_acc"] and "test_acc" in result.metrics
        assert result.top1 is None
    assert report.stages[-1].val_score >= report.teacher.val_score - 0.25
    assert OptimizerRecorder.seen == ["Adam"] * 4  # the user's optimizer and callback, in every fit
    logged = (run / "stage_2" / "logs" / "metrics.csv").read_text().splitlines()[0]
    assert "train_loss" in logged and "train/loss/distill" in logged  # the user's step, plus our term
    assert all(torch.equal(v, untouched[k]) for k, v in user_module.state_dict().items())  # never trained in place

    final = spiral.load_network(run / report.final.model_path)
    save_expected(run, final, torch.randn(4, 1, 8, 8))
    differences = reload_in_a_fresh_process(run, "Backbone()", "LitClassifier(backbone=Backbone())", "backbone")
    assert differences["model"] <= 1e-5 and differences["checkpoint"] <= 1e-5


def test_an_autoencoder_that_flattens_in_its_step_is_distilled_with_mse_and_judged_on_its_loss(tmp_path) -> None:
    example = torch.zeros(1, 64)  # what the network takes: the step flattens the (N, 1, 8, 8) batches
    spiral = spiral_of(LitAutoEncoder(), "autoencoder", tmp_path, example_input=example, loss=LogitMSELoss(alpha=1.0),
                       monitor=Monitor("val_loss", mode="min", max_drop=1.0, relative=True), target_macs_ratio=0.4)
    report = spiral.run()
    run = tmp_path / "run"

    assert [s.stage for s in report.stages] == [1, 2, 3] and all(s.kept for s in report.stages)
    assert report.stages[-1].macs <= 0.4 * report.teacher.macs
    assert all(s.val_score == s.metrics["val_loss"] and s.top1 is None for s in report.stages)
    assert report.stages[-1].val_score <= 2.0 * report.teacher.val_score
    assert json.loads((run / "report.json").read_text())["settings"]["spiral"]["monitor"] == {
        "key": "val_loss", "mode": "min", "max_drop": 1.0, "relative": True}
    final = spiral.load_network(run / report.final.model_path)
    save_expected(run, final, torch.randn(4, 64))
    differences = reload_in_a_fresh_process(run, "AutoEncoder()", "LitAutoEncoder()", "autoencoder")
    assert differences["model"] <= 1e-5 and differences["checkpoint"] <= 1e-5


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"network": "bone"}, r"`network`='bone' names no nn.Module of LitClassifier; its submodules are \['backbone'"),
        ({"monitor": Monitor("val_accuracy")}, r"`monitor.key`='val_accuracy' is not logged by LitClassifier.validation_step; "
                                               r"it logs \['val_acc'\]"),
        ({"example_input": torch.zeros(1, 64)}, r"Backbone cannot take the example input of shape \(1, 64\) from `example_input`"),
        ({"optimizer": functools.partial(torch.optim.SGD, lr=0.1)}, r"`module` \(LitClassifier\) brings its own network "
                                                                     r"and `configure_optimizers`; `optimizer` would be ignored"),
        ({"distill_weight": -1.0}, r"`distill_weight` must be a finite number > 0, got -1.0"),
    ],
)
def test_bad_input_for_a_user_module_fails_in_one_line_before_any_training(tmp_path, overrides: dict, match: str) -> None:
    start = time.perf_counter()
    with pytest.raises(SpiralConfigError, match=match):
        spiral_of(LitClassifier(backbone=Backbone()), "backbone", tmp_path, **overrides)
    assert time.perf_counter() - start < 15 and not (tmp_path / "run").exists()


def test_a_network_fed_reshaped_batches_needs_an_example_input_and_says_so(tmp_path) -> None:
    with pytest.raises(SpiralConfigError, match=r"AutoEncoder cannot take the example input of shape \(1, 1, 8, 8\) "
                                                 r"from the first training batch .* pass `example_input=`"):
        spiral_of(LitAutoEncoder(), "autoencoder", tmp_path, monitor=Monitor("val_loss", mode="min"))
