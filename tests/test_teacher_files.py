"""A trained teacher from files other tools write: Lightning checkpoints and plain state dicts."""

from __future__ import annotations

import lightning.pytorch as L
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from conftest import quiet_trainer
from lightning_spiral import PruningCallback, SpiralModule, save_model
from lightning_spiral.errors import ModelFormatError, SpiralConfigError
from lightning_spiral.io import carries_architecture, load_teacher
from lightning_spiral.models import build_model
from lightning_spiral.spiral import build_spiral

DIGITS = (1, 8, 8)


def _small_cnn(num_classes: int = 10) -> torch.nn.Module:
    return build_model("small_cnn", num_classes=num_classes, input_shape=DIGITS)


class LitClassifier(L.LightningModule):
    """A LightningModule as the Lightning docs write one: the network under ``self.net``."""

    def __init__(self, net: torch.nn.Module, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_checkpoint_of_a_users_module_loads_under_its_attribute(tmp_path, tiny_data) -> None:
    module = LitClassifier(_small_cnn())
    trainer = quiet_trainer(max_epochs=1)
    trainer.fit(module, datamodule=tiny_data)
    trainer.save_checkpoint(tmp_path / "user.ckpt")
    assert not carries_architecture(tmp_path / "user.ckpt", attr="net")
    teacher = load_teacher(tmp_path / "user.ckpt", _small_cnn(), attr="net")
    assert _same_weights(teacher, module.net) and not teacher.training


def test_checkpoint_of_a_pruned_spiral_module_carries_its_architecture(tmp_path, tiny_data) -> None:
    module = SpiralModule(_small_cnn(), num_classes=10)
    trainer = quiet_trainer(max_epochs=1, callbacks=[PruningCallback(amount=0.5, verbose=0)])
    trainer.fit(module, datamodule=tiny_data)
    trainer.save_checkpoint(tmp_path / "spiral.ckpt")
    assert carries_architecture(tmp_path / "spiral.ckpt")
    teacher = load_teacher(tmp_path / "spiral.ckpt")  # no model: rebuilt from the stored spec, pruned shapes
    assert teacher.features[0][0].out_channels == module.student.features[0][0].out_channels < 32
    assert _same_weights(teacher, module.student.cpu())


def test_plain_state_dict_with_and_without_a_prefix(tmp_path) -> None:
    net = _small_cnn()
    torch.save(net.state_dict(), tmp_path / "net.pt")
    torch.save({f"backbone.{k}": v for k, v in net.state_dict().items()}, tmp_path / "prefixed.pt")
    assert _same_weights(load_teacher(tmp_path / "net.pt", _small_cnn()), net)
    assert _same_weights(load_teacher(tmp_path / "prefixed.pt", _small_cnn(), attr="backbone"), net)


def test_a_state_dict_of_another_architecture_is_named_precisely(tmp_path) -> None:
    torch.save(_small_cnn(num_classes=5).state_dict(), tmp_path / "net.pt")
    with pytest.raises(ModelFormatError, match=r"net.pt' do not fit the SmallCNN they are loaded into: missing \[\], "
                       r"unexpected \[\], other shapes \['head.bias: file \(5,\), model \(10,\)', 'head.weight: file \(5, 64\), model \(10, 64\)'\]"):
        load_teacher(tmp_path / "net.pt", _small_cnn())


def test_wrong_attribute_lists_the_modules_attributes(tmp_path, tiny_data) -> None:
    trainer = quiet_trainer(max_epochs=1)
    trainer.fit(LitClassifier(_small_cnn()), datamodule=tiny_data)
    trainer.save_checkpoint(tmp_path / "user.ckpt")
    with pytest.raises(ModelFormatError, match=r"`teacher_checkpoint_attr`='student' names no network in the Lightning "
                       r"checkpoint '.*user.ckpt'; its module has the attributes \['net'\]"):
        load_teacher(tmp_path / "user.ckpt", _small_cnn())


def test_weights_only_file_needs_the_architecture_and_a_model_file_refuses_one(tmp_path) -> None:
    torch.save(_small_cnn().state_dict(), tmp_path / "net.pt")
    with pytest.raises(SpiralConfigError, match=r"`teacher_checkpoint` '.*net.pt' holds weights only; pass `model`"):
        load_teacher(tmp_path / "net.pt")
    save_model(_small_cnn(), tmp_path / "model.pt")
    with pytest.raises(SpiralConfigError, match=r"carries its own architecture; pass `model`=None with it"):
        load_teacher(tmp_path / "model.pt", _small_cnn())


def test_a_file_of_something_else_is_refused(tmp_path) -> None:
    torch.save({"epoch": 3, "weights": [1, 2]}, tmp_path / "other.pt")
    with pytest.raises(ModelFormatError, match=r"is neither a lightning-spiral model file, a Lightning checkpoint .* "
                       r"nor a state dict of tensors; found a dict with the keys \['epoch', 'weights'\]"):
        load_teacher(tmp_path / "other.pt", _small_cnn())


def _compose(*overrides: str):
    with initialize_config_module(config_module="lightning_spiral.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_config_loads_a_state_dict_into_the_model_node_and_a_model_file_without_it(tmp_path) -> None:
    net = instantiate(_compose().model, num_classes=10, input_shape=list(DIGITS))  # the shipped model node
    torch.save(net.state_dict(), tmp_path / "net.pt")
    spiral = build_spiral(_compose(f"spiral.teacher_checkpoint={tmp_path / 'net.pt'}"), output_dir=tmp_path / "a")
    assert spiral.blank is not None and _same_weights(spiral.template.network, net)  # the model node took the weights
    save_model(net, tmp_path / "model.pt")
    spiral = build_spiral(_compose(f"spiral.teacher_checkpoint={tmp_path / 'model.pt'}"), output_dir=tmp_path / "b")
    assert spiral.blank is None and _same_weights(spiral.template.network, net)  # the file carries its architecture
