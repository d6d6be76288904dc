"""A warning when coupled channels make :func:`~lightning_spiral.pruning.prune` cut a layer far more than asked.

torch-pruning removes coupled channels together. A forward that splits a layer's output and
recombines the parts channel by channel — a gated block, ``a, b = conv(x).chunk(2, 1);
a * torch.sigmoid(b)`` — couples channel ``i`` of ``a`` with channel ``i`` of ``b``, so the channels
removed from one half are removed from the other as well: ``amount=0.3`` removed 62.5% of such a
convolution's channels. Nothing fails, the network is just much narrower than asked.

The rule. A layer of ``C`` output channels (``Conv*.out_channels``, ``Linear.out_features``) is
expected to lose the fraction ``e`` that torch-pruning's own rounding gives at its amount:
``C - int(C * (1 - amount))`` channels, then the kept count rounded down to a multiple of
``round_to`` (keeping at least ``min(round_to, C)``). It is flagged when it lost more than
``min(1.5 e + 0.05, e + (1 - e) / 2)``: half as much again plus 5 points, or, at large amounts, more
than half of what it should have kept. A layer named in ``layer_amounts`` is not checked (its amount
was chosen, e.g. as the warning suggests); the others are held to the largest of ``amount`` and
every ``layer_amounts`` entry, since an override applies to the layer's whole coupled group. Plain
chains and residual networks (small_cnn, ResNets, VGGs, MobileNetV2, torchvision's ResNets,
EfficientNet, ConvNeXt, ViT) lose exactly ``e`` and stay silent. Global pruning ranks channels
across layers, so per-layer losses differ from ``amount`` by design and are not checked.

Example:
    >>> expected_fraction(16, 0.3, None), expected_fraction(16, 0.3, 8)
    (0.3125, 0.5)
    >>> allowed_fraction(0.3125)
    0.51875
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import torch.nn as nn


class CoupledPruningWarning(UserWarning):
    """A layer lost far more than ``amount`` of its channels through a coupled dependency group.

    Example:
        >>> import warnings
        >>> issubclass(CoupledPruningWarning, UserWarning)
        True
        >>> warnings.filterwarnings("ignore", category=CoupledPruningWarning)  # doctest: +SKIP
    """


def output_widths(model: nn.Module) -> dict[str, int]:
    """``{module path: output channels}`` of every convolution and linear layer of ``model``."""
    widths = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            widths[name] = module.out_channels
        elif isinstance(module, nn.Linear):
            widths[name] = module.out_features
    return widths


def expected_fraction(width: int, amount: float, round_to: int | None) -> float:
    """Fraction of ``width`` channels torch-pruning removes at ``amount`` from an uncoupled layer."""
    kept = int(width * (1 - amount))
    if round_to:
        kept = max(kept - kept % round_to, min(round_to, width))
    return (width - kept) / width


def allowed_fraction(expected: float) -> float:
    """The largest fraction a layer may lose before it is flagged (see the module docstring)."""
    return min(1.5 * expected + 0.05, expected + (1 - expected) / 2)


class FlaggedLayer(NamedTuple):
    """A layer that lost far more channels than its amount asked for."""

    name: str
    before: int
    after: int
    amount: float
    expected: float

    @property
    def removed(self) -> float:
        """Fraction of the output channels removed."""
        return 1 - self.after / self.before

    @property
    def smaller_amount(self) -> float:
        """An amount that would remove about the expected fraction, if the loss grows in proportion."""
        return max(round(self.amount * self.expected / self.removed, 2), 0.01)


def over_pruned_layers(
    before: Mapping[str, int], after: Mapping[str, int], amount: float, round_to: int | None
) -> list[FlaggedLayer]:
    """Every layer of ``before`` that lost more than :func:`allowed_fraction` of its channels, the worst first."""
    flagged = []
    for name, width in before.items():
        layer = FlaggedLayer(name, width, after.get(name, width), amount, expected_fraction(width, amount, round_to))
        if layer.removed > allowed_fraction(layer.expected):
            flagged.append(layer)
    return sorted(flagged, key=lambda layer: -layer.removed)


def coupling_message(flagged: Sequence[FlaggedLayer], amount: float, ignored: Sequence[str]) -> str:
    """The warning text: every flagged layer with its widths and losses, then the two ways to fix it."""
    layers = "; ".join(f"{layer.name!r}: {layer.before} -> {layer.after} channels, {layer.removed:.1%} removed where "
                       f"{layer.expected:.1%} was expected" for layer in flagged)
    keep = list(dict.fromkeys([*ignored, *(layer.name for layer in flagged)]))
    smaller = {layer.name: layer.smaller_amount for layer in flagged}
    return (
        f"Pruning with amount={amount:g} removed far more channels from {len(flagged)} layer(s) than asked ({layers}). "
        "Their channels are coupled: the output is split (torch.chunk, split, view) and the parts are combined "
        "channel by channel, so every channel removed from one part is removed from the others too. Keep them "
        f"with `ignored_layers={keep}`, or remove fewer with `layer_amounts={smaller}` or a smaller `amount`."
    )


def warn_over_pruned(
    model: nn.Module,
    before: Mapping[str, int],
    amount: float,
    overrides: Mapping[nn.Module, float],
    ignored: Sequence[nn.Module],
    round_to: int | None,
    stacklevel: int = 2,
) -> None:
    """One :class:`CoupledPruningWarning` naming every layer of ``model`` that lost far more than expected.

    Args:
        model: the network, pruned already.
        before: :func:`output_widths` of ``model`` before pruning.
        amount: the channel fraction pruning was asked for.
        overrides: per-layer amounts by module (``layer_amounts``, resolved).
        ignored: the modules whose output channels were kept.
        round_to: the channel multiple pruning kept.
        stacklevel: passed to :func:`warnings.warn`: the frame to blame, counted from this function
            (:func:`~lightning_spiral.pruning.prune` passes the depth of its own caller).
    """
    names = {id(module): name for name, module in model.named_modules()}
    chosen = {names.get(id(module)) for module in overrides}
    checked = {name: width for name, width in before.items() if name not in chosen}
    flagged = over_pruned_layers(checked, output_widths(model), max([amount, *overrides.values()]), round_to)
    if flagged:
        ignored_names = [names[id(module)] for module in ignored if id(module) in names]
        warnings.warn(coupling_message(flagged, amount, ignored_names), CoupledPruningWarning, stacklevel=stacklevel)


@contextlib.contextmanager
def quiet_coupling_warnings() -> Iterator[None]:
    """Silence :class:`CoupledPruningWarning` (trial prunes of a search: only the final pruning warns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CoupledPruningWarning)
        yield
