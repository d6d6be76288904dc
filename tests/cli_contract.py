"""Helpers of the CLI contract tests: run ``lightning-spiral`` in this process or as a subprocess, snapshot a run.

:func:`run_cli` calls the real console entry point (:func:`lightning_spiral.cli.main`) with
``sys.argv`` set, as the shell would, and returns its exit status, what it printed and how long it
took; :func:`run_subprocess` does the same in a fresh interpreter. :func:`snapshot` hashes every
file of a folder, so a test can assert that a refused command left a run byte-identical.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

# a finished run these tests refuse to touch: one short stage
TINY_RUN = ["spiral.teacher_epochs=1", "spiral.stage_epochs=1", "spiral.max_stages=1", "spiral.latency_repeats=2",
            "trainer.enable_progress_bar=false", "spiral.verbose=0"]


@dataclasses.dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("lightning-spiral: error:")]


def run_cli(args: list[str]) -> CliResult:
    """``lightning-spiral *args`` in this process (the real entry point); the exit status is 0 when it returns."""
    from lightning_spiral import cli

    saved_argv, saved_env = sys.argv, {name: os.environ.get(name) for name in ("HYDRA_FULL_ERROR", cli.FULL_ERROR)}
    sys.argv = ["lightning-spiral", *args]
    os.environ["HYDRA_FULL_ERROR"] = "0"
    os.environ.pop(cli.FULL_ERROR, None)
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = saved_argv
        for name, value in saved_env.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
    return CliResult(code, out.getvalue(), err.getvalue(), time.perf_counter() - start)


def run_subprocess(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> CliResult:
    """``python -m lightning_spiral *args`` in a fresh interpreter."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "lightning_spiral", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})})
    return CliResult(result.returncode, result.stdout, result.stderr, time.perf_counter() - start)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) by its relative path, with its SHA-256."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def assert_refused_in_one_line(result: CliResult, fragment: str, code: int = 2) -> None:
    """Exit ``code``, exactly one error line containing ``fragment``, no traceback anywhere."""
    assert result.code == code, (result.code, result.stderr[-2000:])
    assert len(result.error_lines) == 1, result.stderr[-2000:]
    assert fragment in result.error_lines[0], result.error_lines[0]
    assert "Traceback" not in result.stdout + result.stderr
