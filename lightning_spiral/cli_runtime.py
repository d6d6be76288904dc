"""What the ``lightning-spiral`` command does around a run: signals, and when ``cli.log`` is written.

- :func:`interruptible`: SIGTERM and SIGINT raise :class:`RunInterrupted` wherever the run is. Inside
  a ``Trainer.fit`` Lightning calls our handler after its own (it keeps existing SIGTERM handlers),
  tears the fit down and re-raises; the stage is never recorded, so a resume redoes it. (Left to
  Lightning alone, SIGTERM ends ``fit`` with ``SIGTERMException``, a ``SystemExit`` of status 0, and
  Ctrl+C with status 1.)
- :func:`detach_file_logs`: Hydra's job log file handler is detached until the run is accepted, so a
  refused run writes nothing into an existing run directory; :func:`log_traceback` writes a
  training error's traceback to that file only (the console gets one line).

Example:
    >>> import signal
    >>> RunInterrupted(signal.SIGTERM).exit_code
    143
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from types import FrameType

log = logging.getLogger(__name__)
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(BaseException):
    """SIGTERM or SIGINT arrived; a ``BaseException`` like ``KeyboardInterrupt``, so no ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (143 for SIGTERM, 130 for SIGINT)."""
        return 128 + self.signum


def raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise RunInterrupted(signum)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM and SIGINT raise :class:`RunInterrupted` inside the block; the old handlers return after it."""
    previous = {signum: signal.signal(signum, raise_interrupted) for signum in HANDLED_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def file_handlers() -> list[logging.FileHandler]:
    """The root logger's file handlers: Hydra's job log (``<run dir>/cli.log``)."""
    return [handler for handler in logging.getLogger().handlers if isinstance(handler, logging.FileHandler)]


def detach_file_logs() -> Callable[[], None]:
    """Detach the job log's file handlers; return the function that attaches them again.

    The config opens the file lazily (``delay: true``), so a run refused while they are detached
    neither creates nor appends to ``cli.log``.
    """
    root, held = logging.getLogger(), file_handlers()
    for handler in held:
        root.removeHandler(handler)

    def attach() -> None:
        for handler in held:
            root.addHandler(handler)

    return attach


def log_traceback(err: BaseException) -> None:
    """Write ``err`` with its traceback to the job log file only."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "the run failed: %s", (err,),
                            (type(err), err, err.__traceback__))
    for handler in file_handlers():
        handler.handle(record)
