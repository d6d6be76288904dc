"""``PruningCallback``: *when* to prune in the Lightning lifecycle (the math lives in ``structured``).

Structured pruning replaces parameter objects, so it must happen before the optimizer is built and
before the strategy wraps the model (DDP, FSDP). ``Callback.setup("fit")`` is that moment: Lightning
calls it after ``LightningDataModule.setup`` and before ``configure_optimizers`` and
``Strategy.setup``. Every rank prunes the same way; a mismatch between ranks is an error.

Example:
    >>> import lightning.pytorch as L
    >>> from lightning_spiral import PruningCallback
    >>> callback = PruningCallback(amount=0.3, importance="l1")
    >>> trainer = L.Trainer(max_epochs=1, callbacks=[callback], logger=False)  # doctest: +SKIP
    >>> trainer.fit(my_module, datamodule)  # prunes `my_module.student` (or the module) first  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import lightning.pytorch as L
import torch
import torch.nn as nn
from lightning.pytorch.strategies import Strategy
from lightning.pytorch.utilities import rank_zero_info

from lightning_spiral.checks import check_bool, check_choice, check_int, is_integer
from lightning_spiral.errors import PruningError, SpiralConfigError
from lightning_spiral.measure import _eval_mode, count_macs, count_params
from lightning_spiral.model_record import store_network_record
from lightning_spiral.models.spec import spec_of
from lightning_spiral.module_network import network_of
from lightning_spiral.pruning.transformer import has_units
from lightning_spiral.pruning.importance import ImportanceName, check_importance_name, needs_gradients
from lightning_spiral.pruning.structured import (
    UNIT_MODES,
    UnitMode,
    check_layer_amounts,
    check_layer_paths,
    check_round_to,
    check_targets,
    per_layer_latency_plan,
    prune,
    prune_layer_amounts,
)
from lightning_spiral.pruning.latency_allocation import LatencyAllocation, check_latency_allocation
from lightning_spiral.pruning.target import amount_for_latency, amount_for_ratio, check_latency_batch_size

T = TypeVar("T")

VERBOSE_HINT = "0: silent, 1: one line per pruning, 2: also the layer widths."


class PruningCallback(L.Callback):
    """Prune a LightningModule's network structurally at the start of ``fit``.

    Args:
        amount: channel fraction in (0, 1) removed in this fit (one spiral stage).
        target_macs_ratio: instead of ``amount``: remove as many channels as needed to keep at most
            this fraction of the network's MACs (found by bisection before pruning).
        target_params_ratio: the same for the number of parameters.
        target_latency_ms: instead of ``amount``: prune until the measured CPU latency at
            ``latency_batch_size`` fits this budget (5% channel steps).
        latency_batch_size: batch size of that latency measurement.
        latency_allocation: how ``target_latency_ms`` is spent: ``"uniform"`` cuts every layer by the
            same fraction; ``"per_layer"`` cuts each dependency group by the latency it saves per
            importance lost (:mod:`~lightning_spiral.pruning.latency_allocation`). Under DDP global
            rank 0 measures and decides, and every rank prunes by its decision.
        importance: channel criterion: ``"l1"``, ``"l2"``, ``"bn_scale"``, ``"taylor"``, ``"fpgm"`` or
            ``"random"``. ``"taylor"`` accumulates gradients of the module's training loss (the
            distillation loss for :class:`~lightning_spiral.SpiralModule`) over ``taylor_batches``
            batches first; under DDP they are averaged across ranks so every rank prunes alike.
        ignored_layers: module paths (relative to the pruned network) whose output channels are
            kept; ``None`` keeps the final classifier.
        layer_amounts: per-layer overrides of ``amount`` by module path, e.g. ``{"features.0.0": 0.1}``.
        global_pruning: rank channels across layers instead of per layer.
        round_to: keep channel counts multiples of this number.
        units: how a transformer is pruned: ``"heads_mlp"`` (whole attention heads and MLP neurons),
            ``"mlp"`` (MLP neurons only) or ``"channels"``; networks without attention prune channels.
        drop_blocks: for a transformer: whole blocks removed first, the least influential ones.
        hidden: for a transformer with ``nn.Linear`` projections: also remove ``amount`` of the hidden width.
        attr: attribute of the LightningModule holding the network to prune; ``None`` means
            ``"student"`` when the module has one (as :class:`~lightning_spiral.SpiralModule` does),
            else the LightningModule itself.
        example_input: a batch the network takes, used to trace the graph (its first sample), e.g.
            ``torch.randint(0, 1000, (1, 16))`` for token ids; ``None``: see ``example_input_shape``.
        example_input_shape: instead of ``example_input``: the shape of one float input sample, e.g.
            ``(3, 32, 32)`` (zeros are traced). With neither, the module's ``example_input_array`` or
            the first training batch (its first item) is used; it must run through the network as it
            is, so a ``training_step`` that reshapes batches needs one of the two.
        taylor_batches: training batches whose gradients feed the ``"taylor"`` criterion.
        verbose: 0 silent, 1 one line per pruning, 2 also the layer widths.

    The callback prunes once per instance (``state_dict()["pruned"]``); build a new one per stage.
    A layer that loses far more channels than asked through coupled channels (a ``torch.chunk``
    gate) is named in a :class:`~lightning_spiral.pruning.CoupledPruningWarning`, as by :func:`prune`.
    Checkpoints written during the fit carry the pruned network's record, so
    :func:`~lightning_spiral.restore_checkpoint` loads them into a freshly constructed module.
    """

    def __init__(
        self,
        amount: float | None = None,
        target_macs_ratio: float | None = None,
        target_params_ratio: float | None = None,
        target_latency_ms: float | None = None,
        latency_batch_size: int = 64,
        latency_allocation: LatencyAllocation = "uniform",
        importance: ImportanceName = "l1",
        ignored_layers: Sequence[str] | None = None,
        layer_amounts: Mapping[str, float] | None = None,
        global_pruning: bool = False,
        round_to: int | None = None,
        units: UnitMode = "heads_mlp",
        drop_blocks: int = 0,
        hidden: bool = False,
        attr: str | None = None,
        example_input: torch.Tensor | None = None,
        example_input_shape: Sequence[int] | None = None,
        taylor_batches: int = 8,
        verbose: int = 1,
    ) -> None:
        super().__init__()
        self.amount, self.target_macs_ratio, self.target_params_ratio, self.target_latency_ms = check_targets(
            amount, target_macs_ratio, target_params_ratio, target_latency_ms)
        self.latency_batch_size = check_latency_batch_size(latency_batch_size)
        self.applied_amount: float | None = None
        self.importance = check_importance_name(importance)
        self.ignored_layers = check_layer_paths(ignored_layers)
        self.layer_amounts = check_layer_amounts(layer_amounts)
        self.global_pruning = check_bool("global_pruning", global_pruning)
        self.latency_allocation = check_latency_allocation(  # a transformer pruned by units is refused when it is seen
            latency_allocation, target_latency_ms=self.target_latency_ms, by_units=False,
            global_pruning=self.global_pruning, layer_amounts=self.layer_amounts)
        self.round_to = check_round_to(round_to)
        self.units = check_choice("units", units, UNIT_MODES)
        self.drop_blocks = check_int("drop_blocks", drop_blocks, 0)
        self.hidden = check_bool("hidden", hidden)
        self.attr = attr
        self.example_input = check_example_input(example_input, example_input_shape)
        self.example_input_shape = None if example_input_shape is None else tuple(example_input_shape)
        self.taylor_batches = check_int("taylor_batches", taylor_batches, 1)
        self.verbose = check_choice("verbose", verbose, (0, 1, 2), hint=VERBOSE_HINT)
        self.pruned = False
        self.summary: dict[str, int] = {}
        self._strategy: Strategy | None = None  # the fit's, set in setup: measured decisions are taken once

    # ----------------------------------------------------------------------------- Lightning hooks
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or self.pruned:
            return
        network = self.network_of(pl_module)
        self._strategy = trainer.strategy
        example_inputs = self.example_inputs(trainer, pl_module, network)
        before = (count_params(network), count_macs(network, example_inputs))
        pruned_what = "of heads and MLP neurons" if self.units != "channels" and has_units(network) else "of channels"
        if needs_gradients(self.importance):
            self.accumulate_gradients(trainer, pl_module, network)
        self.prune_network(network, example_inputs)
        network.zero_grad(set_to_none=True)
        after = (count_params(network), count_macs(network, example_inputs))
        self.pruned = True
        self.summary = {"params_before": before[0], "macs_before": before[1], "params_after": after[0], "macs_after": after[1]}
        check_same_architecture_on_all_ranks(trainer, network)
        if self.verbose:
            rank_zero_info(
                f"[PruningCallback] removed {self.applied_amount:.1%} {pruned_what}"
                f"{f' and {self.drop_blocks} blocks' if self.drop_blocks else ''} ({self.importance}): "
                f"params {before[0]:,} -> {after[0]:,}, MACs {before[1]:,} -> {after[1]:,}"
            )
        if self.verbose == 2:
            rank_zero_info(architecture_summary(network))

    def state_dict(self) -> dict[str, Any]:
        return {
            "pruned": self.pruned,
            "applied_amount": self.applied_amount,
            "importance": self.importance,
            "summary": dict(self.summary),
        }

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        """Store the pruned network's record, which :func:`~lightning_spiral.restore_checkpoint` replays."""
        network = self.network_of(pl_module)
        if spec_of(network) is not None:  # pruned in this fit or an earlier one
            store_network_record(checkpoint, pl_module, network)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pruned = bool(state_dict["pruned"])
        self.applied_amount = state_dict.get("applied_amount")
        self.summary = dict(state_dict.get("summary", {}))

    # ------------------------------------------------------------------------ override points
    def prune_network(self, network: nn.Module, example_inputs: torch.Tensor) -> None:
        """Apply the structural pruning; override to plug in another pruner."""
        options: dict[str, Any] = dict(
            importance=self.importance,
            global_pruning=self.global_pruning,
            ignored_layers=self.ignored_layers,
            layer_amounts=self.layer_amounts,
            round_to=self.round_to,
            units=self.units,
            drop_blocks=self.drop_blocks,
            hidden=self.hidden,
        )
        amount = self.amount
        if self.target_macs_ratio is not None:
            amount = amount_for_ratio(network, example_inputs, self.target_macs_ratio, metric="macs", prune_kwargs=options, prune_fn=prune)
        elif self.target_params_ratio is not None:
            amount = amount_for_ratio(network, example_inputs, self.target_params_ratio, metric="params", prune_kwargs=options, prune_fn=prune)
        elif self.target_latency_ms is not None and self.latency_allocation == "per_layer":
            amounts, self.applied_amount = self.decided_once(lambda: per_layer_latency_plan(
                network, example_inputs, self.target_latency_ms, self.latency_batch_size, options))
            prune_layer_amounts(network, example_inputs, amounts, options)
            return
        elif self.target_latency_ms is not None:
            amount = self.decided_once(lambda: amount_for_latency(
                network, example_inputs, self.target_latency_ms, batch_size=self.latency_batch_size, prune_kwargs=options,
                prune_fn=prune))
        prune(network, example_inputs, amount=amount, **options)
        self.applied_amount = amount

    def decided_once(self, decide: Callable[[], T]) -> T:
        """``decide()`` on global rank 0, its result (or its error) sent to every rank.

        A latency measurement differs from process to process, so ranks that each measured would
        prune to different architectures; here they all prune by rank 0's decision.
        """
        strategy = self._strategy
        if strategy is None or strategy.world_size == 1:
            return decide()
        outcome: tuple[T | None, tuple[str, str] | None] = (None, None)
        if strategy.global_rank == 0:
            try:
                outcome = (decide(), None)
            except (PruningError, SpiralConfigError) as error:  # every rank raises it: none waits forever
                outcome = (None, (type(error).__name__, str(error)))
        decision, failure = strategy.broadcast(outcome, src=0)
        if failure is not None:
            raise {"PruningError": PruningError, "SpiralConfigError": SpiralConfigError}[failure[0]](failure[1])
        return decision

    def accumulate_gradients(self, trainer: L.Trainer, pl_module: L.LightningModule, network: nn.Module) -> None:
        """Sum gradients of the training loss over ``taylor_batches`` batches, averaged across ranks.

        The network is kept in eval mode so BatchNorm statistics are not changed by this look-ahead.
        """
        batches = training_dataloader(trainer, needed_for="`importance`='taylor'")
        was_training = network.training
        network.eval()
        network.zero_grad(set_to_none=True)
        device = next(network.parameters()).device
        try:
            for index, (x, target) in enumerate(batches):
                if index == self.taylor_batches:
                    break
                x, target = x.to(device), target.to(device)
                if hasattr(pl_module, "training_loss"):
                    loss = pl_module.training_loss(x, target)[0]
                else:
                    loss = torch.nn.functional.cross_entropy(network(x), target)
                loss.backward()
        finally:
            network.train(was_training)
        if trainer.world_size > 1:
            for parameter in network.parameters():
                if parameter.grad is not None:
                    parameter.grad = trainer.strategy.reduce(parameter.grad, reduce_op="mean")

    def network_of(self, pl_module: L.LightningModule) -> nn.Module:
        """The network to prune: ``pl_module.<attr>``, its ``student``, or the module itself."""
        return network_of(pl_module, self.attr)

    def example_inputs(self, trainer: L.Trainer, pl_module: L.LightningModule, network: nn.Module) -> torch.Tensor:
        """One input sample (batch of 1) on the network's device, checked to run through the network."""
        example, source = self.example_and_source(trainer, pl_module)
        example = example[:1].to(next(network.parameters()).device)
        check_network_runs(network, example, source)
        return example

    def example_and_source(self, trainer: L.Trainer, pl_module: L.LightningModule) -> tuple[torch.Tensor, str]:
        """The example input batch and where it came from, in the order the class docstring gives."""
        if self.example_input is not None:
            return self.example_input, "`example_input`"
        if self.example_input_shape is not None:
            # zeros, not random values: the global RNG stays as the user seeded it
            return torch.zeros(1, *self.example_input_shape), "`example_input_shape`"
        if isinstance(pl_module.example_input_array, torch.Tensor):
            return pl_module.example_input_array, f"{type(pl_module).__name__}.example_input_array"
        batch = next(iter(training_dataloader(trainer, needed_for="Tracing the network without `example_input_shape`")))
        return (batch[0] if isinstance(batch, (list, tuple)) else batch), "the first training batch"


def check_example_input(
    example_input: torch.Tensor | None, example_input_shape: Sequence[int] | None
) -> torch.Tensor | None:
    """Validate the two ways of giving the tracing input; return the first sample of ``example_input`` (CPU)."""
    if example_input is not None and (
        not isinstance(example_input, torch.Tensor) or example_input.dim() < 1 or len(example_input) < 1
    ):
        shown = tuple(example_input.shape) if isinstance(example_input, torch.Tensor) else type(example_input).__name__
        raise SpiralConfigError(
            f"`example_input` must be a tensor batch (N, ...) with N >= 1 that the network takes, got {shown}."
        )
    if example_input is not None and example_input_shape is not None:
        raise SpiralConfigError(
            f"Pass at most one of `example_input` and `example_input_shape`, got a tensor of shape "
            f"{tuple(example_input.shape)} and {example_input_shape!r}."
        )
    if example_input_shape is not None and (
        isinstance(example_input_shape, str) or not isinstance(example_input_shape, Sequence)
        or len(example_input_shape) == 0 or not all(is_integer(d) and d >= 1 for d in example_input_shape)
    ):
        raise SpiralConfigError(
            f"`example_input_shape` must be the shape of one sample with positive sizes, e.g. (3, 32, 32), "
            f"got {example_input_shape!r}."
        )
    return None if example_input is None else example_input[:1].detach().cpu().clone()


PRUNING_CALLBACK_FIX = ("pass PruningCallback `example_input=` (a batch the network takes) or `example_input_shape=`, "
                        "or set `example_input_array` on the module to what the network takes.")


def check_network_runs(network: nn.Module, example: torch.Tensor, source: str, fix: str = PRUNING_CALLBACK_FIX) -> None:
    """One forward pass in eval mode; a failure names the network, the input's shape, its source and ``fix``."""
    try:
        with _eval_mode(network), torch.no_grad():
            network(example)
    except (RuntimeError, TypeError, ValueError, IndexError) as err:
        raise SpiralConfigError(
            f"{type(network).__name__} cannot take the example input of shape {tuple(example.shape)} from {source} "
            f"({type(err).__name__}: {str(err).splitlines()[0]}). If your `training_step` reshapes batches before "
            f"calling the network, {fix}"
        ) from err


def training_dataloader(trainer: L.Trainer, needed_for: str) -> Iterable[Any]:
    """The training loader of this fit, wherever it comes from: a datamodule, loaders passed to ``fit``,
    or the module's own ``train_dataloader``.

    Lightning builds ``trainer.train_dataloader`` only after ``setup``, so the fit loop's data source
    (the same object Lightning asks later) is asked directly. It is a private attribute: re-check it
    (tests/pruning/test_user_module.py does) when the Lightning pin in ``pyproject.toml`` moves.
    """
    source = trainer.fit_loop._data_source
    if not source.is_defined():
        raise SpiralConfigError(
            f"{needed_for} needs training batches, but this fit has no training data. Pass "
            "`train_dataloaders` or a `datamodule` to `fit`."
        )
    return source.dataloader()


def architecture_summary(network: nn.Module) -> str:
    """One line per parameter: ``name: shape``; used for logging and the rank check."""
    return "\n".join(f"{name}: {tuple(p.shape)}" for name, p in network.named_parameters())


def check_same_architecture_on_all_ranks(trainer: L.Trainer, network: nn.Module) -> None:
    """Raise :class:`PruningError` if another rank pruned to different shapes than rank 0."""
    if trainer.world_size == 1:
        return
    local = hashlib.sha256(architecture_summary(network).encode()).hexdigest()
    reference = trainer.strategy.broadcast(local, src=0)
    mismatch = trainer.strategy.reduce_boolean_decision(local != reference, all=False)
    if mismatch:
        raise PruningError(
            f"Ranks pruned {type(network).__name__} to different architectures (rank {trainer.global_rank} "
            f"fingerprint {local[:12]} vs rank 0 {reference[:12]}). Seed every rank identically "
            "(`seed_everything`) and use a deterministic importance criterion."
        )
