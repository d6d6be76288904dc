"""Stage loggers (prefixed metric keys, CSV and TensorBoard), stage lines and verbosity of a spiral run."""

from __future__ import annotations

import csv
import functools
import logging

import lightning.pytorch as L
import pytest
from lightning.fabric.loggers.tensorboard import _TENSORBOARD_AVAILABLE
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from lightning_spiral import KDLoss, PruningCallback, Spiral
from lightning_spiral.data import DigitsDataModule
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.models import build_model
from lightning_spiral.console import QuietRuns
from lightning_spiral.records import StageResult
from lightning_spiral.spiral.monitor import Monitor
from lightning_spiral.spiral.progress import (
    LossProgressBar,
    check_logger_choice,
    console_callbacks,
    loss_metrics,
    shows_banner,
    stage_loggers,
    stage_summary,
    stage_trainer,
)

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
def test_verbose_prints_stage_lines_one_banner_and_the_table_only_when_asked(tmp_path, caplog, capsys, verbose: int) -> None:
    lightning_logger = logging.getLogger("lightning.pytorch")  # Lightning's own logger does not propagate
    lightning_logger.addHandler(caplog.handler)
    try:
        run_spiral(tmp_path, loggers="none", verbose=verbose)
    finally:
        lightning_logger.removeHandler(caplog.handler)
    lines = [record.getMessage() for record in caplog.records]
    started = [line for line in lines if line.startswith("stage 1/1 · MACs") and "distilling 1 epochs" in line]
    judged = [line for line in lines if line.startswith("stage 1/1 · MACs") and "faster at batch 64 (provisional)" in line]
    table = "Final:" in capsys.readouterr().out
    assert (len(started), len(judged), table) == ((1, 1, True) if verbose else (0, 0, False))
    banner = [line for line in lines if line.startswith(("GPU available", "TPU available", "💡 Tip"))]
    assert banner == (["GPU available: False, used: False"] if verbose else [])  # two stage Trainers, one banner
    assert verbose or not lines  # verbose 0: not even "`Trainer.fit` stopped"


def test_stage_summary_marks_the_speed_up_provisional() -> None:
    def result(stage: int, latency: float) -> StageResult:
        return StageResult(stage=stage, top1=0.9, val_top1=0.9, params=100, macs=100 - 50 * stage, latency_ms_b1=1.0,
                           latency_ms_b64=latency, size_bytes=1, model_path="m.pt", kept=True, amount=0.5, wall_s=1.0)

    line = stage_summary(result(1, 4.5), result(0, 10.0), max_stages=2, monitor=Monitor("val/top1"))
    assert line == "stage 1/2 · MACs 50% · top-1 90.0% (val 90.0%) · ≈2.22× faster at batch 64 (provisional) · kept"


def test_loss_metrics_keep_the_losses_short_and_once() -> None:
    shown = loss_metrics({"train/loss_step": 0.2, "train/loss_epoch": 0.3, "val/loss": 0.4, "val/top1": 0.9, "v_num": 0,
                          "train_loss": 0.5, "kd_loss_epoch": 0.6})
    assert shown == {"loss": 0.2, "val/loss": 0.4, "train_loss": 0.5, "kd_loss_epoch": 0.6}


@pytest.mark.parametrize(("verbose", "bound", "expected"), [
    (0, {}, [QuietRuns]),
    (1, {}, [QuietRuns, LossProgressBar]),
    (1, {"enable_progress_bar": False}, [QuietRuns]),
    (1, {"callbacks": [TQDMProgressBar()]}, [QuietRuns]),  # the user's own bar is kept
    (1, None, [QuietRuns]),  # a factory of the user's own: it may turn the bar off
    (2, {}, []),
])
def test_console_callbacks_follow_verbose_and_the_users_bar(verbose: int, bound: dict | None, expected: list[type]) -> None:
    extra = console_callbacks(bound, list((bound or {}).get("callbacks", [])), verbose, banner=True)
    assert [type(callback) for callback in extra] == expected


def test_a_bound_progress_bar_stays_the_trainers(tmp_path) -> None:
    factory = functools.partial(TRAINER, callbacks=[TQDMProgressBar(refresh_rate=7)])
    trainer = stage_trainer(factory, tmp_path, "stage_1", epochs=1, callbacks=[], loggers="none", verbose=1)
    assert type(trainer.progress_bar_callback) is TQDMProgressBar and trainer.progress_bar_callback.refresh_rate == 7
    trainer = stage_trainer(TRAINER, tmp_path, "stage_2", epochs=1, callbacks=[], loggers="none", verbose=1)
    assert type(trainer.progress_bar_callback) is LossProgressBar
    own = stage_trainer(lambda **kwargs: TRAINER(**kwargs, enable_progress_bar=False), tmp_path, "stage_3", epochs=1,
                        callbacks=[], loggers="none", verbose=1)  # no bar forced on a factory that turns it off
    assert own.progress_bar_callback is None


def test_the_banner_shows_for_a_runs_first_trainer(tmp_path) -> None:
    resumed, fresh = tmp_path / "resumed", tmp_path / "fresh"
    assert [shows_banner(resumed, name, 1) for name in ("stage_3", "stage_4", "quantized")] == [True, False, False]
    assert [shows_banner(fresh, name, 1) for name in ("stage_0", "stage_1", "stage_0")] == [True, False, True]
    assert [shows_banner(fresh, "stage_1", verbose) for verbose in (0, 2)] == [False, True]


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


def test_the_run_names_its_files_by_full_path(tmp_path) -> None:
    from lightning_spiral.records import SpiralReport, StageResult
    from lightning_spiral.spiral.driver import artifacts_line

    teacher = StageResult(stage=0, top1=0.9, val_top1=0.9, params=10, macs=100, latency_ms_b1=1.0, latency_ms_b64=9.0,
                          size_bytes=10, model_path="stage_0/model.pt", kept=True, amount=0.0, wall_s=1.0)
    line = artifacts_line(tmp_path / "run", SpiralReport(teacher=teacher))
    assert f"final model: {(tmp_path / 'run' / 'stage_0' / 'model.pt').resolve()}" in line
