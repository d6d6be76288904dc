"""Docs that run: every docstring example of the package is executed, and the public API has one.

Examples marked ``# doctest: +SKIP`` (they need a trained model or a network) are honoured.
``lightning_spiral.__main__`` is left out: importing it runs the command.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import sys

import pytest

import lightning_spiral
import lightning_spiral.distill
import lightning_spiral.pruning

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(lightning_spiral.__path__, "lightning_spiral.")
    if not info.name.endswith("__main__")
)
PUBLIC = sorted(  # classes and functions; constants and type aliases have no docstring of their own
    {(package.__name__, name) for package in (lightning_spiral, lightning_spiral.distill, lightning_spiral.pruning)
     for name in package.__all__ if inspect.isclass(obj := getattr(package, name)) or inspect.isfunction(obj)}
)


@pytest.mark.parametrize("module_name", ["lightning_spiral", *MODULES])
def test_docstring_examples_run(module_name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that save files write here
    module = importlib.import_module(module_name)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder().find(module, module_name):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def _runnable_examples(obj: object) -> list[str]:
    """Sources of the non-skipped examples in the docstrings of the module defining ``obj``."""
    tests = doctest.DocTestFinder().find(sys.modules[obj.__module__])
    return [example.source for test in tests for example in test.examples if not example.options.get(doctest.SKIP)]


@pytest.mark.parametrize(("package", "name"), PUBLIC)
def test_public_api_has_a_running_example(package: str, name: str) -> None:
    obj = getattr(sys.modules[package], name)
    assert any(name in source for source in _runnable_examples(obj)), f"{package}.{name} has no example that runs"
