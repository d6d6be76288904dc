"""Build a :class:`Spiral` from a composed Hydra config: every object comes from a ``_target_``.

The config has the nodes ``data``, ``model``, ``distill``, ``pruning`` (a partial), ``trainer`` (a
partial), ``quantize`` (the optional last stage) and ``spiral`` (the driver's own settings, including the optimizer and scheduler
partials), plus ``seed``, and optionally ``module``: your own LightningModule by ``_target_`` (its
network nested in it, lightning-hydra-template style), with ``spiral.network`` naming the attribute
that holds the network and ``spiral.monitor`` the validation metric that judges a stage; the
``model`` node is then unused. The model node receives ``num_classes`` and ``input_shape`` from the
instantiated datamodule when its target takes them, so model configs never repeat data facts and
your own network class (``model._target_=my_package.MyNet``) needs no such arguments. With ``spiral.teacher_checkpoint``
the model node is the architecture of a weights-only file (a state dict, a Lightning checkpoint of
your own module); it is not built for files that carry their own (a model file, a SpiralModule checkpoint).

Example:
    >>> from hydra import compose, initialize_config_module
    >>> with initialize_config_module(config_module="lightning_spiral.conf", version_base="1.3"):
    ...     cfg = compose(config_name="config", overrides=["spiral.max_stages=3", "spiral.stage_epochs=[1,1,9]"])
    >>> spiral = build_spiral(cfg, output_dir="runs/example")  # builds only; nothing is trained or written
    >>> spiral.max_stages, type(spiral.datamodule).__name__
    (3, 'DigitsDataModule')
    >>> report = spiral.run()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as L
from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from lightning_spiral.checks import check_int
from lightning_spiral.errors import SpiralConfigError, SpiralError
from lightning_spiral.io import carries_architecture
from lightning_spiral.spiral.driver import Spiral


def build_spiral(cfg: DictConfig, output_dir: str | os.PathLike, resume: bool = False) -> Spiral:
    """Instantiate data, model, loss, pruning and trainer partials and hand them to :class:`Spiral`.

    With ``resume`` the run in ``output_dir`` continues; its teacher comes from the run, but the
    model node is still built, so that the settings record compares the architecture too.
    """
    L.seed_everything(check_int("seed", cfg.seed, 0), workers=True, verbose=False)  # model initialisation is part of the run
    check_node_keys(cfg)
    with spiral_errors_unwrapped():
        datamodule = instantiate(cfg.data)
        module = instantiate(cfg.module, _convert_="all") if cfg.get("module") is not None else None
        model = None  # a user's module, or a teacher file that carries its own architecture, needs no model
        if module is None and needs_model(cfg):
            model = instantiate(cfg.model, **data_facts(cfg.model, datamodule), _convert_="all")
        return instantiate(
            cfg.spiral,
            model=model,
            module=module,
            datamodule=datamodule,
            trainer=instantiate(cfg.trainer),
            pruning=instantiate(cfg.pruning),
            loss=instantiate(cfg.distill),
            quantize=cfg.get("quantize"),  # a `_target_` node: instantiated by Hydra (an object would become a dict)
            output_dir=str(output_dir),
            resume=resume,
            seed=cfg.seed,
            _convert_="all",
        )


TARGET_NODES = ("data", "model", "module", "distill", "pruning", "trainer", "spiral", "spiral.optimizer", "spiral.scheduler")


def target_parameters(node: DictConfig) -> dict[str, inspect.Parameter] | None:
    """The parameters of a node's ``_target_``; ``None`` when it takes any keyword or cannot be imported
    (Hydra reports a target it cannot import in its own words)."""
    try:
        parameters = dict(inspect.signature(get_object(node._target_)).parameters)
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    return None if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()) else parameters


def check_node_keys(cfg: DictConfig) -> None:
    """Every key of a ``_target_`` node is an argument of its target: ``+pruning.bogus=1`` is refused by name."""
    for path in TARGET_NODES:
        node = OmegaConf.select(cfg, path)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        parameters = target_parameters(node)
        unknown = [key for key in node if parameters is not None and not key.startswith("_") and key not in parameters]
        if unknown:
            raise SpiralConfigError(
                f"unknown key `{path}.{unknown[0]}`: {node._target_} takes no argument {unknown[0]!r}; "
                f"it takes {sorted(name for name in parameters if name not in ('self', 'args', 'kwargs'))}."
            )


def data_facts(node: DictConfig, datamodule: L.LightningDataModule) -> dict[str, Any]:
    """``num_classes``, ``input_shape`` (and a text data set's ``vocab_size``) for the model's ``_target_``."""
    facts = {"num_classes": getattr(datamodule, "num_classes", None), "input_shape": list(getattr(datamodule, "input_shape", []))}
    if getattr(datamodule, "vocab_size", None):
        facts["vocab_size"] = datamodule.vocab_size
    parameters = target_parameters(node)
    return {name: value for name, value in facts.items() if (parameters is None or name in parameters) and name not in node}


def needs_model(cfg: DictConfig) -> bool:
    """Whether the ``model`` node is needed: no teacher file, or one of weights only (a missing file is the driver's error)."""
    checkpoint = cfg.spiral.get("teacher_checkpoint")
    if checkpoint is None or not Path(checkpoint).is_file():
        return True
    return not carries_architecture(checkpoint, cfg.spiral.get("teacher_checkpoint_attr"))


@contextlib.contextmanager
def spiral_errors_unwrapped() -> Iterator[None]:
    """Re-raise our own errors that Hydra wrapped in ``InstantiationException``, message intact."""
    try:
        yield
    except InstantiationException as err:
        cause = err.__cause__
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, SpiralError):
            raise cause from err
        raise
