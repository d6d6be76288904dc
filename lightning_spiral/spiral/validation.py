"""Argument checks shared by the spiral driver: each raises before any work, naming the value."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
import torch.nn as nn
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.model_helpers import is_overridden

from lightning_spiral.checks import check_int, is_integer
from lightning_spiral.console import LIGHTNING_LOGGERS, quiet_loggers
from lightning_spiral.errors import ModelFormatError, PruningError, SpiralConfigError
from lightning_spiral.io import restore, save_model
from lightning_spiral.measure import count_macs
from lightning_spiral.models.spec import sample_batch
from lightning_spiral.pruning import prune
from lightning_spiral.pruning.coupling import quiet_coupling_warnings
from lightning_spiral.spiral.monitor import Monitor
from lightning_spiral.spiral.template import ModuleTemplate, detached_copy


def check_stage_epochs(stage_epochs: int | Sequence[int], max_stages: int) -> list[int]:
    """One epoch count per stage: an int is repeated, a list must have ``max_stages`` entries."""
    if is_integer(stage_epochs):
        return [check_int("stage_epochs", stage_epochs, 1)] * max_stages
    epochs = list(stage_epochs) if isinstance(stage_epochs, Sequence) and not isinstance(stage_epochs, str) else None
    if epochs is None or len(epochs) != max_stages:
        raise SpiralConfigError(
            f"`stage_epochs` must be one integer or a list of `max_stages`={max_stages} integers, got {stage_epochs!r} "
            f"(e.g. {[1] * (max_stages - 1) + [9]}: short stages, then a long last one)."
        )
    return [check_int("stage_epochs", e, 1) for e in epochs]


def check_strategy_keeps_the_model(trainer: Callable[..., L.Trainer]) -> None:
    """Spawned or forked worker processes train copies: the pruned student never returns to the driver."""
    strategy = (trainer.keywords if isinstance(trainer, functools.partial) else {}).get("strategy")
    name = strategy if isinstance(strategy, str) else None
    start_method = getattr(strategy, "_start_method", None)
    if (name and name.startswith(("ddp_spawn", "ddp_fork", "ddp_notebook"))) or start_method in ("spawn", "fork", "forkserver"):
        raise SpiralConfigError(
            f"`strategy`={name or type(strategy).__name__} runs training in spawned or forked processes, which cannot "
            "hand the pruned student back to the spiral (and crashed 1 run in 10 here). Use strategy='ddp' "
            "(`trainer=ddp_cpu` on CPU), which runs the whole spiral in every process."
        )


def check_trainer_builds(trainer: Callable[..., L.Trainer]) -> None:
    """Build the ``trainer`` partial once, as every stage will: Lightning's own checks (precision, devices,
    accelerator) fail now, and arguments the spiral sets per stage are refused rather than ignored."""
    bound = trainer.keywords if isinstance(trainer, functools.partial) else {}
    if bound.get("max_epochs") is not None:
        raise SpiralConfigError(
            f"`trainer.max_epochs`={bound['max_epochs']!r} would be ignored: the spiral sets each stage's epochs. "
            "Use `teacher_epochs` and `stage_epochs` (config: spiral.teacher_epochs, spiral.stage_epochs) and remove it."
        )
    try:
        with quiet_lightning():
            trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False)
    except (MisconfigurationException, ValueError, TypeError, RuntimeError) as err:
        raise SpiralConfigError(f"`trainer` is refused by Lightning: {' '.join(str(err).split())}") from err


def quiet_lightning() -> contextlib.AbstractContextManager[None]:
    """Silence Lightning's info lines (device banners) while a check builds a throwaway Trainer."""
    return quiet_loggers(*LIGHTNING_LOGGERS)


def check_module_optimizers(template: ModuleTemplate) -> None:
    """Call a copy's ``configure_optimizers`` once: a bad learning rate fails now, not inside the teacher's fit."""
    module = template.stage_module(detached_copy(template.network))
    try:
        module.configure_optimizers()
    except ValueError as err:  # torch's own argument checks ("Invalid learning rate: -1")
        raise SpiralConfigError(
            f"{type(module).__name__}.configure_optimizers failed before training: {' '.join(str(err).split())}. "
            "Fix the optimizer settings of your module."
        ) from err
    except Exception:  # noqa: BLE001 - it needs the Trainer it gets in fit (e.g. estimated_stepping_batches)
        return


def data_example(datamodule: L.LightningDataModule, batch_size: int = 1) -> torch.Tensor:
    """A batch of the data's ``input_shape``: random pixels, or token ids (id 1) where the data has a ``vocab_size``.

    Example:
        >>> from lightning_spiral.data import DigitsDataModule
        >>> data_example(DigitsDataModule(), 2).shape
        torch.Size([2, 1, 8, 8])
    """
    text = bool(getattr(datamodule, "vocab_size", None))
    return sample_batch((batch_size, *datamodule.input_shape), torch.long if text else torch.float32)


def check_network_fits_data(network: nn.Module, datamodule: L.LightningDataModule) -> None:
    """One forward pass on a sample batch: the network must take the data's shape and give its classes.

    For text data (a ``vocab_size``) the network's input embedding must also hold every token id
    first: one forward pass with id 1 would not notice a teacher trained on a smaller vocabulary.
    """
    check_vocabulary_fits(network, datamodule)
    was_training = network.training
    try:
        with torch.no_grad():
            output = network.eval()(data_example(datamodule, 2))
    except RuntimeError as err:
        raise SpiralConfigError(
            f"The network cannot take the data's input shape {tuple(datamodule.input_shape)}: {err}"
        ) from err
    finally:
        network.train(was_training)
    if output.dim() != 2 or output.shape[1] != datamodule.num_classes:
        raise SpiralConfigError(
            f"The network outputs shape {tuple(output.shape)} but the data has {datamodule.num_classes} classes; "
            f"teacher and student must output (N, {datamodule.num_classes}) logits. Build the model with "
            f"`num_classes={datamodule.num_classes}`."
        )


def check_vocabulary_fits(network: nn.Module, datamodule: L.LightningDataModule) -> None:
    """The network's first ``nn.Embedding`` (its token embedding) has a row for each of the data's ``vocab_size`` ids."""
    vocab_size = getattr(datamodule, "vocab_size", None)
    embedding = next((module for module in network.modules() if isinstance(module, nn.Embedding)), None)
    if vocab_size and embedding is not None and embedding.num_embeddings < vocab_size:
        raise SpiralConfigError(
            f"The network's token embedding has {embedding.num_embeddings} rows but the data's vocabulary has "
            f"`vocab_size`={vocab_size} ids: ids past {embedding.num_embeddings - 1} would crash training. A teacher "
            "trained with another vocabulary maps words to other ids; use the data settings it was trained with "
            "(the vocabulary is built from the training part: same `seed`, `train_subset`, `val_fraction`, "
            f"`min_freq`, `max_vocab_size`) or build the model with `vocab_size`={vocab_size}."
        )


PRUNING_AMOUNT_ARGUMENTS = ("amount", "target_macs_ratio", "target_params_ratio", "target_latency_ms")


def scheduled_probe(pruning: Callable[..., Any], schedule: str) -> Any:
    """The pruning callback a MACs ``schedule`` will build, checked now: the schedule sets each stage's target.

    A ``pruning`` partial that binds its own ``amount`` or target would be silently replaced, so it
    is refused, naming the argument.
    """
    bound = pruning.keywords if isinstance(pruning, functools.partial) else {}
    clashing = {name: bound[name] for name in PRUNING_AMOUNT_ARGUMENTS if bound.get(name) is not None}
    if clashing:
        pruning()  # a bad value gets its own error first
        given = ", ".join(f"{name}={value!r}" for name, value in clashing.items())
        raise SpiralConfigError(
            f"The pruning callback sets {given}, but `schedule`={schedule!r} gives every stage its own MACs target "
            "(landing on `target_macs_ratio` after `max_stages` stages) and would ignore it. Set it to None "
            "(config: `pruning.amount=null`) or use `schedule='constant'`, which prunes that much per stage."
        )
    return pruning(amount=None, target_macs_ratio=0.5)


def check_target_reachable(
    probe: Any, network: nn.Module, example: torch.Tensor, *, schedule: str, max_stages: int, target_macs_ratio: float
) -> None:
    """With a fixed ``amount`` per stage, prune a copy ``max_stages`` times: is the MACs target in reach?

    ``probe`` is a :class:`~lightning_spiral.pruning.PruningCallback` built from the run's ``pruning``
    partial. Schedules land on the target by construction and global ranking depends on trained
    weights: neither is checked.
    """
    if schedule != "constant" or probe.amount is None or probe.global_pruning:
        return
    copy_ = detached_copy(network)
    macs = count_macs(copy_, example)
    with quiet_coupling_warnings():  # the stages themselves warn
        for _ in range(max_stages):
            prune(copy_, example, amount=probe.amount, ignored_layers=probe.ignored_layers,
                  layer_amounts=probe.layer_amounts, round_to=probe.round_to, importance="l1")
    reachable = count_macs(copy_, example) / macs
    if reachable > target_macs_ratio:
        raise SpiralConfigError(
            f"`target_macs_ratio`={target_macs_ratio} cannot be reached: `max_stages`={max_stages} stages "
            f"of `amount`={probe.amount} keep {reachable:.1%} of the MACs. Raise `max_stages` or `pruning.amount`, "
            "or use a `schedule` (geometric, linear, cubic) that lands on the target."
        )


def check_run_directory(output_dir: Path, *, overwrite: bool, resume: bool) -> Path:
    """``output_dir`` as a run directory: resuming needs a run there, starting anew must not clobber one."""
    if resume and not output_dir.is_dir():
        raise SpiralConfigError(f"`resume` must name an existing run directory, got {str(output_dir)!r} (no such folder).")
    if resume and not (output_dir / "report.json").is_file():
        raise SpiralConfigError(
            f"`resume` needs a run directory with a report.json, but {str(output_dir)!r} has none "
            "(the run was interrupted before its teacher stage finished: start it again)."
        )
    writable = next(folder for folder in (output_dir, *output_dir.parents) if folder.exists())
    if not os.access(writable, os.W_OK):
        raise SpiralConfigError(
            f"`output_dir` {str(output_dir)!r} cannot be written ({str(writable)!r} is read-only for this user); "
            "choose a folder you can write to."
        )
    if (output_dir / "report.json").exists() and not (overwrite or resume):
        raise SpiralConfigError(
            f"`output_dir` {str(output_dir)!r} already holds a spiral run (report.json); "
            "choose a new directory or pass `overwrite=True`."
        )
    return output_dir


def check_round_trip(network: nn.Module, blank: nn.Module, example: torch.Tensor, probe: Any) -> None:
    """Prune a copy of ``network`` once, save it, restore it onto a copy of ``blank``: same outputs?

    What every stage does with its network, tried before any training: a network that
    torch-pruning cannot trace or prune, or whose pruned shapes cannot be rebuilt on a fresh
    instance of its class, is refused now instead of after the teacher trained.
    """
    pruned = detached_copy(network).eval()
    try:
        with quiet_coupling_warnings():  # the stages themselves warn
            prune(pruned, example, amount=0.2, ignored_layers=probe.ignored_layers, round_to=probe.round_to,
                  importance="l1")
        with tempfile.TemporaryDirectory() as folder:
            save_model(pruned, f"{folder}/probe.pt")
            restored = restore(detached_copy(blank), f"{folder}/probe.pt")
    except (PruningError, ModelFormatError) as err:
        raise SpiralConfigError(
            f"{type(network).__name__} failed the save -> restore check before training (a pruned copy must rebuild "
            f"on a fresh instance of its class): {err}"
        ) from err
    with torch.no_grad():
        difference = (pruned(example) - restored.eval()(example)).abs().max().item()
    if not difference <= 1e-5:
        raise SpiralConfigError(
            f"{type(network).__name__} restored from its saved pruning history gives other outputs (max |diff| "
            f"{difference:.3g}): its forward depends on something the weights and the history do not hold."
        )


def check_monitor_is_logged(template: ModuleTemplate, datamodule: L.LightningDataModule, monitor: Monitor) -> None:
    """One sanity validation batch of a copy of the module: does it log ``monitor.key``?"""
    module = template.stage_module(detached_copy(template.network))
    if not is_overridden("validation_step", module):
        raise SpiralConfigError(
            f"{type(module).__name__} has no `validation_step`; the spiral judges every stage on the validation metric "
            f"`monitor.key`={monitor.key!r}, which that step must `self.log`."
        )
    with quiet_lightning():
        trainer = L.Trainer(accelerator="cpu", devices=1, limit_val_batches=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)
        logged = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    if monitor.key not in logged:
        raise SpiralConfigError(
            f"`monitor.key`={monitor.key!r} is not logged by {type(module).__name__}.validation_step; it logs "
            f"{sorted(logged)}. Pass one of those as `monitor` (and `mode='min'` for a loss)."
        )
