"""The benchmark profiles of ``compare.py`` (and ``spiral_search.py``): model, data, epochs and seeds.

A :class:`Profile` fixes everything that sets the cost and the difficulty of one comparison; every
method of a profile gets the same teacher, the same epochs after it and the same optimizer.

Example:
    >>> PROFILES["quick"].targets
    [0.2, 0.1]
    >>> PROFILES["sst2_bert"].budget(0.5)
    3
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "cifar10_subset.npz"
DEFAULT_TEXT = HERE.parent.parent / "shared" / "data" / "sst2"
TEACHER_SEED = 0  # the cached teacher trains with this seed, on this seed's validation split
METHODS = ("spiral_original", "spiral_previous", "iterative_ft", "oneshot_kd", "oneshot_ft", "modelpruning", "scratch", "scratch_kd")
# --distill: the spiral_original recipe with other distillation losses (spiral_original itself is the KD row)
DISTILL_METHODS = ("spiral_dkd", "spiral_kd_at", "spiral_fitnet", "spiral_rkd")



@dataclasses.dataclass(frozen=True)
class Profile:
    """Everything that sets the cost and the difficulty of one benchmark run."""

    model: str
    model_kwargs: dict[str, Any]
    teacher_epochs: int
    teacher_lr: float
    stage_lr: float
    stage_epochs: dict[float, list[int]]  # target MACs ratio -> epochs of each spiral stage (sum = budget)
    seeds: tuple[int, ...]
    spiral_schedule: str = "constant"  # how the multi-stage methods split the cut (constant = same fraction per stage)
    spiral_lr: float | None = None  # the multi-stage methods' stage learning rate (None: stage_lr)
    batch_size: int = 128
    train_subset: int | None = None
    test_subset: int | None = None
    temperature: float = 4.0
    alpha: float = 0.9
    latency_repeats: int = 20
    latency_rounds: int = 5  # alternating timing rounds over all final models (lightning_spiral.timing)
    latency_batch: int = 64  # the batch size of the table's speed-ups (besides batch 1)
    latency_layouts: tuple[str, ...] = ("contiguous", "channels_last")  # the faster one is reported
    optimizer: str = "sgd"  # sgd (momentum 0.9, Nesterov, weight decay 5e-4) | adamw (weight decay 0.01)
    data: str = "cifar10"  # cifar10 (the npz subset) | sst2 (a folder of SST-2 tsv files)
    # feature taps for --distill; vgg_bn: features.7 is the last 128-channel conv block (8x8), features.9 the 256-channel one
    feature_paths: dict[str, str] = dataclasses.field(default_factory=lambda: {"at": "features.7", "hint": "features.9"})

    @property
    def targets(self) -> list[float]:
        return sorted(self.stage_epochs, reverse=True)

    def budget(self, target: float) -> int:
        return sum(self.stage_epochs[target])


PROFILES: dict[str, Profile] = {
    # FACTS.md's calibration setting: half-width VGG-BN teacher, 12 epochs for every method. The spiral
    # recipe is spiral_search.py's winner: four or five stages, AGP (cubic) cut, one-epoch stages then one
    # long final stage, stage lr 0.05 (0.03 ties it within the seed spread, rounds 3-4); one-shot methods keep lr 0.01, their best.
    "quick": Profile(
        model="vgg_bn", model_kwargs={}, teacher_epochs=39, teacher_lr=0.05, stage_lr=0.01,
        stage_epochs={0.2: [1, 1, 1, 9], 0.1: [1, 1, 1, 1, 8]}, seeds=(0, 1, 2), spiral_schedule="cubic", spiral_lr=0.05,
    ),
    # issue 19's second network: CIFAR ResNet-20 (residual, 0.27M params, 41M MACs), the quick profile's
    # data, epochs and stage recipe; teacher lr 0.1 (the usual ResNet value at batch 128)
    "resnet20": Profile(
        model="resnet20", model_kwargs={}, teacher_epochs=39, teacher_lr=0.1, stage_lr=0.01,
        stage_epochs={0.2: [1, 1, 1, 9], 0.1: [1, 1, 1, 1, 8]}, seeds=(0, 1, 2), spiral_schedule="cubic", spiral_lr=0.05,
        feature_paths={"at": "stages.2", "hint": "stages.2"},
    ),
    # issue 19's latency-aware allocation (benchmarks/latency_allocation.py): the CIFAR MobileNetV2 (width 1,
    # 2.24M params, 92.8M MACs), where measured speed follows the MACs least; the quick profile's recipe
    "mobilenetv2": Profile(
        model="mobilenet_v2", model_kwargs={}, teacher_epochs=39, teacher_lr=0.05, stage_lr=0.01,
        stage_epochs={0.2: [1, 1, 1, 9], 0.1: [1, 1, 1, 1, 8]}, seeds=(0, 1, 2), spiral_schedule="cubic", spiral_lr=0.05,
        latency_layouts=("contiguous",), feature_paths={"at": "features.13", "hint": "features.13"},
    ),
    # For a GPU: ResNet-56, longer budgets, three seeds.
    "full": Profile(
        model="resnet56", model_kwargs={}, teacher_epochs=160, teacher_lr=0.1, stage_lr=0.01,
        stage_epochs={0.2: [10, 10, 40], 0.1: [8, 8, 8, 36]}, seeds=(0, 1, 2),
        feature_paths={"at": "stages.2", "hint": "stages.2"},
    ),
    # issue 18: a small BERT (4 layers, hidden 128, 4 heads of 32, FFN 512) trained from scratch on 10,000
    # SST-2 phrases at sequence length 64 (about 30 minutes on a 2-core CPU); whole heads and MLP neurons
    # pruned; latency at batch 32. benchmarks/transformer_latency.py times the hidden-256 size.
    "sst2_bert": Profile(
        model="hf.bert", model_kwargs={"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
                                       "intermediate_size": 512},
        teacher_epochs=4, teacher_lr=5e-4, stage_lr=2e-4, stage_epochs={0.5: [1, 2], 0.25: [1, 2]}, seeds=(0, 1, 2),
        spiral_schedule="cubic", batch_size=64, train_subset=10000, latency_batch=32, latency_layouts=("contiguous",),
        optimizer="adamw", data="sst2",
    ),
    # Seconds, for the smoke test: tiny subsets, one target, one seed.
    "smoke": Profile(
        model="vgg_bn", model_kwargs={"config": [8, "M", 16, "M"]}, teacher_epochs=1, teacher_lr=0.05, stage_lr=0.01,
        stage_epochs={0.5: [1, 1]}, seeds=(0,), batch_size=64, train_subset=256, test_subset=64, latency_repeats=2, latency_rounds=1,
        feature_paths={"at": "features.2", "hint": "features.2"},
    ),
}
# latency_allocation.py's smoke test: the smoke network four times wider (26 ms at batch 64 on 2 cores, not 4),
# so that a pruned channel changes the measured latency by more than the noise of timing it
PROFILES["smoke_latency"] = dataclasses.replace(PROFILES["smoke"], model_kwargs={"config": [32, "M", 64, "M"]})
