"""What a spiral run shows while it works: Lightning loggers per stage and one-line stage summaries.

Every stage's Trainer gets the run's loggers with the metric keys prefixed ``stage_<k>`` (so the
curves of all stages sit side by side in one TensorBoard, and CSV files never mix stages):

- ``"auto"`` (default): a CSV logger, plus TensorBoard when ``tensorboard`` (or ``tensorboardX``)
  is installed;
- ``"csv"``, ``"tensorboard"``: that one only; ``"none"``: no logger.

CSV files land in ``<run>/stage_<k>/logs/metrics.csv`` (each stage directory stays self-contained),
TensorBoard events of all stages in ``<run>/tensorboard`` (``tensorboard --logdir <run>/tensorboard``).
After a stage is measured its results (test and validation top-1, MACs and params as fractions
of the teacher's, batch-64 latency) are logged under ``stage_<k>-result/...``.

:class:`StageProgress` prints one line when a stage's student is pruned — just above Lightning's
own progress bar — and :func:`stage_summary` one line when the stage is judged::

    stage 2/4 · MACs 41% · distilling 5 epochs
    stage 2/4 · MACs 41% · top-1 91.2% (val 90.8%) · ≈2.31× faster at batch 64 (provisional) · kept

The speed-up is provisional: each stage is timed alone, and the side-by-side timing after the
last stage gives the final figures (the report's table).

The console stays quiet (:mod:`lightning_spiral.console`): at ``verbose=1`` Lightning's device
banner shows once per run (when its first Trainer is built; ``TPU available: False`` left out), its
third-party tips never, and the progress bar shows only the loss metrics, on one line;
``verbose=0`` hides Lightning's info lines altogether and ``verbose=2`` shows all of them.

Example:
    >>> from pathlib import Path
    >>> [type(logger).__name__ for logger in stage_loggers(Path("run"), "stage_2", "csv")]
    ['CSVLogger']
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args

import lightning.pytorch as L
import torch
from lightning.fabric.loggers.tensorboard import _TENSORBOARD_AVAILABLE
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from rich.progress import BarColumn, ProgressColumn
from rich.table import Column

from lightning_spiral.checks import check_choice
from lightning_spiral.console import CUDA_LOGGER, LIGHTNING_LOGGERS, QuietRuns, without_noise
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.measure import count_macs
from lightning_spiral.module_network import network_of
from lightning_spiral.records import StageResult
from lightning_spiral.spiral.monitor import Monitor
from lightning_spiral.spiral.validation import quiet_lightning

LoggerChoice = Literal["auto", "csv", "tensorboard", "none"]
Verbosity = Literal[0, 1, 2]


def check_logger_choice(loggers: str) -> LoggerChoice:
    """``loggers`` if it is a :data:`LoggerChoice`, else a clear error (also when TensorBoard is missing)."""
    check_choice("loggers", loggers, get_args(LoggerChoice))
    if loggers == "tensorboard" and not _TENSORBOARD_AVAILABLE:
        raise SpiralConfigError(
            "`loggers='tensorboard'` needs the `tensorboard` package, which is not installed: "
            "`pip install tensorboard`, or use loggers='auto' (CSV, plus TensorBoard when installed)."
        )
    return loggers  # type: ignore[return-value]


def check_verbose(verbose: int) -> Verbosity:
    """``verbose`` if it is 0, 1 or 2, else a clear error."""
    return check_choice("verbose", verbose, (0, 1, 2), hint="0: silent, 1: stage lines and the final table, "
                        "2: also layer widths and model summaries.")  # type: ignore[return-value]


def stage_loggers(run_dir: Path, stage_name: str, choice: LoggerChoice) -> list[Logger]:
    """The Lightning loggers of a stage's Trainer (``stage_name``: e.g. ``"stage_2"``), keys prefixed with it."""
    prefix = stage_name
    loggers: list[Logger] = []
    if choice in ("auto", "csv"):
        loggers.append(CSVLogger(save_dir=str(run_dir / prefix), name="logs", version="", prefix=prefix))
    if choice == "tensorboard" or (choice == "auto" and _TENSORBOARD_AVAILABLE):
        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="",
                                         prefix=prefix, default_hp_metric=False))
    return loggers


def log_stage_result(trainer: L.Trainer, result: StageResult, teacher: StageResult) -> None:
    """Log a measured stage to the Trainer's loggers under ``result/`` (they add the stage prefix)."""
    metrics = {
        "result/top1": result.top1,
        "result/val_top1": result.val_top1,
        "result/val_score": result.val_score,
        "result/macs_ratio": result.macs / teacher.macs,
        "result/params_ratio": result.params / teacher.params,
        "result/latency_ms_b64": result.latency_ms_b64,
    }
    metrics = {key: value for key, value in metrics.items() if value is not None}  # no top-1 from a user's module
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=trainer.global_step)
        logger.save()


def stage_summary(result: StageResult, teacher: StageResult, max_stages: int, monitor: Monitor) -> str:
    """The line printed when a stage is judged; its speed-up (``≈``) is provisional, the stage timed alone.

    Example:
        >>> t = StageResult(stage=0, top1=0.9, val_top1=0.9, params=100, macs=100, latency_ms_b1=1.0,
        ...     latency_ms_b64=10.0, size_bytes=1, model_path="stage_0/model.pt", kept=True, amount=0.0, wall_s=1.0)
        >>> s = StageResult(stage=2, top1=0.912, val_top1=0.908, params=40, macs=41, latency_ms_b1=0.5,
        ...     latency_ms_b64=4.33, size_bytes=1, model_path="stage_2/model.pt", kept=True, amount=0.2, wall_s=1.0)
        >>> stage_summary(s, t, max_stages=4, monitor=Monitor("val/top1"))
        'stage 2/4 · MACs 41% · top-1 91.2% (val 90.8%) · ≈2.31× faster at batch 64 (provisional) · kept'
        >>> s.top1, s.val_score = None, 0.0123
        >>> stage_summary(s, t, max_stages=4, monitor=Monitor("val_loss", mode="min"))
        'stage 2/4 · MACs 41% · val_loss 0.0123 · ≈2.31× faster at batch 64 (provisional) · kept'
    """
    verdict = "kept" if result.kept else result.note or "rolled back"
    quality = (f"top-1 {result.top1:.1%} (val {result.val_top1:.1%})" if result.top1 is not None and result.val_top1 is not None
               else f"{monitor.key} {result.val_score:.4g}")
    return (
        f"stage {result.stage}/{max_stages} · MACs {result.macs / teacher.macs:.0%} · {quality} · "
        f"≈{teacher.latency_ms_b64 / result.latency_ms_b64:.2f}× faster at batch 64 (provisional) · {verdict}"
    )


class StageProgress(L.Callback):
    """Print ``stage k/N · MACs x% · distilling E epochs`` once the stage's student is pruned.

    Added by :class:`~lightning_spiral.Spiral` after the stage's :class:`PruningCallback`, so
    ``on_fit_start`` sees the pruned student (pruning happens in ``setup``).

    Args:
        stage: this stage's number (1-based).
        max_stages: the spiral's stage count.
        teacher_macs: the teacher's MACs, the reference of the percentage.
        example: a batch of one the network takes, to count its MACs.
        action: what the stage trains, e.g. ``"distilling"`` or ``"fine-tuning"``.
        attr: the module's attribute holding the network (``None``: the module itself).

    Example:
        >>> progress = StageProgress(stage=2, max_stages=4, teacher_macs=7_200_000,
        ...                          example=torch.zeros(1, 1, 8, 8), action="distilling", attr="student")
    """

    def __init__(self, stage: int, max_stages: int, teacher_macs: int, example: torch.Tensor, action: str,
                 attr: str | None) -> None:
        self.stage = stage
        self.max_stages = max_stages
        self.teacher_macs = teacher_macs
        self.example = example
        self.action = action
        self.attr = attr

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        network = network_of(pl_module, self.attr)
        macs = count_macs(network, self.example.to(next(network.parameters()).device))
        rank_zero_info(
            f"stage {self.stage}/{self.max_stages} · MACs {macs / self.teacher_macs:.0%} · "
            f"{self.action} {trainer.max_epochs} epochs"
        )


TEACHER_STAGE = "stage_0"
_BANNER_SHOWN: set[Path] = set()  # run folders whose first Trainer this process has built (at verbose 1)


def shows_banner(run_dir: Path, stage_name: str, verbose: int) -> bool:
    """Whether building this stage's Trainer may print Lightning's banner (``GPU available: ...``):
    at ``verbose=2`` always, at 0 never, at 1 for the run's first Trainer in this process only (the
    teacher's, or the first one after a resume).

    Example:
        >>> [shows_banner(Path("run"), name, verbose=1) for name in ("stage_0", "stage_1", "quantized")]
        [True, False, False]
    """
    if verbose != 1:
        return verbose == 2
    key = Path(run_dir).resolve()
    first = stage_name == TEACHER_STAGE or key not in _BANNER_SHOWN
    _BANNER_SHOWN.add(key)
    return first


def loss_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The loss-like entries of the progress bar's ``metrics``, named short: ``x_epoch`` is dropped where
    ``x_step`` shows, and the training loss is just ``loss`` (``train/`` and ``_step`` dropped).

    Example:
        >>> loss_metrics({"train/loss_step": 0.24, "train/loss_epoch": 1.19, "val/loss": 0.65, "val/top1": 0.86})
        {'loss': 0.24, 'val/loss': 0.65}
    """
    return {key.removeprefix("train/").removesuffix("_step"): value for key, value in metrics.items()
            if "loss" in key and not (key.endswith("_epoch") and f"{key.removesuffix('_epoch')}_step" in metrics)}


class LossProgressBar(RichProgressBar):
    """Lightning's rich progress bar showing only :func:`loss_metrics`, so that they fit on the bar's line
    (Lightning's own shows every ``prog_bar`` metric, one per line in a console 80 columns wide);
    in a narrow console the bar shrinks, then the texts end in ``…``, rather than wrap.

    Example:
        >>> with quiet_lightning():
        ...     trainer = L.Trainer(callbacks=[LossProgressBar()], logger=False, enable_checkpointing=False)
        >>> type(trainer.progress_bar_callback).__name__
        'LossProgressBar'
    """

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        return loss_metrics(super().get_metrics(trainer, pl_module))

    def _init_progress(self, trainer: L.Trainer) -> None:
        super()._init_progress(trainer)
        for column in self.progress.columns if self.progress is not None else ():
            if isinstance(column, ProgressColumn) and not isinstance(column, BarColumn):  # only the bar gives way
                column._table_column = Column(no_wrap=True, overflow="ellipsis")


def console_callbacks(bound: dict[str, Any] | None, callbacks: list[L.Callback], verbose: int,
                      banner: bool) -> list[L.Callback]:
    """What keeps a stage's console as ``verbose`` says while its Trainer runs: Lightning's info lines
    quiet at 0, its CUDA line only in the first run of the banner's Trainer at 1, and at 1 the
    :class:`LossProgressBar` unless the bar is off, ``callbacks`` already have one, or the factory's
    arguments are unknown (``bound`` ``None``: not a Trainer class or a partial of one); nothing at 2."""
    if verbose == 2:
        return []
    if verbose == 0:
        return [QuietRuns(LIGHTNING_LOGGERS)]
    extra: list[L.Callback] = [QuietRuns([CUDA_LOGGER], shown=1 if banner else 0)]
    has_bar = any(isinstance(callback, ProgressBar) for callback in callbacks)
    if bound is not None and bound.get("enable_progress_bar", True) and not has_bar:
        extra.append(LossProgressBar())
    return extra


def builds_trainer(factory: Callable[..., L.Trainer]) -> bool:
    """Whether ``factory`` is a Trainer class or a partial of one (what Hydra's ``_partial_: true`` makes),
    so that the arguments bound in it are all it passes to the Trainer.

    Example:
        >>> builds_trainer(functools.partial(L.Trainer, accelerator="cpu")), builds_trainer(lambda **kw: L.Trainer(**kw))
        (True, False)
    """
    target = factory.func if isinstance(factory, functools.partial) else factory
    return isinstance(target, type) and issubclass(target, L.Trainer)


def stage_trainer(
    factory: Callable[..., L.Trainer], run_dir: Path, stage_name: str, *, epochs: int, callbacks: list[L.Callback],
    loggers: LoggerChoice, verbose: int,
) -> L.Trainer:
    """A fresh Trainer from the user's ``factory`` for one stage: ``epochs``, the stage's callbacks
    after copies of those bound in the partial (never shared between stages), and, unless bound,
    the stage's folder as ``default_root_dir`` and its loggers; ``verbose`` 0 hides the progress bar
    and model summary, 2 shows the summary. Lightning's banner shows as :func:`shows_banner` says,
    its tips and ``TPU available: False`` only at ``verbose=2`` (:func:`~lightning_spiral.console.without_noise`;
    :func:`console_callbacks` says what shows while it runs)."""
    bound = factory.keywords if isinstance(factory, functools.partial) else {}
    kwargs: dict[str, Any] = {
        "max_epochs": epochs,
        "callbacks": [copy.deepcopy(c) for c in bound.get("callbacks") or []] + callbacks,
    }
    if "default_root_dir" not in bound:
        kwargs["default_root_dir"] = str(run_dir / stage_name)
    if "logger" not in bound:
        kwargs["logger"] = stage_loggers(run_dir, stage_name, loggers) or False
    if verbose == 0:
        kwargs |= {"enable_progress_bar": False, "enable_model_summary": False}
    elif verbose == 2:
        kwargs["enable_model_summary"] = True
    banner = shows_banner(run_dir, stage_name, verbose)
    known = bound if builds_trainer(factory) else None
    kwargs["callbacks"] += console_callbacks(known, kwargs["callbacks"], verbose, banner)
    with contextlib.ExitStack() as quiet:
        if verbose < 2:
            quiet.enter_context(without_noise())
        if not banner:
            quiet.enter_context(quiet_lightning())
        return factory(**kwargs)


__all__ = [
    "LoggerChoice",
    "LossProgressBar",
    "StageProgress",
    "Verbosity",
    "check_logger_choice",
    "builds_trainer",
    "check_verbose",
    "console_callbacks",
    "log_stage_result",
    "loss_metrics",
    "shows_banner",
    "stage_loggers",
    "stage_summary",
    "stage_trainer",
]
