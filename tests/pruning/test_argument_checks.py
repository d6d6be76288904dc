"""Bad numbers are refused with the one wording of :mod:`lightning_spiral.checks`, before any work.

Each case matches the *whole* message: the rule ("a finite number > 0", "an integer >= 1", "a
number in (0, 1)") comes from the checks module, the hint after it from the constructor. The
values are those a bug report found accepted (``target_latency_ms=-1``, ``latency_batch_size=0``,
``KDLoss(temperature=inf)``, which made the loss nan) and their relatives: nan, inf, negatives, bools.
"""

from __future__ import annotations

import re

import pytest
import torch

from lightning_spiral import DistillationCallback, PruningCallback, prune
from lightning_spiral.distill import (
    CurriculumTemperature,
    DKDLoss,
    KDLoss,
    LabelCrossEntropy,
    LogitMSELoss,
    RKDLoss,
    ScheduledTemperature,
    WeightedSum,
)
from lightning_spiral.errors import SpiralConfigError
from lightning_spiral.models import build_model
from lightning_spiral.pruning import BNSparsityCallback, MaskPruningCallback

NAN, INF = float("nan"), float("inf")
LATENCY = "`target_latency_ms` must be a finite number > 0, got {}. It is a CPU latency budget in milliseconds, e.g. 5.0."
BATCH = "`latency_batch_size` must be an integer >= 1, got {}. It is the batch size the latency is measured at, e.g. 64."
AMOUNT = "must be a number in (0, 1), got {}. 0.3 removes 30% of the channels of every prunable layer (about 50% of the MACs)."
TEMPERATURE = ("`{}` must be a finite number > 0, got {}. Typical temperatures are 1-8. A ScheduledTemperature or "
               "CurriculumTemperature module also works.")
BOUND = "`{}` must be a finite number > 0, got {}. Typical temperatures are 1-8."
DKD = "`{}` must be a finite number >= 0, got {}. DKD's reference weights are alpha=1, beta=8 (CIFAR-100) and ce_weight=1."
WEIGHT = "`weight` must be a finite number > 0, got {}. Typical weights are 0.5-10."


def _refused(call, message: str) -> None:
    with pytest.raises(SpiralConfigError, match=f"^{re.escape(message)}$"):
        call()


PRUNING = [  # keyword arguments of PruningCallback and prune(), and the whole message
    ({"target_latency_ms": -1}, LATENCY.format(-1)),
    ({"target_latency_ms": 0}, LATENCY.format(0)),
    ({"target_latency_ms": NAN}, LATENCY.format(NAN)),
    ({"target_latency_ms": INF}, LATENCY.format(INF)),
    ({"target_latency_ms": True}, LATENCY.format(True)),
    ({"target_latency_ms": "5"}, LATENCY.format("'5'")),
    ({"target_latency_ms": 5.0, "latency_batch_size": 0}, BATCH.format(0)),
    ({"target_latency_ms": 5.0, "latency_batch_size": 2.5}, BATCH.format(2.5)),
    ({"target_latency_ms": 5.0, "latency_batch_size": True}, BATCH.format(True)),
    ({"amount": NAN}, "`amount` " + AMOUNT.format(NAN)),
    ({"amount": INF}, "`amount` " + AMOUNT.format(INF)),
    ({"amount": True}, "`amount` " + AMOUNT.format(True)),
    ({"target_macs_ratio": NAN}, "`target_macs_ratio` must be a number in (0, 1), got nan. 0.25 keeps a quarter of the MACs."),
    ({"target_params_ratio": 1.0},
     "`target_params_ratio` must be a number in (0, 1), got 1.0. 0.25 keeps a quarter of the parameters."),
    ({"amount": 0.3, "layer_amounts": {"features.0.0": 1.5}}, "`layer_amounts['features.0.0']` " + AMOUNT.format(1.5)),
    ({"amount": 0.3, "layer_amounts": {"features.0.0": NAN}}, "`layer_amounts['features.0.0']` " + AMOUNT.format(NAN)),
    ({"amount": 0.3, "layer_amounts": [0.1]},
     "`layer_amounts` must be None or a mapping of module paths to amounts, got [0.1]. For example {'features.0.0': 0.1}."),
    ({"amount": 0.3, "ignored_layers": "head"},
     "`ignored_layers` must be None or a list of module paths, got 'head'. Pass a list, also for one layer: ['head']."),
    ({"amount": 0.3, "global_pruning": "yes"}, "`global_pruning` must be True or False, got 'yes'."),
    ({"amount": 0.3, "global_pruning": 1}, "`global_pruning` must be True or False, got 1."),
    ({"amount": 0.3, "round_to": True},
     "`round_to` must be an integer >= 1, got True. Use None for exact channel counts, or e.g. 8 for tensor cores."),
    ({"amount": 0.3, "round_to": 8.0},
     "`round_to` must be an integer >= 1, got 8.0. Use None for exact channel counts, or e.g. 8 for tensor cores."),
    ({"amount": 0.3, "importance": "l3"}, "`importance` must be one of ['l1', 'l2', 'bn_scale', 'taylor', 'fpgm', 'random'], got 'l3'."),
]


@pytest.mark.parametrize(("kwargs", "message"), PRUNING)
def test_pruning_callback_refuses(kwargs: dict, message: str) -> None:
    _refused(lambda: PruningCallback(**kwargs), message)


@pytest.mark.parametrize(("kwargs", "message"), PRUNING)
def test_prune_refuses_before_any_work(kwargs: dict, message: str) -> None:
    model = build_model("small_cnn", num_classes=10, input_shape=(1, 8, 8))
    widths = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    _refused(lambda: prune(model, torch.randn(1, 1, 8, 8), **kwargs), message)
    assert [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)] == widths


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"amount": 0.3, "taylor_batches": 0}, "`taylor_batches` must be an integer >= 1, got 0."),
        ({"amount": 0.3, "verbose": True},
         "`verbose` must be one of [0, 1, 2], got True. 0: silent, 1: one line per pruning, 2: also the layer widths."),
        ({"amount": 0.3, "example_input_shape": (3, 32.0, 32)},
         "`example_input_shape` must be the shape of one sample with positive sizes, e.g. (3, 32, 32), got (3, 32.0, 32)."),
        ({"amount": 0.3, "example_input_shape": 32},
         "`example_input_shape` must be the shape of one sample with positive sizes, e.g. (3, 32, 32), got 32."),
    ],
)
def test_pruning_callback_only_options(kwargs: dict, message: str) -> None:
    _refused(lambda: PruningCallback(**kwargs), message)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MaskPruningCallback(amount=NAN), "`amount` must be a number in (0, 1), got nan. It is the final sparsity: 0.8 zeroes 80% of the weights."),
        (lambda: MaskPruningCallback(amount=0.5, pruning_epochs=True),
         "`pruning_epochs` must be an integer >= 1, got True. None ramps the masks up over the first half of `max_epochs`."),
        (lambda: MaskPruningCallback(amount=0.5, verbose=3), "`verbose` must be one of [0, 1, 2], got 3. 0: silent, 1: overall sparsity, 2: also per layer."),
        (lambda: BNSparsityCallback(weight=INF), "`weight` must be a finite number > 0, got inf. It is the L1 coefficient on BatchNorm scales, e.g. 1e-4."),
    ],
)
def test_other_pruning_callbacks_refuse(build, message: str) -> None:
    _refused(build, message)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: KDLoss(temperature=INF), TEMPERATURE.format("temperature", INF)),
        (lambda: KDLoss(temperature=NAN), TEMPERATURE.format("temperature", NAN)),
        (lambda: KDLoss(temperature=-INF), TEMPERATURE.format("temperature", -INF)),
        (lambda: KDLoss(temperature=True), TEMPERATURE.format("temperature", True)),
        (lambda: DKDLoss(temperature=INF), TEMPERATURE.format("temperature", INF)),
        (lambda: KDLoss(alpha=NAN), "`alpha` must be a number in [0, 1], got nan. 0 = labels only, 1 = teacher only."),
        (lambda: LogitMSELoss(alpha=True), "`alpha` must be a number in [0, 1], got True. 0 = labels only, 1 = teacher only."),
        (lambda: DKDLoss(beta=INF), DKD.format("beta", INF)),
        (lambda: DKDLoss(alpha=NAN), DKD.format("alpha", NAN)),
        (lambda: DKDLoss(ce_weight=-1), DKD.format("ce_weight", -1)),
        (lambda: RKDLoss(None, distance_weight=NAN),
         "`distance_weight` must be a finite number >= 0, got nan. The paper's weights are distance_weight=25 and angle_weight=50."),
        (lambda: WeightedSum({"ce": INF}, {"ce": LabelCrossEntropy()}), "`weights['ce']` must be a finite number >= 0, got inf."),
        (lambda: ScheduledTemperature(start=INF, end=2.0, epochs=3), BOUND.format("start", INF)),
        (lambda: ScheduledTemperature(start=4.0, end=NAN, epochs=3), BOUND.format("end", NAN)),
        (lambda: ScheduledTemperature(start=4.0, end=2.0, epochs=3.0),
         "`epochs` must be an integer >= 2, got 3.0. A schedule needs a first and a last epoch."),
        (lambda: ScheduledTemperature(start=4.0, end=2.0, epochs=3, kind="step"), "`kind` must be one of ['linear', 'cosine'], got 'step'."),
        (lambda: CurriculumTemperature(high=INF), BOUND.format("high", INF)),
        (lambda: CurriculumTemperature(low=NAN), BOUND.format("low", NAN)),
        (lambda: CurriculumTemperature(initial=3.0, low=5.0, high=2.0), "`high` must be a number > `low`=5.0, got 2.0."),
        (lambda: CurriculumTemperature(initial=NAN), "`initial` must be a finite number, got nan."),
        (lambda: CurriculumTemperature(lambda_max=INF),
         "`lambda_max` must be a finite number > 0, got inf. It is the final strength of the reversed gradient, e.g. 1.0."),
        (lambda: CurriculumTemperature(epochs=0),
         "`epochs` must be an integer >= 1, got 0. Lambda rises from 0 to `lambda_max` over these epochs."),
    ],
)
def test_losses_and_temperatures_refuse(build, message: str) -> None:
    _refused(build, message)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weight": INF}, WEIGHT.format(INF)),
        ({"weight": NAN}, WEIGHT.format(NAN)),
        ({"weight": -1}, WEIGHT.format(-1)),
        ({"weight": True}, WEIGHT.format(True)),
        ({"mode": "sum"},
         "`mode` must be one of ['add', 'replace'], got 'sum'. 'add': user loss + weight x distillation; 'replace': weight x distillation alone."),
        ({"cache_teacher": "yes"}, "`cache_teacher` must be True or False, got 'yes'."),
        ({"targets": 3},
         "`targets` must be None or a function of the batch, got 3. For example `targets=lambda batch: batch['label']`."),
    ],
)
def test_distillation_callback_refuses(kwargs: dict, message: str) -> None:
    _refused(lambda: DistillationCallback(torch.nn.Linear(4, 2), **kwargs), message)


def test_the_edges_of_every_rule_are_accepted() -> None:
    callback = PruningCallback(target_latency_ms=1e-3, latency_batch_size=1, round_to=1, global_pruning=True)
    assert (callback.target_latency_ms, callback.latency_batch_size) == (1e-3, 1)
    assert KDLoss(temperature=1e-3, alpha=0).alpha == 0.0 and KDLoss(temperature=8, alpha=1).temperature == 8.0
    assert DKDLoss(alpha=0, beta=0, ce_weight=0).beta == 0.0
    assert CurriculumTemperature(epochs=1).epochs == 1
    assert DistillationCallback(torch.nn.Linear(4, 2), weight=1e-6).weight == 1e-6
