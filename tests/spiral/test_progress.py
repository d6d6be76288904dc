"""Stage loggers (prefixed metric keys, CSV and TensorBoard), stage lines and verbosity of a spiral run."""

from __future__ import annotations

import csv
import functools
import logging

import lightning.pytorch as L
import pytest
from lightning.fabric.loggers.tensorboard import _TENSORBOARD_AVAILABLE
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from lightning_spiral import KDLoss, PruningCallback, Spiral
from lightning_spiral.data import DigitsDataModule
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.models import build_model
from lightning_spiral.spiral.progress import check_logger_choice, stage_loggers

TRAINER = functools.partial(L.Trainer, accelerator="cpu", devices=1, enable_checkpointing=False, log_every_n_steps=5)


def run_spiral(tmp_path, **overrides) -> Spiral:
    L.seed_everything(0, verbose=False)
    data = DigitsDataModule(batch_size=64)
    settings = dict(
        model=build_model("small_cnn", num_classes=10, input_shape=data.input_shape),
        datamodule=data, trainer=TRAINER, pruning=functools.partial(PruningCallback, amount=0.25),
        loss=KDLoss(temperature=4.0, alpha=0.9), schedule="constant", target_macs_ratio=0.6, max_stages=1, teacher_epochs=2,
        stage_epochs=1, output_dir=str(tmp_path / "run"), latency_repeats=2,
    )
    spiral = Spiral(**{**settings, **overrides})
    spiral.run()
    return spiral


def read_csv_keys(path) -> set[str]:
    with open(path, newline="") as handle:
        return set(next(csv.reader(handle)))


def test_every_stage_logs_prefixed_metrics_and_its_result(tmp_path) -> None:
    run_spiral(tmp_path, loggers="csv", verbose=0)
    for stage in (0, 1):
        keys = read_csv_keys(tmp_path / "run" / f"stage_{stage}" / "logs" / "metrics.csv")
        assert f"stage_{stage}-train/loss_step" in keys
        assert {f"stage_{stage}-result/top1", f"stage_{stage}-result/macs_ratio", f"stage_{stage}-val/top1"} <= keys
        assert not any(key.startswith(f"stage_{1 - stage}-") for key in keys)  # stages never mix


@pytest.mark.skipif(not _TENSORBOARD_AVAILABLE, reason="tensorboard is not installed")
def test_auto_adds_tensorboard_when_installed(tmp_path) -> None:
    loggers = stage_loggers(tmp_path, "stage_2", "auto")
    assert [type(logger) for logger in loggers] == [CSVLogger, TensorBoardLogger]
    assert all(logger._prefix == "stage_2" for logger in loggers)
    run_spiral(tmp_path, verbose=0)
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


def test_no_loggers(tmp_path) -> None:
    assert stage_loggers(tmp_path, "stage_1", "none") == []
    run_spiral(tmp_path, loggers="none", verbose=0)
    assert not (tmp_path / "run" / "stage_1" / "logs").exists()


def test_tensorboard_without_the_package_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr("lightning_spiral.spiral.progress._TENSORBOARD_AVAILABLE", False)
    with pytest.raises(SpiralConfigError, match=r"`loggers='tensorboard'` needs the `tensorboard` package"):
        check_logger_choice("tensorboard")


@pytest.mark.parametrize("verbose", [0, 1])
def test_verbose_prints_stage_lines_and_the_table_only_when_asked(tmp_path, caplog, capsys, verbose: int) -> None:
    lightning_logger = logging.getLogger("lightning.pytorch")  # Lightning's own logger does not propagate
    lightning_logger.addHandler(caplog.handler)
    try:
        run_spiral(tmp_path, loggers="none", verbose=verbose)
    finally:
        lightning_logger.removeHandler(caplog.handler)
    lines = [record.getMessage() for record in caplog.records]
    started = [line for line in lines if line.startswith("stage 1/1 · MACs") and "distilling 1 epochs" in line]
    judged = [line for line in lines if line.startswith("stage 1/1 · MACs") and "faster at batch 64" in line]
    table = "Final:" in capsys.readouterr().out
    assert (len(started), len(judged), table) == ((1, 1, True) if verbose else (0, 0, False))


def test_stage_progress_leaves_the_global_rng_alone() -> None:
    """Regression: counting the pruned student's MACs with randn shifted every later random draw."""
    import types

    import torch

    from lightning_spiral.spiral.progress import StageProgress

    module = types.SimpleNamespace(student=build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8)))
    state = torch.get_rng_state()
    StageProgress(1, 2, teacher_macs=10**7, example=torch.zeros(1, 1, 8, 8), action="distilling", attr="student").on_fit_start(
        types.SimpleNamespace(max_epochs=1), module)
    assert torch.equal(torch.get_rng_state(), state)
