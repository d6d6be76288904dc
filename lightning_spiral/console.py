"""A quiet console: known third-party warnings filtered, chatty loggers held at WARNING, no advertising tips.

The ``lightning-spiral`` command calls :func:`setup_console` once; the spiral uses the rest while
it builds and runs each stage's Trainer (see :func:`lightning_spiral.spiral.progress.stage_trainer`):

- :func:`quiet_known_warnings` ignores the third-party deprecation warnings listed in
  :data:`KNOWN_WARNINGS`, each scoped by its message, its category and the module that warns
  (the ones ``pyproject.toml`` filters for the tests), never a blanket ignore;
- :func:`quiet_loggers` holds Python loggers at WARNING inside a ``with`` block (or a decorated
  function), e.g. :data:`ONNX_LOGGERS` while a model is exported and quantized;
- :func:`without_noise` drops Lightning's lines that say nothing about the run: its ``💡 Tip: ...``
  lines (the litlogger advertisement) and ``TPU available: False, ...`` on a machine without one;
- :class:`QuietRuns` holds loggers at WARNING from each ``fit``/``validate``/``test`` setup of a
  Trainer to its teardown, e.g. Lightning's ``LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES`` line.

Example:
    >>> import logging
    >>> with quiet_loggers("onnxscript"):
    ...     logging.getLogger("onnxscript").isEnabledFor(logging.INFO)
    False
    >>> logging.getLogger("onnxscript").getEffectiveLevel() == logging.getLogger().getEffectiveLevel()
    True
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import NamedTuple

import lightning.pytorch as L

#: The loggers of the ONNX export and quantization toolchain (``onnx_ir`` and ``onnxscript`` log
#: every optimisation pass at INFO, which Hydra's logging configuration prints).
ONNX_LOGGERS = ("onnx", "onnx_ir", "onnxscript", "onnxruntime")
#: Lightning's info loggers: device banners, tips, "`Trainer.fit` stopped", the stage lines.
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")
#: Lightning's line naming the visible GPUs, logged at every ``fit``/``validate``/``test`` on CUDA.
CUDA_LOGGER = "lightning.pytorch.accelerators.cuda"
#: The logger Lightning's ``rank_zero_info`` writes to (tips and banners included).
RANK_ZERO_LOGGER = "lightning.pytorch.utilities.rank_zero"
#: How Lightning's lines that say nothing about the run begin (:func:`without_noise`).
NOISE_PREFIXES = ("💡 Tip:", "TPU available: False")


class KnownWarning(NamedTuple):
    """A third-party warning the command hides: ``message`` (a regex matched at its start),
    ``category``, and ``module`` (a regex matched against the whole name of the module that warns)."""

    message: str
    category: type[Warning]
    module: str


_LEAFSPEC = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
_LIGHTNING_PYTREE = r"lightning\.pytorch\.utilities\._pytree\Z"

#: Recent torch releases deprecate ``LeafSpec``, which Lightning's own pytree helper still builds at
#: every ``fit``: nothing a user can act on. Both categories, as ``pyproject.toml`` filters them for the tests.
KNOWN_WARNINGS: tuple[KnownWarning, ...] = (
    KnownWarning(_LEAFSPEC, FutureWarning, _LIGHTNING_PYTREE),
    KnownWarning(_LEAFSPEC, DeprecationWarning, _LIGHTNING_PYTREE),
)


def quiet_known_warnings() -> None:
    """Ignore the :data:`KNOWN_WARNINGS` in this process (each once, however often it is called).

    Example:
        >>> with warnings.catch_warnings():
        ...     quiet_known_warnings()
        ...     ("ignore", FutureWarning) in [(f[0], f[2]) for f in warnings.filters]
        True
    """
    for known in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=known.message, category=known.category, module=known.module)


def setup_console() -> None:
    """What the ``lightning-spiral`` command does once before it runs: :func:`quiet_known_warnings`.

    Example:
        >>> with warnings.catch_warnings():
        ...     setup_console()
    """
    quiet_known_warnings()


@contextlib.contextmanager
def quiet_loggers(*names: str, level: int = logging.WARNING) -> Iterator[None]:
    """Hold the loggers ``names`` at ``level`` (default WARNING) inside the block, then restore their levels.

    Also a decorator: ``@quiet_loggers(*ONNX_LOGGERS)`` quiets every call of the function.

    Example:
        >>> @quiet_loggers("onnx_ir")
        ... def export() -> bool:
        ...     return logging.getLogger("onnx_ir.passes").isEnabledFor(logging.INFO)
        >>> export()
        False
    """
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, saved in zip(loggers, levels):
            logger.setLevel(saved)


def is_noise(record: logging.LogRecord) -> bool:
    """Whether ``record`` is a Lightning line that says nothing about the run (see :data:`NOISE_PREFIXES`)."""
    return str(record.msg).startswith(NOISE_PREFIXES)


@contextlib.contextmanager
def without_noise() -> Iterator[None]:
    """Drop Lightning's tips and ``TPU available: False`` lines logged inside the block (its other lines pass).

    Example:
        >>> logger = logging.getLogger(RANK_ZERO_LOGGER)
        >>> lines = ("💡 Tip: try our platform", "TPU available: False, using: 0 TPU cores", "GPU available: False")
        >>> with without_noise():
        ...     [bool(logger.filter(logging.makeLogRecord({"msg": line}))) for line in lines]
        [False, False, True]
    """
    logger = logging.getLogger(RANK_ZERO_LOGGER)

    def keep(record: logging.LogRecord) -> bool:
        return not is_noise(record)

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


class QuietRuns(L.Callback):
    """Hold the loggers ``names`` at WARNING from each setup of the Trainer to its teardown.

    Lightning logs some lines while it runs rather than when the Trainer is built (on CUDA, the
    ``LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES: [0]`` line at every ``fit``, ``validate`` and ``test``).
    The first ``shown`` runs keep them; an exception restores the levels as a teardown does.

    Args:
        names: the loggers to quiet, e.g. ``(CUDA_LOGGER,)``.
        shown: how many runs of the Trainer keep their lines (0: none).

    Example:
        >>> callback = QuietRuns([CUDA_LOGGER], shown=1)
        >>> callback.setup(None, None, "fit"); logging.getLogger(CUDA_LOGGER).isEnabledFor(logging.INFO)
        True
        >>> callback.teardown(None, None, "fit"); callback.setup(None, None, "test")
        >>> logging.getLogger(CUDA_LOGGER).isEnabledFor(logging.INFO)
        False
        >>> callback.teardown(None, None, "test")
    """

    def __init__(self, names: tuple[str, ...] | list[str], shown: int = 0) -> None:
        self.names = tuple(names)
        self.shown = shown
        self.runs = 0
        self._quiet: contextlib.ExitStack | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.restore()
        self.runs += 1
        if self.runs > self.shown:
            self._quiet = contextlib.ExitStack()
            self._quiet.enter_context(quiet_loggers(*self.names))

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.restore()

    def restore(self) -> None:
        """Give the loggers back their levels (nothing when they are not held)."""
        if self._quiet is not None:
            self._quiet.close()
            self._quiet = None


__all__ = [
    "CUDA_LOGGER",
    "KNOWN_WARNINGS",
    "LIGHTNING_LOGGERS",
    "ONNX_LOGGERS",
    "KnownWarning",
    "NOISE_PREFIXES",
    "QuietRuns",
    "quiet_known_warnings",
    "quiet_loggers",
    "setup_console",
    "without_noise",
]
