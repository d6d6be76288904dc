"""A saved network's record on disk and back: safe reads, history replay, strict weight loading.

The pieces :mod:`lightning_spiral.io` (model files, Lightning checkpoints) and
:class:`~lightning_spiral.PruningCallback` (which writes the record into checkpoints) share:

- :func:`read_file` reads with ``torch.load(weights_only=True)`` only — tensors and plain
  containers, never pickled code; a file that pickles an object is refused with how to re-save it
  safely, and any unreadable, truncated or foreign file raises one ``ModelFormatError`` line;
- :func:`replay_history` turns a freshly constructed network into the pruned one by replaying the
  record's torch-pruning steps through a ``tp.DependencyGraph`` traced on the recorded input;
- :func:`load_weights` loads a state dict strictly, naming missing, unexpected and reshaped keys;
- :func:`store_network_record` puts a pruned network's record into a Lightning checkpoint under
  :data:`PRUNED_NETWORKS_KEY`, keyed by its attribute path in the module (``""``: the module itself).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from lightning_spiral.pruning import prune
    >>> def make_net() -> nn.Module:
    ...     return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> record = ModelSpec.from_dict(record_dict(prune(make_net(), torch.randn(1, 8), amount=0.5)))
    >>> replay_history(make_net(), record, "the example")[0].out_features
    8
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch_pruning as tp

from lightning_spiral.checks import refuse
from lightning_spiral.errors import ModelFormatError, SpiralConfigError
from lightning_spiral.models.pruning_fixups import sync_after_pruning
from lightning_spiral.models.spec import ModelSpec, attach_spec, class_path, example_for, spec_of
from lightning_spiral.module_network import shown

#: Key, in a Lightning checkpoint, of the records of the networks PruningCallback pruned: attribute path -> record.
PRUNED_NETWORKS_KEY = "lightning_spiral_pruned_networks"
#: What :func:`read_file` expects by default, for its messages.
MODEL_FILE = "lightning-spiral model file (written by save_model)"
#: The objects the safe unpickler refused, as torch names them ("GLOBAL posix.system").
_REFUSED_GLOBAL = re.compile(r"unsupported (?:global: )?GLOBAL (\S+)", re.IGNORECASE)
#: Torch's own detail inside its long weights-only error.
_UNPICKLER_DETAIL = re.compile(r"WeightsUnpickler error:\s*(.+)", re.DOTALL)
#: The C++ source location torch puts before some reasons: "[enforce fail at inline_container.cc:180] . ".
_TORCH_LOCATION = re.compile(r"\[enforce fail at [^\]]*\]\s*\.?\s*")
_SAFE_RESAVE = (
    "Re-save it from the code that trained it: lightning_spiral.save_model(model, path), or torch.save(model.state_dict(), "
    "path); for a Lightning checkpoint, keep objects out of its hyperparameters (save_hyperparameters(ignore=[...]))."
)


def record_dict(model: nn.Module) -> dict[str, Any]:
    """``model``'s record as plain values (an empty history for a network never pruned), naming its class."""
    return dataclasses.replace(spec_of(model) or ModelSpec(), network_class=class_path(model)).to_dict()


def replay_history(model: nn.Module, spec: ModelSpec, source: str) -> nn.Module:
    """Prune a freshly built ``model`` to the shapes of ``spec``'s history; attach a copy of ``spec``; return it.

    Args:
        model: the unpruned network.
        spec: the record whose history is replayed.
        source: where the record comes from, for the error message (``"'net.pt'"``).

    Raises:
        ModelFormatError: a step names a module ``model`` lacks or does not fit it.
    """
    if spec.pruning_history:
        was_training = model.training
        model.eval()  # tracing runs a forward pass: in train mode it would change BatchNorm statistics
        try:
            for steps in _runs_of_one_kind(spec.pruning_history):
                _replay(model, spec, steps)
        except Exception as err:  # whatever torch-pruning raises on a network that is not the saved one
            raise ModelFormatError(
                f"The pruning history of {source} does not fit the {type(model).__name__} it is replayed on "
                f"({type(err).__name__}: {err}). {same_class_hint(model, spec)}"
            ) from err
        finally:
            model.train(was_training)
        sync_after_pruning(model)
    return attach_spec(model, ModelSpec.from_dict(spec.to_dict()))


def _runs_of_one_kind(history: list[list[Any]]) -> list[list[list[Any]]]:
    """``history`` cut into consecutive runs of torch-pruning steps and single transformer steps."""
    runs: list[list[list[Any]]] = []
    for step in history:
        channel_step = isinstance(step[1], bool)
        if channel_step and runs and isinstance(runs[-1][-1][1], bool):
            runs[-1].append(step)
        else:
            runs.append([step])
    return runs


def _replay(model: nn.Module, spec: ModelSpec, steps: list[list[Any]]) -> None:
    """Torch-pruning steps through one dependency graph traced now; a transformer step directly."""
    # imported here: lightning_spiral.pruning's callback imports this module
    from lightning_spiral.pruning.transformer import apply_step, has_units, sync_configs

    if not isinstance(steps[0][1], bool):
        apply_step(model, steps[0])
    else:
        with torch.enable_grad():  # the dependency graph is traced through autograd
            graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_for(spec, model))
            graph.load_pruning_history([list(step) for step in steps])
    if has_units(model):
        sync_configs(model)


def check_unpruned(model: nn.Module, argument: str) -> None:
    """``model`` must be an ``nn.Module`` that was never pruned: the history is replayed from the start."""
    if not isinstance(model, nn.Module):
        raise refuse(argument, shown(model), "a freshly constructed nn.Module")
    spec = spec_of(model)
    if spec is not None and spec.pruning_history:
        raise SpiralConfigError(
            f"`{argument}` ({type(model).__name__}) was pruned already ({len(spec.pruning_history)} steps); "
            "pass a freshly constructed, unpruned instance: the saved history is replayed from the start."
        )


def same_class_hint(model: nn.Module, spec: ModelSpec) -> str:
    """The hint of every restore error: build the saved network's class with its constructor arguments."""
    saved = spec.network_class or "the saved network's class"
    return (f"Construct `model` ({class_path(model)}) with the class and constructor arguments of the saved network "
            f"({saved}).")


def read_file(path: Path, expected: str = MODEL_FILE) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers, never code.

    Args:
        path: the file to read.
        expected: what kind of file the caller wants, for the message (``"Lightning checkpoint (.ckpt)"``).

    Raises:
        ModelFormatError: the file is missing, unreadable, truncated, corrupt or not a torch file
            (one line naming ``path`` and ``expected``), or pickles an object, which is refused.
    """
    if not path.is_file():
        raise ModelFormatError(f"`path` {str(path)!r} does not exist or is not a file.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a foreign file makes torch raise anything (KeyError: 101 on text)
        refused = _REFUSED_GLOBAL.search(str(err))
        if refused:
            raise ModelFormatError(
                f"{str(path)!r} was refused: it pickles {refused.group(1)}, and loading pickled objects could run "
                f"code, so only tensors and plain values are read. {_SAFE_RESAVE}"
            ) from err
        raise ModelFormatError(f"{str(path)!r} is not a readable {expected}: {_why_unreadable(path, err)}.") from err


def _why_unreadable(path: Path, err: Exception) -> str:
    """What is wrong with the file: it is empty, or text, or torch's own reason (its first sentence)."""
    try:
        with path.open("rb") as handle:
            head: bytes | None = handle.read(512)
    except OSError:
        head = None
    if head == b"":
        return "the file is empty"
    if head is not None and _is_text(head):
        return "it is a text file, not one written by torch.save"
    detail = _UNPICKLER_DETAIL.search(str(err))
    text = _TORCH_LOCATION.sub("", detail.group(1) if detail else str(err)).strip()
    first = text.splitlines()[0].split(". ")[0][:160] if text else ""
    # torch's own advice to load with weights_only disabled is never passed on
    reason = f"{type(err).__name__}{': ' + first if first and 'weights_only' not in first else ''}"
    return f"torch.load failed ({reason}); it may be truncated, corrupt or another kind of file"


def _is_text(head: bytes) -> bool:
    """Whether the first bytes of a file are printable UTF-8 text (torch files begin with binary bytes)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:  # also a multi-byte character cut at the end: rare, and then torch's reason is shown
        return False
    return all(char.isprintable() or char.isspace() for char in text)


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], path: Path, prefix: str,
                 hint: str = "Check the `model` config and `teacher_checkpoint_attr`.") -> None:
    """Load the ``prefix``-ed entries of ``state`` into ``model``; every key and shape must match."""
    weights = {key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)}
    expected = {key: value.shape for key, value in model.state_dict().items()}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong_shape = [f"{k}: file {tuple(weights[k].shape)}, model {tuple(expected[k])}"
                   for k in sorted(set(expected) & set(weights)) if weights[k].shape != expected[k]]  # fmt: skip
    if missing or unexpected or wrong_shape:
        raise ModelFormatError(
            f"The weights in {str(path)!r}{f' under {prefix!r}' if prefix else ''} do not fit the "
            f"{type(model).__name__} they are loaded into: missing {_first(missing)}, unexpected {_first(unexpected)}, "
            f"other shapes {_first(wrong_shape)}. {hint}"
        )
    model.load_state_dict(weights)


def _first(items: list[str], count: int = 3) -> str:
    """Up to ``count`` items and how many more, for error messages."""
    more = f" and {len(items) - count} more" if len(items) > count else ""
    return f"{items[:count]}{more}"


def describe(payload: Any) -> str:
    """``a dict with the keys [...]`` or ``a <type>``, for error messages about a file's content."""
    if isinstance(payload, dict):
        return f"a dict with the keys {sorted(map(str, payload))[:8]}"
    return f"a {type(payload).__name__}"


def store_network_record(checkpoint: dict[str, Any], module: nn.Module, network: nn.Module) -> None:
    """Put ``network``'s record into ``checkpoint`` under its attribute path in ``module`` (``""``: ``module`` itself)."""
    path = next(name for name, child in module.named_modules() if child is network)
    checkpoint.setdefault(PRUNED_NETWORKS_KEY, {})[path] = record_dict(network)
