"""Transformers lose whole heads, MLP width and blocks; they still run, train and reload (issue 18)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torchvision.models import VisionTransformer

from lightning_spiral.errors import ModelFormatError, PruningError, SpiralConfigError
from lightning_spiral.io import restore, save_model
from lightning_spiral.measure import count_macs, count_params
from lightning_spiral.models.spec import spec_of
from lightning_spiral.pruning import prune
from lightning_spiral.pruning.head_pruned_attention import HeadPrunedAttention
from lightning_spiral.pruning.transformer_units import find_units

transformers = pytest.importorskip("transformers")
from lightning_spiral.models import build_model  # noqa: E402
from lightning_spiral.models.huggingface import save_pretrained  # noqa: E402

IDS = torch.randint(1, 100, (4, 24), generator=torch.Generator().manual_seed(0))
IDS[:, 18:] = 0  # padding: masked out of attention
IMAGES = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))

# name -> (registry name, input shape, config, example batch); every model has 4 heads, MLP 128, 3 blocks
MODELS = {
    "bert": ("hf.bert", (24,), dict(vocab_size=100, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                                    intermediate_size=128), IDS),
    "gpt2": ("hf.gpt2", (24,), dict(vocab_size=100, n_embd=64, n_layer=3, n_head=4, n_inner=128), IDS),
    "vit": ("hf.vit", (3, 32, 32), dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                                        intermediate_size=128, patch_size=8), IMAGES),
}


def hf_net(name: str) -> nn.Module:
    registry_name, shape, config, _ = MODELS[name]
    torch.manual_seed(0)
    return build_model(registry_name, num_classes=2, input_shape=shape, **config).eval()


def torchvision_vit() -> nn.Module:
    torch.manual_seed(0)
    return VisionTransformer(32, 8, num_layers=3, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=10).eval()


def shapes(net: nn.Module) -> tuple[list[int], list[int]]:
    """(heads per attention layer, neurons per MLP)."""
    units = find_units(net)
    return ([u.groups * u.group_size for u in units if u.kind == "heads"], [u.groups for u in units if u.kind == "mlp"])


def one_training_step(net: nn.Module, x: torch.Tensor) -> None:
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(net(x), torch.zeros(len(x), dtype=torch.long))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(part.module.weight.grad is not None for unit in find_units(net) for part in unit.parts
               if hasattr(part.module, "weight"))  # the pruned projections take part in training
    net.eval()


@pytest.mark.parametrize("name", [*MODELS, "torchvision_vit"])
def test_heads_mlp_and_a_block_are_removed_and_the_model_trains(name: str) -> None:
    net = torchvision_vit() if name == "torchvision_vit" else hf_net(name)
    x = IMAGES if name == "torchvision_vit" else MODELS[name][3]
    assert shapes(net) == ([4, 4, 4], [128, 128, 128])
    macs, params = count_macs(net, x[:1]), count_params(net)

    prune(net, x, amount=0.5, drop_blocks=1)

    assert shapes(net) == ([2, 2], [64, 64])  # whole heads (head size 16 kept), half the MLP, one block fewer
    units = find_units(net)
    assert all(u.head_dim == 16 for u in units if u.kind == "heads")
    assert sorted(step[1] for step in spec_of(net).pruning_history) == ["blocks", "heads", "heads", "mlp", "mlp"]
    assert count_macs(net, x[:1]) < 0.45 * macs and count_params(net) < params
    assert net(x).shape[0] == 4
    one_training_step(net, x)


def test_module_attributes_and_config_follow_the_tensors() -> None:
    net = hf_net("bert")
    prune(net, IDS, amount=0.5, drop_blocks=1)
    config = net.hf.config
    assert (config.num_attention_heads, config.intermediate_size, config.num_hidden_layers) == (2, 64, 2)
    for layer in net.hf.bert.encoder.layer:
        attention = layer.attention.self
        assert (attention.num_attention_heads, attention.attention_head_size, attention.all_head_size) == (2, 16, 32)
        assert attention.query.out_features == 32 and layer.attention.output.dense.in_features == 32
    gpt2 = hf_net("gpt2")
    prune(gpt2, IDS, amount=0.5, drop_blocks=1)
    assert [(b.attn.num_heads, b.attn.split_size, b.attn.layer_idx) for b in gpt2.hf.transformer.h] == [(2, 32, 0), (2, 32, 1)]
    assert (gpt2.hf.config.n_head, gpt2.hf.config.n_inner, gpt2.hf.config.n_layer) == (2, 64, 2)


def test_grouped_query_attention_keeps_its_groups() -> None:
    config = transformers.LlamaConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, intermediate_size=128)
    torch.manual_seed(0)
    llama = transformers.LlamaForCausalLM(config).eval()
    prune(llama, IDS, amount=0.5)
    attention = llama.model.layers[0].self_attn
    assert (attention.q_proj.out_features, attention.k_proj.out_features, attention.num_key_value_groups) == (32, 16, 2)
    assert (llama.config.num_attention_heads, llama.config.num_key_value_heads, llama.config.head_dim) == (2, 1, 16)
    assert llama(IDS).logits.shape == (4, 24, 100)


def test_torchvision_attention_is_replaced_by_a_head_pruned_twin() -> None:
    vit = torchvision_vit()
    prune(vit, IMAGES, amount=0.25)
    attention = vit.encoder.layers[0].self_attention
    assert isinstance(attention, HeadPrunedAttention) and attention.num_heads == 3
    assert attention.in_proj_weight.shape == (3 * 48, 64) and vit.hidden_dim == 64
    assert {"in_proj_weight", "in_proj_bias", "out_proj.weight"} <= set(dict(attention.named_parameters()))


def test_channel_mode_keeps_the_old_width_pruning_of_torchvision_vit() -> None:
    vit = torchvision_vit()
    prune(vit, IMAGES, amount=0.5, units="channels")
    assert vit.hidden_dim == 32 and isinstance(vit.encoder.layers[0].self_attention, nn.MultiheadAttention)


def test_macs_include_the_attention_products() -> None:
    short, long = hf_net("bert"), hf_net("bert")
    linear_macs = 3 * (24 * 64 * 64 * 4 + 2 * 24 * 64 * 128)  # q, k, v, output and MLP projections per layer
    attention_macs = 3 * 2 * 24 * 24 * 64  # scores and mixing
    assert count_macs(short, IDS[:1]) >= linear_macs + attention_macs
    assert count_macs(long, torch.ones(1, 48, dtype=torch.long)) > 2 * count_macs(short, IDS[:1])  # grows with L


def test_a_failed_step_leaves_the_model_unchanged() -> None:
    class HardCodedHeads(nn.Module):  # reshapes with a fixed head count: cannot run with fewer heads
        def __init__(self) -> None:
            super().__init__()
            self.query, self.key, self.value = nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 16)
            self.attention_head_size = 4

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q, k, v = (p(x).view(*x.shape[:2], 4, 4).transpose(1, 2) for p in (self.query, self.key, self.value))
            return nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(x.shape)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = nn.Module()
            self.attention.self, self.attention.output = HardCodedHeads(), nn.Module()
            self.attention.output.dense = nn.Linear(16, 16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.attention.output.dense(self.attention.self(x))

    net = nn.Sequential(Block(), nn.Linear(16, 2)).eval()
    x = torch.randn(2, 5, 16)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(PruningError, match="left as it was"):
        prune(net, x, amount=0.5)
    assert {k: v.shape for k, v in net.state_dict().items()} == {k: v.shape for k, v in before.items()}
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())
    assert spec_of(net) is None or not spec_of(net).pruning_history
    assert net(x).shape == (2, 5, 2)


def test_bad_transformer_options_are_refused_before_pruning() -> None:
    net = hf_net("bert")
    for kwargs, message in [
        (dict(importance="fpgm"), r"`importance`='fpgm' has no meaning for attention heads"),
        (dict(global_pruning=True), r"`global_pruning`=True ranks channels"),
        (dict(drop_blocks=3), r"`drop_blocks` must be below the 3 blocks"),
        (dict(drop_blocks=-1), r"`drop_blocks` must be an integer >= 0, got -1"),
        (dict(units="rows"), r"`units` must be one of \['heads_mlp', 'mlp', 'channels'\], got 'rows'"),
    ]:
        with pytest.raises(SpiralConfigError, match=message):
            prune(net, IDS, amount=0.5, **kwargs)
        assert shapes(net) == ([4, 4, 4], [128, 128, 128])
    with pytest.raises(SpiralConfigError, match=r"`drop_blocks`=1 removes transformer blocks, but Sequential"):
        prune(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), torch.randn(1, 4), amount=0.5, drop_blocks=1)


RESTORE_SCRIPT = """
import sys, torch
from lightning_spiral.io import load_model, restore
from torchvision.models import VisionTransformer
folder = sys.argv[1]
for name in ["bert", "gpt2", "vit", "torchvision_vit"]:
    path = f"{folder}/{name}.pt"
    if name == "torchvision_vit":
        net = restore(VisionTransformer(32, 8, num_layers=3, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=10), path)
    else:
        net = load_model(path)
    x, expected = torch.load(f"{folder}/{name}.io.pt")
    with torch.no_grad():
        print(name, float((net(x) - expected).abs().max()))
"""


def test_pruned_transformers_restore_in_a_fresh_process(tmp_path: Path) -> None:
    for name in [*MODELS, "torchvision_vit"]:
        net = torchvision_vit() if name == "torchvision_vit" else hf_net(name)
        x = IMAGES if name == "torchvision_vit" else MODELS[name][3]
        prune(net, x, amount=0.5, drop_blocks=1)
        save_model(net, tmp_path / f"{name}.pt")
        with torch.no_grad():
            torch.save((x, net(x)), tmp_path / f"{name}.io.pt")
    result = subprocess.run([sys.executable, "-c", RESTORE_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    differences = dict(line.split() for line in result.stdout.splitlines())
    assert set(differences) == {*MODELS, "torchvision_vit"}
    assert all(float(d) <= 1e-5 for d in differences.values()), differences


def test_restore_refuses_a_model_of_another_shape(tmp_path: Path) -> None:
    net = hf_net("bert")
    prune(net, IDS, amount=0.5)
    save_model(net, tmp_path / "bert.pt")
    with pytest.raises(ModelFormatError, match="does not fit"):
        restore(torchvision_vit(), tmp_path / "bert.pt")


def test_hugging_face_round_trip_where_the_config_expresses_the_shapes(tmp_path: Path) -> None:
    vit = hf_net("vit")
    prune(vit, IMAGES, amount=0.5, drop_blocks=1)
    reloaded = transformers.ViTForImageClassification.from_pretrained(save_pretrained(vit, tmp_path / "vit")).eval()
    with torch.no_grad():
        assert (reloaded(pixel_values=IMAGES).logits - vit(IMAGES)).abs().max() <= 1e-5

    bert = hf_net("bert")
    prune(bert, IDS, amount=0.5, drop_blocks=1, units="mlp")  # heads kept: BertConfig cannot express fewer
    assert shapes(bert) == ([4, 4], [64, 64])
    reloaded = transformers.BertForSequenceClassification.from_pretrained(save_pretrained(bert, tmp_path / "bert")).eval()
    with torch.no_grad():
        assert (reloaded(input_ids=IDS, attention_mask=IDS.ne(0).long()).logits - bert(IDS)).abs().max() <= 1e-5


def test_save_pretrained_refuses_what_the_config_cannot_express(tmp_path: Path) -> None:
    bert = hf_net("bert")
    prune(bert, IDS, amount=0.5)
    with pytest.raises(SpiralConfigError, match=r"BertConfig cannot express the pruned .*query.weight.*units='mlp'"):
        save_pretrained(bert, tmp_path / "bert")
    assert not (tmp_path / "bert").exists()
    (tmp_path / "taken").mkdir()
    with pytest.raises(SpiralConfigError, match="`directory` must be a path that does not exist yet"):
        save_pretrained(hf_net("vit"), tmp_path / "taken")


def test_kept_blocks_name_the_teacher_blocks_for_a_layer_map() -> None:
    from lightning_spiral.distill import HiddenStateLoss, layer_terms
    from lightning_spiral.pruning.depth import block_influence
    from lightning_spiral.pruning.transformer import kept_blocks

    teacher, student = hf_net("bert"), hf_net("bert")
    least = int(block_influence(teacher, teacher.hf.bert.encoder.layer, IDS).argmin())
    prune(student, IDS, amount=0.5, drop_blocks=1)
    kept = kept_blocks(student, 3)
    assert kept == [i for i in range(3) if i != least]
    terms = layer_terms("hidden", HiddenStateLoss, "hf.bert.encoder.layer.{}", list(enumerate(kept)))
    assert [term.teacher_path for term in terms.values()] == [f"hf.bert.encoder.layer.{i}" for i in kept]


@pytest.mark.parametrize("name", ["bert", "vit"])
def test_hidden_width_is_pruned_where_the_user_allows_it(name: str, tmp_path: Path) -> None:
    net, x = hf_net(name), MODELS[name][3]
    prune(net, x, amount=0.5, hidden=True)
    config = net.hf.config
    assert config.hidden_size == 32 and shapes(net) == ([2, 2, 2], [64, 64, 64])
    assert all(u.parts[0].module.in_features == 32 for u in find_units(net))
    assert net(x).shape == (4, 2)
    save_model(net, tmp_path / "net.pt")
    twin = restore(build_model(MODELS[name][0], num_classes=2, input_shape=MODELS[name][1], **MODELS[name][2]), tmp_path / "net.pt")
    with torch.no_grad():
        assert (twin(x) - net(x)).abs().max() <= 1e-5
    assert twin.hf.config.hidden_size == 32
    if name == "vit":  # ViTConfig expresses heads of a kept size with a narrower hidden width
        reloaded = transformers.ViTForImageClassification.from_pretrained(save_pretrained(net, tmp_path / "hf")).eval()
        with torch.no_grad():
            assert (reloaded(pixel_values=x).logits - net(x)).abs().max() <= 1e-5


def test_hidden_width_needs_linear_projections() -> None:
    with pytest.raises(SpiralConfigError, match=r"`hidden`=True prunes the residual width .* \['Conv1D'\]"):
        prune(hf_net("gpt2"), IDS, amount=0.5, hidden=True)
