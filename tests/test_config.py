"""Compose every shipped config group option and instantiate what it builds (the configs users run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import DictConfig

import lightning_spiral
from conftest import SHARED_DATA
from lightning_spiral import PruningCallback, Spiral
from lightning_spiral.distill.combine import loss_terms
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.spiral import build_spiral

CONF = Path(lightning_spiral.__file__).resolve().parents[1] / "conf"


def _compose(*overrides: str) -> DictConfig:
    with initialize_config_module(config_module="lightning_spiral.conf", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_default_config_has_the_documented_override_keys() -> None:
    cfg = _compose()
    for key in ("seed", "pruning.amount", "pruning.importance", "distill.temperature", "distill.alpha",
                "spiral.teacher", "spiral.target_macs_ratio", "spiral.max_stages", "spiral.max_accuracy_drop"):
        node, _, leaf = key.rpartition(".")
        assert leaf in (cfg[node] if node else cfg), key


@pytest.mark.parametrize("option", _options("model"))
def test_model_options_build(option: str) -> None:
    cfg = _compose(f"model={option}")
    if option.startswith("hf_"):  # Hugging Face text models take token ids and the data's vocabulary size
        pytest.importorskip("transformers")
        data = {"input_shape": [64], "vocab_size": 500}
    else:
        data = {"input_shape": [3, 32, 32]}
    model = instantiate(cfg.model, num_classes=10, **data, _convert_="all")
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("option", _options("distill"))
def test_distill_options_build(option: str) -> None:
    loss = instantiate(_compose(f"distill={option}").distill)
    assert loss_terms(loss)  # a DistillationLoss, a FeatureLoss or a WeightedSum of them


def test_feature_distillation_config_runs_a_stage(tmp_path) -> None:
    overrides = ["distill=kd_at", "spiral.teacher_epochs=1", "spiral.stage_epochs=1", "spiral.max_stages=1", "spiral.target_macs_ratio=0.7",
                 "spiral.latency_repeats=2", "trainer.enable_progress_bar=false"]
    report = build_spiral(_compose(*overrides), output_dir=tmp_path / "run").run()
    assert report.stages[0].macs < report.teacher.macs


def test_quantize_config_ends_the_default_spiral_with_an_int8_model(tmp_path) -> None:
    pytest.importorskip("onnxruntime", reason="quantize=int8_ptq needs the deploy extra")
    overrides = ["quantize=int8_ptq", "spiral.teacher_epochs=2", "spiral.stage_epochs=1", "spiral.max_stages=1",
                 "spiral.target_macs_ratio=0.7", "spiral.max_accuracy_drop=1.0", "spiral.latency_repeats=2",
                 "trainer.enable_progress_bar=false"]
    report = build_spiral(_compose(*overrides), output_dir=tmp_path / "run").run()
    quantized = report.quantized
    assert quantized is not None and quantized.kind == "int8_ptq"
    assert (tmp_path / "run" / quantized.model_path).is_file() and 0 < quantized.size_bytes < report.final.size_bytes
    assert quantized.top1 > 0.5  # digits: the INT8 model still classifies (fp32 final is ~0.9+)


@pytest.mark.parametrize("option", _options("pruning"))
def test_pruning_options_build_a_callback_partial(option: str) -> None:
    # the default schedule sets each stage's MACs target; a constant schedule needs an amount
    assert isinstance(instantiate(_compose(f"pruning={option}").pruning)(target_macs_ratio=0.5), PruningCallback)
    assert isinstance(instantiate(_compose(f"pruning={option}", "pruning.amount=0.2").pruning)(), PruningCallback)


def test_a_pruning_amount_with_a_schedule_is_refused_not_ignored(tmp_path) -> None:
    with pytest.raises(SpiralConfigError, match=r"sets amount=0.3, but `schedule`='cubic' gives every stage its own MACs target"):
        build_spiral(_compose("pruning.amount=0.3"), output_dir=tmp_path / "run")
    spiral = build_spiral(_compose("pruning.amount=0.3", "spiral.schedule=constant", "spiral.stage_epochs=5"), output_dir=tmp_path / "run")
    assert spiral.probe_callback.amount == 0.3 and spiral.stage_targets is None


@pytest.mark.parametrize("option", _options("trainer"))
def test_trainer_options_compose(option: str) -> None:
    cfg = _compose(f"trainer={option}")
    assert cfg.trainer._partial_ and cfg.trainer._target_ == "lightning.pytorch.Trainer"


def test_trainer_default_builds_a_trainer(tmp_path) -> None:
    trainer = instantiate(_compose().trainer)(max_epochs=1, default_root_dir=str(tmp_path), logger=False)
    assert trainer.max_epochs == 1


def test_data_digits_builds() -> None:
    data = instantiate(_compose("data=digits").data)
    assert (data.num_classes, data.input_shape) == (10, (1, 8, 8))


def test_data_cifar10_without_files_is_a_clear_error(tmp_path) -> None:
    cfg = _compose("data=cifar10", f"data.root={tmp_path}")
    with pytest.raises(Exception, match="download"):
        instantiate(cfg.data).prepare_data()


@pytest.mark.data
@pytest.mark.skipif(not (SHARED_DATA / "cifar10_subset.npz").is_file(), reason="../shared/data/cifar10_subset.npz is absent")
def test_experiment_cifar10_resnet56_builds_on_the_npz_data(tmp_path) -> None:
    cfg = _compose("experiment=cifar10_resnet56", f"data.path={SHARED_DATA / 'cifar10_subset.npz'}")
    assert cfg.model.name == "resnet56" and cfg.data._target_.endswith("NpzDataModule")
    spiral = build_spiral(cfg, output_dir=tmp_path / "run")
    assert isinstance(spiral, Spiral) and spiral.datamodule.input_shape == (3, 32, 32)


def test_experiment_options_compose() -> None:
    for option in _options("experiment"):
        assert _compose(f"experiment={option}").spiral.max_stages >= 1


def test_bad_override_fails_before_training(tmp_path) -> None:
    with pytest.raises(Exception, match=r"`teacher` must be one of \['previous', 'original'\], got 'best'"):
        build_spiral(_compose("spiral.teacher=best"), output_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_bad_pruning_amount_in_config(tmp_path) -> None:
    with pytest.raises(SpiralConfigError, match=r"`amount` must be a number in \(0, 1\), got 1.5"):
        build_spiral(_compose("pruning.amount=1.5"), output_dir=tmp_path / "run")


def test_teacher_checkpoint_in_config_replaces_the_model(tmp_path) -> None:
    from lightning_spiral import build_model, save_model

    save_model(build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8)), tmp_path / "teacher.pt")
    spiral = build_spiral(_compose(f"spiral.teacher_checkpoint={tmp_path / 'teacher.pt'}"), output_dir=tmp_path / "run")
    assert spiral.blank is None and spiral.teacher_checkpoint == tmp_path / "teacher.pt"


def test_a_users_own_network_class_by_target_gets_only_the_data_facts_it_takes(tmp_path) -> None:
    """`model._target_=user_project.Backbone`: it takes `num_classes` but no `input_shape`; the built-in path wraps it."""
    from lightning_spiral.spiral import build_spiral
    from user_project import Backbone

    with initialize_config_module(config_module="lightning_spiral.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=small_cnn", "~model.name", "~model.widths",
                                                       "model._target_=user_project.Backbone", "+model.width=8"])
    spiral = build_spiral(cfg, output_dir=tmp_path / "run")
    assert type(spiral.template.network) is Backbone and spiral.template.network.l1[0].out_channels == 8
    assert spiral.settings.values["module"] is None and spiral.blank is not None  # stages restore onto Backbone
