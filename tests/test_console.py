"""A quiet console: the default command shows Lightning's banner once, no tips, no known deprecation
warnings and no INFO logs of the ONNX toolchain; ``spiral.verbose=2`` shows everything.

The command runs in this process (:func:`cli_contract.run_cli`); Lightning's own log handler writes
to the process's stderr, so what the console shows is read with ``capfd`` as well.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings

import pytest
from cli_contract import run_cli
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities._pytree import _tree_flatten

from lightning_spiral.console import (
    CUDA_LOGGER,
    KNOWN_WARNINGS,
    ONNX_LOGGERS,
    QuietRuns,
    quiet_known_warnings,
    quiet_loggers,
    without_noise,
)

SHORT = ["spiral.teacher_epochs=1", "spiral.stage_epochs=1", "spiral.latency_repeats=2"]
HAS_DEPLOY_EXTRA = all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript", "onnxruntime"))


def console_of(args: list[str], capfd: pytest.CaptureFixture[str]) -> str:
    """Everything ``lightning-spiral *args`` shows, its stdout and stderr and Lightning's own handler's."""
    capfd.readouterr()
    result = run_cli(args)
    out, err = capfd.readouterr()
    assert result.code == 0, (result.stderr + err)[-3000:]
    return "\n".join((result.stdout, result.stderr, out, err))


def test_the_default_command_shows_one_banner_and_no_chatter(tmp_path, capfd, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # the progress bar's line, in a console as narrow as they come
    shown = console_of([*SHORT, "spiral.max_stages=2", f"hydra.run.dir={tmp_path / 'run'}"], capfd)
    counts = {text: shown.count(text) for text in ("GPU available", "TPU available", "litlogger", "LeafSpec", "[INFO]")}
    assert counts == {"GPU available": 1, "TPU available": 0, "litlogger": 0, "LeafSpec": 0, "[INFO]": 0}, shown[-3000:]
    # the banner's "TPU available: False" line is left out with the tips
    assert "stage 2/2 · MACs" in shown and "(provisional)" in shown  # our own lines stay
    bars = [line for line in shown.splitlines() if line.startswith("Epoch ")]
    assert bars and all("loss: " in line and "val/loss: " in line and "top1" not in line for line in bars), shown[-3000:]


def test_verbose_2_shows_lightning_as_it_is(tmp_path, capfd) -> None:
    shown = console_of([*SHORT, "spiral.max_stages=1", "spiral.verbose=2", "trainer.enable_progress_bar=false",
                        f"hydra.run.dir={tmp_path / 'run'}"], capfd)
    assert shown.count("GPU available") >= 2 and "TPU available" in shown and "litlogger" in shown


@pytest.mark.skipif(not HAS_DEPLOY_EXTRA, reason="needs the deploy extra (onnx, onnxscript, onnxruntime)")
def test_quantizing_keeps_the_onnx_toolchain_quiet(tmp_path, capfd) -> None:
    shown = console_of([*SHORT, "spiral.max_stages=1", "quantize=int8_ptq", "trainer.enable_progress_bar=false",
                        f"hydra.run.dir={tmp_path / 'run'}"], capfd)
    assert "[Spiral] quantized (int8_ptq)" in shown
    assert "[INFO]" not in shown and "onnxscript" not in shown, shown[-3000:]


def test_known_warnings_are_ignored_only_from_the_module_that_warns() -> None:
    known, pytree = KNOWN_WARNINGS[0], "lightning.pytorch.utilities._pytree"
    message = "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)` instead."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_known_warnings()
        _tree_flatten(1)  # Lightning's own pytree helper: the LeafSpec warning of every fit
        warnings.warn_explicit(message, known.category, "_pytree.py", 21, module=pytree)
        warnings.warn_explicit(message, known.category, "mine.py", 1, module="my_project.trees")  # not ours to hide
        warnings.warn_explicit("another warning", known.category, "_pytree.py", 9, module=pytree)
    assert [(str(w.message), w.filename) for w in caught] == [(message, "mine.py"), ("another warning", "_pytree.py")]


def test_quiet_loggers_restores_the_levels_after_an_error() -> None:
    logger = logging.getLogger(ONNX_LOGGERS[1])
    logger.setLevel(logging.DEBUG)
    try:
        with pytest.raises(RuntimeError), quiet_loggers(*ONNX_LOGGERS):
            assert not logging.getLogger(f"{ONNX_LOGGERS[1]}.passes").isEnabledFor(logging.INFO)
            raise RuntimeError
        assert logger.level == logging.DEBUG
    finally:
        logger.setLevel(logging.NOTSET)


def test_without_noise_drops_only_tips_and_absent_tpus(caplog) -> None:
    lightning_logger = logging.getLogger("lightning.pytorch")  # Lightning's own logger does not propagate
    lightning_logger.addHandler(caplog.handler)
    try:
        with without_noise():
            rank_zero_info("💡 Tip: try installing [litlogger](https://pypi.org/project/litlogger/) to enable LitLogger")
            rank_zero_info("GPU available: False, used: False")
            rank_zero_info("TPU available: False, using: 0 TPU cores")
            rank_zero_info("TPU available: True, using: 8 TPU cores")
        rank_zero_info("💡 Tip: outside the block")
    finally:
        lightning_logger.removeHandler(caplog.handler)
    assert [record.getMessage() for record in caplog.records] == [
        "GPU available: False, used: False", "TPU available: True, using: 8 TPU cores", "💡 Tip: outside the block"]


def test_quiet_runs_keeps_the_first_runs_and_restores_on_an_exception() -> None:
    cuda = logging.getLogger(CUDA_LOGGER)
    callback = QuietRuns([CUDA_LOGGER], shown=1)
    enabled = []
    for stage in ("fit", "validate", "test"):
        callback.setup(None, None, stage)
        enabled.append(cuda.isEnabledFor(logging.INFO))
        callback.teardown(None, None, stage)
    assert enabled == [True, False, False] and cuda.level == logging.NOTSET
    callback.setup(None, None, "fit")
    callback.on_exception(None, None, RuntimeError("a failed stage"))
    assert cuda.level == logging.NOTSET
