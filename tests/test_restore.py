"""Networks of the user's own classes: saved as weights + pruning history, restored onto a fresh instance.

The fresh-process tests import the user's classes from ``tests/user_project`` by name, as a user's
serving script would, and compare outputs with the network that was saved.
"""

from __future__ import annotations

import ast
import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from conftest import TinyDataModule, quiet_trainer
from user_project import AutoEncoder, ConvNet, LitAutoEncoder, LitClassifier, TokenClassifier
from lightning_spiral.errors import ModelFormatError, SpiralConfigError
from lightning_spiral.io import load_model, restore, restore_checkpoint, save_model
from lightning_spiral.model_record import PRUNED_NETWORKS_KEY
from lightning_spiral.models.spec import spec_of
from lightning_spiral.pruning import PruningCallback, prune

TESTS = Path(__file__).resolve().parent


def run_fresh(lines: list[str], cwd: Path) -> object:
    """Run ``lines`` in a new Python process (``tests/`` importable); return the literal it prints last."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    result = subprocess.run([sys.executable, "-c", "\n".join(lines)], capture_output=True, text=True, timeout=300,
                            cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return ast.literal_eval(result.stdout.strip().splitlines()[-1])


def trained_statistics(net: torch.nn.Module) -> torch.nn.Module:
    """Give every BatchNorm non-default running statistics, so a restore that drops buffers shows."""
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    return net


def pruned_twice(net: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module:
    prune(net, example, amount=0.3)
    first = len(spec_of(net).pruning_history)
    prune(net, example, amount=0.3)
    assert len(spec_of(net).pruning_history) > first  # the second stage appends to the first
    return net.eval()


def test_user_classes_pruned_twice_restore_in_a_fresh_process(tmp_path) -> None:
    cases = {  # name: (network, the constructor call the fresh process makes, input batch)
        "conv": (ConvNet(width=12, num_classes=5), "ConvNet(width=12, num_classes=5)", torch.randn(4, 1, 8, 8)),
        "autoencoder": (AutoEncoder(hidden=24, latent=6), "AutoEncoder(hidden=24, latent=6)", torch.randn(4, 64)),
    }
    lines = ["import torch", "from lightning_spiral import restore", "from user_project import AutoEncoder, ConvNet",
             "result = {}"]
    for name, (net, constructor, x) in cases.items():
        pruned_twice(trained_statistics(net), x[:1])
        save_model(net, tmp_path / f"{name}.pt")
        torch.save({"x": x, "y": net(x).detach()}, tmp_path / f"{name}_io.pt")
        lines += [f"m = restore({constructor}, {name!r} + '.pt'); d = torch.load({name!r} + '_io.pt')",
                  f"result[{name!r}] = ((m(d['x']) - d['y']).abs().max().item(), m.training)"]
    assert cases["conv"][0].stem[0].out_channels < 12 and cases["autoencoder"][0].encoder[0].out_features < 24
    result = run_fresh([*lines, "print(result)"], tmp_path)
    assert result == {name: (pytest.approx(0.0, abs=1e-5), False) for name in cases}


def test_the_record_of_a_user_network_and_an_integer_input(tmp_path) -> None:
    net = pruned_twice(AutoEncoder(), torch.randn(1, 64))
    record = spec_of(net)
    assert (record.name, record.kwargs, record.input_shape, record.input_dtype) == (None, None, (64,), "float32")
    assert record.network_class == "user_project.models.AutoEncoder"
    twin = copy.deepcopy(net)
    assert spec_of(twin) == record and spec_of(twin) is not record  # survives deepcopy, independent
    tokens = torch.randint(0, 50, (3, 7))
    classifier = prune(TokenClassifier(vocab=50), tokens[:1], amount=0.5).eval()
    assert spec_of(classifier).input_dtype == "int64"  # the replay traces with token ids, not floats
    save_model(classifier, tmp_path / "tokens.pt")
    restored = restore(TokenClassifier(vocab=50), tmp_path / "tokens.pt")
    assert torch.equal(restored(tokens), classifier(tokens))


@pytest.fixture(scope="module")
def saved_conv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("saved") / "conv.pt"
    save_model(pruned_twice(ConvNet(width=12), torch.randn(1, 1, 8, 8)), path)
    return path


def test_restore_onto_another_class_or_constructor_names_both(saved_conv, tmp_path) -> None:
    hint = r"Construct `model` \(user_project\.models\.{}\) with the class and constructor arguments of the saved network \(user_project\.models\.ConvNet\)"
    with pytest.raises(ModelFormatError, match=r"The pruning history of '.*conv.pt' does not fit the AutoEncoder .*"
                       + hint.format("AutoEncoder")):
        restore(AutoEncoder(), saved_conv)
    save_model(ConvNet(width=8), tmp_path / "unpruned.pt")
    with pytest.raises(ModelFormatError, match=r"do not fit the ConvNet they are loaded into: missing \[\], unexpected \[\], "
                       r"other shapes \['block\.0\.bias: file \(16,\), model \(32,\)'.*" + hint.format("ConvNet")):
        restore(ConvNet(width=16), tmp_path / "unpruned.pt")


def test_restore_refuses_a_pruned_instance_and_load_model_points_to_restore(saved_conv) -> None:
    with pytest.raises(SpiralConfigError, match=r"`model` \(ConvNet\) was pruned already \(\d+ steps\); pass a freshly"):
        restore(restore(ConvNet(width=12), saved_conv), saved_conv)
    with pytest.raises(ModelFormatError, match=r"holds a network of user_project\.models\.ConvNet \(no registry name\).* "
                       r"`lightning_spiral\.restore\(ConvNet\(\.\.\.\), path\)`"):
        load_model(saved_conv)


@pytest.fixture(scope="module")
def fitted_checkpoint(tmp_path_factory) -> tuple[LitClassifier, Path]:
    """A docs-style module fitted with PruningCallback and ModelCheckpoint: the module and its last.ckpt."""
    folder = tmp_path_factory.mktemp("fit")
    torch.manual_seed(0)
    module = LitClassifier(backbone=trained_statistics(ConvNet()))
    callbacks = [PruningCallback(amount=0.5, attr="backbone", verbose=0), ModelCheckpoint(dirpath=folder, save_last=True)]
    quiet_trainer(max_epochs=1, enable_checkpointing=True, callbacks=callbacks).fit(module, datamodule=TinyDataModule())
    return module.eval(), folder / "last.ckpt"


def test_checkpoint_of_a_pruned_user_module_restores_in_a_fresh_process(fitted_checkpoint, tmp_path) -> None:
    module, checkpoint = fitted_checkpoint
    payload = torch.load(checkpoint, weights_only=True)  # a Lightning 2.6 checkpoint with plain hyperparameters
    assert payload["hyper_parameters"] == {"learning_rate": 2e-3}
    assert list(payload[PRUNED_NETWORKS_KEY]) == ["backbone"]
    assert module.backbone.stem[0].out_channels == 8
    x = torch.randn(5, 1, 8, 8)
    torch.save({"x": x, "y": module(x).detach()}, tmp_path / "io.pt")
    result = run_fresh([
        "import torch", "from lightning_spiral import restore_checkpoint", "from user_project import ConvNet, LitClassifier",
        f"m = restore_checkpoint(LitClassifier(backbone=ConvNet()), {str(checkpoint)!r}); d = torch.load('io.pt')",
        "print(((m(d['x']) - d['y']).abs().max().item(), m.training, m.backbone.stem[0].out_channels))",
    ], tmp_path)
    assert result == (pytest.approx(0.0, abs=1e-5), False, 8)


def test_checkpoint_errors_name_the_attribute_and_the_module(fitted_checkpoint, tmp_path) -> None:
    _, checkpoint = fitted_checkpoint
    with pytest.raises(ModelFormatError, match=r"`attr`='net' names no pruned network recorded in '.*last.ckpt'; it records \['backbone'\]"):
        restore_checkpoint(LitClassifier(backbone=ConvNet()), checkpoint, attr="net")
    with pytest.raises(SpiralConfigError, match=r"`module` \(LitAutoEncoder\) has no network 'backbone', which the checkpoint records"):
        restore_checkpoint(LitAutoEncoder(), checkpoint)
    # what Lightning writes when `save_hyperparameters()` keeps the backbone: the module pickled among the hyperparameters
    torch.save({"state_dict": {}, "hyper_parameters": {"backbone": ConvNet()}}, tmp_path / "pickled.ckpt")
    with pytest.raises(ModelFormatError, match=r"pickled.ckpt' was refused: it pickles user_project\.models\.ConvNet, and loading "
                       r"pickled objects could run code, .* keep objects out of its hyperparameters"):
        restore_checkpoint(LitClassifier(backbone=ConvNet()), tmp_path / "pickled.ckpt")
