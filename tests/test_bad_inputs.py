"""Bad input, the whole message: each case names the argument, the value and what is allowed.

The wording is part of the API (Lightning's habit): these tests match the *exact* message, and
every error is raised before any training or file writing happens.
"""

from __future__ import annotations

import re

import pytest
import torch
from hydra import compose, initialize_config_module

from lightning_spiral import KDLoss, LogitMSELoss, PruningCallback, SpiralModule, build_spiral, load_model, prune
from lightning_spiral.data import DigitsDataModule, NpzDataModule
from lightning_spiral.distill import DKDLoss, LabelCrossEntropy, RKDLoss, ScheduledTemperature, WeightedSum
from lightning_spiral.errors import ModelFormatError, SpiralConfigError
from lightning_spiral.models import build_model
from lightning_spiral.pruning import BNSparsityCallback, MaskPruningCallback
from lightning_spiral.pruning.schedule import stage_macs_ratios

PYTHON_API = [
    (lambda: KDLoss(temperature=-2.0), "`temperature` must be a finite number > 0, got -2.0. Typical temperatures are 1-8. A ScheduledTemperature or "
     "CurriculumTemperature module also works."),
    (lambda: KDLoss(alpha=1.5), "`alpha` must be a number in [0, 1], got 1.5. 0 = labels only, 1 = teacher only."),
    (lambda: LogitMSELoss(alpha=-0.5), "`alpha` must be a number in [0, 1], got -0.5. 0 = labels only, 1 = teacher only."),
    (lambda: DKDLoss(beta=-1.0), "`beta` must be a finite number >= 0, got -1.0. DKD's reference weights are alpha=1, beta=8 (CIFAR-100) and ce_weight=1."),
    (lambda: RKDLoss(None, distance_weight=-1.0), "`distance_weight` must be a finite number >= 0, got -1.0. The paper's weights are "
     "distance_weight=25 and angle_weight=50."),
    (lambda: WeightedSum(weights={"kd": 1.0}, losses={"ce": LabelCrossEntropy()}),
     "`weights` and `losses` must name the same non-empty set of terms, got weights ['kd'] and losses ['ce']."),
    (lambda: ScheduledTemperature(start=4.0, end=0.0, epochs=5), "`end` must be a finite number > 0, got 0.0. Typical temperatures are 1-8."),
    (lambda: PruningCallback(amount=1.5),
     "`amount` must be a number in (0, 1), got 1.5. 0.3 removes 30% of the channels of every prunable layer "
     "(about 50% of the MACs)."),
    (lambda: PruningCallback(amount=0.2, target_macs_ratio=0.5),
     "Pass exactly one of `amount`, `target_macs_ratio`, `target_params_ratio` and `target_latency_ms`, got "
     "amount=0.2, target_macs_ratio=0.5, target_params_ratio=None, target_latency_ms=None."),
    (lambda: PruningCallback(amount=0.2, importance="l3"),
     "`importance` must be one of ['l1', 'l2', 'bn_scale', 'taylor', 'fpgm', 'random'], got 'l3'."),
    (lambda: PruningCallback(amount=0.2, round_to=0), "`round_to` must be an integer >= 1, got 0. Use None for exact channel counts, or e.g. 8 for tensor cores."),
    (lambda: PruningCallback(amount=0.2, taylor_batches=0), "`taylor_batches` must be an integer >= 1, got 0."),
    (lambda: MaskPruningCallback(amount=0.0),
     "`amount` must be a number in (0, 1), got 0.0. It is the final sparsity: 0.8 zeroes 80% of the weights."),
    (lambda: BNSparsityCallback(weight=-1.0), "`weight` must be a finite number > 0, got -1.0. It is the L1 coefficient on BatchNorm scales, e.g. 1e-4."),
    (lambda: stage_macs_ratios(0.2, 3, "exponential"),
     "`schedule` must be one of ['geometric', 'linear', 'cubic'], got 'exponential'."),
    (lambda: build_model("resnet21", num_classes=10, input_shape=(3, 32, 32)),
     "`name` must be one of ['small_cnn', 'resnet20', 'resnet56', 'vgg11_bn', 'vgg16_bn', 'vgg_bn', 'mobilenet_v2'], "
     "'torchvision.<name>' or 'hf.<bert|gpt2|vit>', got 'resnet21'."),
    (lambda: build_model("resnet20", num_classes=1, input_shape=(3, 32, 32)), "`num_classes` must be an integer >= 2, got 1."),
    (lambda: build_model("resnet20", num_classes=10, input_shape=(3, 32, 32), depth=3),
     "Unknown keyword arguments ['depth'] for model 'resnet20'; it accepts [] (`num_classes` is given directly "
     "and the input channels come from `input_shape`)."),
    (lambda: DigitsDataModule(val_fraction=1.5), "`val_fraction` must be a number in (0, 1), got 1.5."),
    (lambda: DigitsDataModule(batch_size=0), "`batch_size` must be an integer >= 1, got 0."),
    (lambda: NpzDataModule("/nonexistent/data.npz"), "`path` must be an existing .npz file, got '/nonexistent/data.npz' (not found)."),
    (lambda: SpiralModule(torch.nn.Linear(2, 2), num_classes=1), "`num_classes` must be an integer >= 2, got 1."),
    (lambda: prune(torch.nn.Linear(2, 2), torch.randn(1, 2)),
     "Pass exactly one of `amount`, `target_macs_ratio`, `target_params_ratio` and `target_latency_ms`, got "
     "amount=None, target_macs_ratio=None, target_params_ratio=None, target_latency_ms=None."),
]


@pytest.mark.parametrize(("call", "message"), PYTHON_API)
def test_python_api_rejects_bad_input_with_the_exact_message(call, message: str) -> None:
    with pytest.raises(SpiralConfigError, match=f"^{re.escape(message)}$"):
        call()


def test_missing_model_file() -> None:
    with pytest.raises(ModelFormatError, match=f"^{re.escape('`path` ' + repr('/nonexistent/model.pt') + ' does not exist or is not a file.')}$"):
        load_model("/nonexistent/model.pt")


CONFIG = [
    ("spiral.teacher=best", "`teacher` must be one of ['previous', 'original'], got 'best'."),
    ("spiral.max_stages=0", "`max_stages` must be an integer >= 1, got 0."),
    ("spiral.schedule=exponential", "`schedule` must be one of ['constant', 'geometric', 'linear', 'cubic'], got 'exponential'."),
    ("spiral.max_accuracy_drop=-0.1", "`max_accuracy_drop` must be a number in [0, 1], got -0.1."),
    ("data.val_fraction=2.0", "`val_fraction` must be a number in (0, 1), got 2.0."),
    ("pruning.importance=magnitude",
     "`importance` must be one of ['l1', 'l2', 'bn_scale', 'taylor', 'fpgm', 'random'], got 'magnitude'."),
]


@pytest.mark.parametrize(("override", "message"), CONFIG)
def test_config_rejects_bad_values_before_any_work(tmp_path, override: str, message: str) -> None:
    with initialize_config_module(config_module="lightning_spiral.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[override])
    with pytest.raises(SpiralConfigError, match=f"^{re.escape(message)}$"):
        build_spiral(cfg, output_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
