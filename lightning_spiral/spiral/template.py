"""The user's LightningModule as the template every stage copies, carrying the last kept network.

The spiral never trains the module it was given. Each stage fits ``template.stage_module(net)``:
a deep copy of the user's module in which the network attribute (``"net"``, ``"backbone"``, ...,
or the module itself) is the stage's student. Everything else is the user's: ``training_step``,
``configure_optimizers``, metrics, logging, hyperparameters. The copy shares nothing with the
template, so a stage that fails leaves the template and every earlier network as they were.

The example input that traces the network (for pruning, MACs and latency) comes, in this order,
from the ``example_input`` argument, the module's ``example_input_array`` or the first training
batch of the datamodule (its first item when the batch is a tuple or list).

Example:
    >>> import lightning.pytorch as L, torch
    >>> from torch import nn
    >>> class LitRegressor(L.LightningModule):
    ...     def __init__(self) -> None:
    ...         super().__init__()
    ...         self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    >>> template = ModuleTemplate(LitRegressor(), "net")
    >>> student = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    >>> stage = template.stage_module(student)
    >>> stage.net is student, template.module.net is not student
    (True, True)
"""

from __future__ import annotations

import copy
from typing import Any

import lightning.pytorch as L
import torch
import torch.nn as nn

from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.module_network import network_of
from lightning_spiral.pruning.callback import check_network_runs


class ModuleTemplate:
    """The user's module, the name of its network attribute, and copies of it per stage.

    Args:
        module: the user's LightningModule (left untouched).
        network: the attribute holding the network to compress; ``None``: the module itself.
    """

    def __init__(self, module: L.LightningModule, network: str | None) -> None:
        if not isinstance(module, L.LightningModule):
            raise SpiralConfigError(
                f"`module` must be a LightningModule (your own, or SpiralModule), got {type(module).__name__}."
            )
        if network is not None and (not isinstance(network, str) or not network):
            raise SpiralConfigError(f"`network` must be the name of the module's network attribute or None, got {network!r}.")
        self.module = module
        self.attr = network
        self.network = self.network_of(module)  # validates the attribute

    def network_of(self, module: L.LightningModule) -> nn.Module:
        """The network ``module`` carries (``module.<attr>``, or ``module`` itself)."""
        if self.attr is None:
            return module
        if not isinstance(getattr(module, self.attr, None), nn.Module):
            raise SpiralConfigError(
                f"`network`={self.attr!r} names no nn.Module of {type(module).__name__}; its submodules are "
                f"{[name for name, _ in module.named_children()]}. Pass the attribute that holds the network to compress."
            )
        return network_of(module, self.attr)

    def stage_module(self, network: nn.Module) -> L.LightningModule:
        """A fresh copy of the user's module carrying ``network`` (``network`` itself when the module is the network)."""
        if self.attr is None:
            return network  # type: ignore[return-value]  # the network is a copy of the user's module
        # ``network`` pre-seeded in the memo: the copy refers to it wherever the template refers to its own network
        return detached_copy(self.module, memo={id(self.network): network})

    def example_input(self, given: torch.Tensor | None, datamodule: L.LightningDataModule) -> torch.Tensor:
        """A batch of one sample the network takes, on the CPU (see the module docstring for the order)."""
        if given is not None:
            source, example = "`example_input`", given
        elif isinstance(self.module.example_input_array, torch.Tensor):
            source, example = f"{type(self.module).__name__}.example_input_array", self.module.example_input_array
        else:
            source, example = "the first training batch", first_training_input(datamodule)
        if not isinstance(example, torch.Tensor) or example.dim() < 1 or len(example) < 1:
            raise SpiralConfigError(
                f"The example input from {source} must be a tensor batch (N, ...), got {type(example).__name__}. "
                "Pass `example_input=` a batch your network takes."
            )
        example = example[:1].detach().cpu()
        check_network_runs(self.network, example, source,
                           fix="pass `example_input=` (or set `example_input_array`) to what the network takes.")
        return example


def first_training_input(datamodule: L.LightningDataModule) -> Any:
    """The network input of the datamodule's first training batch: the batch, or its first item."""
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def detached_copy(network: nn.Module, memo: dict[int, Any] | None = None) -> nn.Module:
    """A deep copy of ``network``; a fitted LightningModule is copied without the Trainer it still points to."""
    trainer = getattr(network, "_trainer", None)
    if trainer is None:
        return copy.deepcopy(network, memo)
    network._trainer = None
    try:
        return copy.deepcopy(network, memo)
    finally:
        network._trainer = trainer
