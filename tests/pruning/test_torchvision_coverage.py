"""Every covered torchvision model prunes structurally, runs, trains a step, and saves/reloads exactly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_spiral import load_model, prune, save_model
from lightning_spiral.measure import count_macs
from lightning_spiral.models import build_model

# (name, input side): 64x64 keeps the CNNs fast on CPU; ViT-B/16 needs its 224x224 patch grid.
COVERED = [
    ("resnet18", 64), ("resnet50", 64), ("vgg16_bn", 64), ("mobilenet_v2", 64), ("mobilenet_v3_small", 64),
    ("efficientnet_b0", 64), ("convnext_tiny", 64), ("vit_b_16", 224),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "side"), COVERED)
def test_torchvision_model_prunes_trains_and_reloads(tmp_path, name: str, side: int) -> None:
    shape = (3, side, side)
    model = build_model(f"torchvision.{name}", num_classes=10, input_shape=shape)
    example = torch.randn(1, *shape)
    macs = count_macs(model, example)
    # ViT by channels here (its width); by heads in tests/pruning/test_transformer_pruning.py
    prune(model, example, amount=0.3, units="channels")
    assert 0.35 < count_macs(model, example) / macs < 0.65  # 30% of channels: about half the MACs
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = F.cross_entropy(model(torch.randn(2, *shape)), torch.tensor([0, 1]))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    model.eval()
    save_model(model, tmp_path / "model.pt")
    with torch.no_grad():
        assert torch.allclose(load_model(tmp_path / "model.pt")(example), model(example), atol=1e-5)


def test_vit_widths_stay_multiples_of_the_head_count() -> None:
    model = build_model("torchvision.vit_b_16", num_classes=10, input_shape=(3, 224, 224))
    prune(model, torch.randn(1, 3, 224, 224), amount=0.3, units="channels")
    attention = model.encoder.layers[0].self_attention
    assert model.hidden_dim == model.conv_proj.out_channels == attention.embed_dim
    assert attention.embed_dim % attention.num_heads == 0 and attention.embed_dim < 768


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_a_quarter_of_the_macs_is_met_within_two_points(name: str) -> None:
    model = build_model(f"torchvision.{name}", num_classes=10, input_shape=(3, 32, 32))
    example = torch.randn(1, 3, 32, 32)
    macs = count_macs(model, example)
    prune(model, example, target_macs_ratio=0.25)
    assert 0.23 <= count_macs(model, example) / macs <= 0.25
