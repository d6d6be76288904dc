"""TinyBERT hidden states and MiniLMv2 attention relations: golden numbers, layer mapping, bad arguments, a real BERT.

Golden values are worked out by hand on tensors of two tokens, or by plain numpy loops over the
papers' definitions, never with the implementation's own formula.
"""

from __future__ import annotations

import functools
import math

import lightning.pytorch as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from torch import nn

from conftest import quiet_trainer
from lightning_spiral import DistillationCallback
from lightning_spiral.distill import (
    AttentionRelationLoss, Distiller, HiddenStateLoss, WeightedSum, layer_terms, uniform_layer_map,
)
from lightning_spiral.errors import SpiralConfigError

# One relation by hand: student A = [[1], [0]] (two tokens, width 1), teacher A = 0.
# Student scores A A^T = [[1, 0], [0, 0]] -> rows softmax [e, 1] / (1 + e) and [1/2, 1/2]; the teacher's are uniform.
# KL(uniform || row 0) = log((1 + e) / 2) - 1/2, KL(row 1) = 0; the loss averages the two query rows.
TWO_TOKENS = torch.tensor([[[1.0], [0.0]]])  # (N=1, L=2, W=1)
HAND_RELATION = (math.log((1 + math.e) / 2) - 0.5) / 2


def reference_relation(student: np.ndarray, teacher: np.ndarray, heads: int) -> float:
    """MiniLMv2's loss for one projection, as loops: mean over samples, relation heads and query tokens."""

    def relation(a: np.ndarray, r: int, i: int) -> np.ndarray:
        d = a.shape[1] // heads
        part = a[:, r * d:(r + 1) * d]  # (L, d_r)
        scores = part @ part[i] / math.sqrt(d)  # (L,)
        e = np.exp(scores - scores.max())
        return e / e.sum()

    values = []
    for s, t in zip(student, teacher):
        for r in range(heads):
            for i in range(s.shape[0]):
                p, q = relation(t, r, i), relation(s, r, i)
                values.append(float(np.sum(p * (np.log(p) - np.log(q)))))
    return float(np.mean(values))


# ------------------------------------------------------------------------------------------- golden numbers
def test_hidden_state_mse_by_hand() -> None:
    assert HiddenStateLoss("h")(torch.tensor([[[1.0, 2.0]]]), torch.zeros(1, 1, 2)).item() == pytest.approx(2.5)


def test_relation_by_hand() -> None:
    assert AttentionRelationLoss("q")(TWO_TOKENS, torch.zeros(1, 2, 1)).item() == pytest.approx(HAND_RELATION, abs=1e-6)


def test_fused_qkv_sums_the_three_relations() -> None:
    fused = TWO_TOKENS.repeat(1, 1, 3)  # [Q | K | V], each the hand example
    value = AttentionRelationLoss("c_attn", fused_qkv=True)(fused, torch.zeros(1, 2, 3)).item()
    assert value == pytest.approx(3 * HAND_RELATION, abs=1e-6)
    s, t = torch.randn(2, 4, 12), torch.randn(2, 4, 24)
    separate = sum(AttentionRelationLoss("p", relation_heads=2)(a, b) for a, b in zip(s.chunk(3, -1), t.chunk(3, -1)))
    assert AttentionRelationLoss("p", relation_heads=2, fused_qkv=True)(s, t).item() == pytest.approx(separate.item(), abs=1e-6)


@pytest.mark.parametrize(("student_width", "teacher_width", "heads"), [(4, 6, 2), (16, 32, 4), (8, 8, 1)])
def test_relation_matches_reference_across_head_counts(student_width: int, teacher_width: int, heads: int) -> None:
    torch.manual_seed(0)
    s, t = torch.randn(2, 3, student_width), torch.randn(2, 3, teacher_width)  # e.g. 2 of 4 heads kept: 16 vs 32
    expected = reference_relation(s.double().numpy(), t.double().numpy(), heads)
    assert AttentionRelationLoss("q", relation_heads=heads)(s, t).item() == pytest.approx(expected, abs=1e-5)


def test_zero_where_student_equals_teacher_and_the_teacher_gets_no_gradient() -> None:
    h = torch.randn(2, 5, 12)
    assert HiddenStateLoss("h")(h, h).item() == 0.0
    assert AttentionRelationLoss("q", relation_heads=2, fused_qkv=True)(h, h).item() == pytest.approx(0.0, abs=1e-6)
    student, teacher = torch.randn(2, 5, 8, requires_grad=True), torch.randn(2, 5, 16, requires_grad=True)
    AttentionRelationLoss("q", relation_heads=4)(student, teacher).backward()
    assert student.grad is not None and teacher.grad is None


def test_tuple_outputs_use_their_first_tensor_and_math_is_float32() -> None:
    h = torch.ones(2, 3, 4)
    assert HiddenStateLoss("h")((h, None), [torch.zeros(2, 3, 4)]).item() == 1.0
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert HiddenStateLoss("h")(h.bfloat16(), h.bfloat16()).dtype == torch.float32
        assert AttentionRelationLoss("q")(h.bfloat16(), h.bfloat16()).dtype == torch.float32


def test_repr_shows_the_settings() -> None:
    assert repr(HiddenStateLoss("s.1", "t.3")) == "HiddenStateLoss(MSE(student[s.1], teacher[t.3]))"
    assert repr(AttentionRelationLoss("h.0.attn.c_attn", relation_heads=4, fused_qkv=True)) == (
        "AttentionRelationLoss(sum over Q, K, V of KL(relation(teacher[h.0.attn.c_attn]) || "
        "relation(student[h.0.attn.c_attn])), relation_heads=4)"
    )


# -------------------------------------------------------------------------------------------- layer mapping
def test_uniform_layer_map_is_tinyberts_g() -> None:
    assert uniform_layer_map(4, 12) == [(0, 2), (1, 5), (2, 8), (3, 11)]  # g(m) = 3m
    assert uniform_layer_map(3, 4) == [(0, 0), (1, 1), (2, 3)]  # rounded down; last to last
    assert uniform_layer_map(2, 2) == [(0, 0), (1, 1)]


def test_layer_terms_name_and_address_the_mapped_blocks() -> None:
    kept = [0, 2, 5]  # depth pruning kept these teacher blocks: student block i is teacher block kept[i]
    terms = layer_terms("qq", functools.partial(AttentionRelationLoss, relation_heads=2), "h.{}.attn.q", list(enumerate(kept)),
                        teacher_path="encoder.{}.attn.q")
    assert list(terms) == ["qq_0", "qq_1", "qq_2"]
    assert [(t.student_path, t.teacher_path, t.relation_heads) for t in terms.values()] == [
        ("h.0.attn.q", "encoder.0.attn.q", 2), ("h.1.attn.q", "encoder.2.attn.q", 2), ("h.2.attn.q", "encoder.5.attn.q", 2)]


class AddConstant(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.value


class Blocks(nn.Module):
    """Blocks adding constants, so block k's output says which block it was."""

    def __init__(self, values: list[float]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(AddConstant(v) for v in values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x.mean(1)


@pytest.mark.parametrize(("layer_map", "expected"), [(uniform_layer_map(2, 4), 0.0), ([(0, 0), (1, 1)], 1.0 + 4.0)])
def test_the_engine_taps_the_mapped_blocks(layer_map, expected: float) -> None:
    student, teacher = Blocks([2.0, 2.0]), Blocks([1.0, 1.0, 1.0, 1.0])  # after block k: x + 2(k+1) and x + (k+1)
    terms = layer_terms("hidden", HiddenStateLoss, "layers.{}", layer_map)
    distiller = Distiller(teacher, WeightedSum(dict.fromkeys(terms, 1.0), terms))
    distiller.attach(student)
    x = torch.zeros(2, 3, 4)
    total, values = distiller.compute(student(x), x, None)
    distiller.close()
    assert set(values) == {"hidden_0", "hidden_1"} and total.item() == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: AttentionRelationLoss("q", relation_heads=0), r"`relation_heads` must be an integer >= 1, got 0"),
        (lambda: AttentionRelationLoss("q", relation_heads=2.0), r"`relation_heads` must be an integer >= 1, got 2.0"),
        (lambda: AttentionRelationLoss("q", fused_qkv="yes"), r"`fused_qkv` must be True or False, got 'yes'"),
        (lambda: AttentionRelationLoss("q", relation_heads=3)(torch.randn(1, 2, 4), torch.randn(1, 2, 6)),
         r"`relation_heads` must be a divisor of both projection widths \(student 4 at 'q', teacher 6 at 'q'\), got 3"),
        (lambda: AttentionRelationLoss("c", fused_qkv=True).prepare(torch.randn(1, 2, 4), torch.randn(1, 2, 6)),
         r"`fused_qkv`=True needs widths divisible by 3"),
        (lambda: HiddenStateLoss("s", "t").prepare(torch.randn(1, 2, 4), torch.randn(1, 2, 8)),
         r"HiddenStateLoss needs the same hidden width for student and teacher, got 4 at 's' and 8 at 't'; it builds no learned"),
        (lambda: HiddenStateLoss("s")(torch.randn(1, 2, 4), torch.randn(1, 3, 4)),
         r"HiddenStateLoss needs \(N, L, W\) token features with equal N and L; got student \(1, 2, 4\)"),
        (lambda: uniform_layer_map(5, 3), r"`n_student` must be an integer <= `n_teacher`=3, got 5"),
        (lambda: uniform_layer_map(0, 3), r"`n_student` must be an integer >= 1, got 0"),
        (lambda: layer_terms("h", HiddenStateLoss, "bert.layer", [(0, 0)]), r"`path` must be a module path with one '\{\}'"),
        (lambda: layer_terms("h", HiddenStateLoss, "l.{}", [(0, 0)], teacher_path="t"), r"`teacher_path` must be a module path"),
        (lambda: layer_terms("h", HiddenStateLoss, "l.{}", [(0, 0), (0, 1)]), r"`layer_map` must be pairs with distinct student"),
        (lambda: layer_terms("h", HiddenStateLoss, "l.{}", [(0, -1)]), r"`layer_map\[0\]\[1\]` must be an integer >= 0, got -1"),
        (lambda: layer_terms("h", HiddenStateLoss, "l.{}", [0, 1]), r"`layer_map` must be a non-empty list of"),
        (lambda: layer_terms("h", HiddenStateLoss, "l.{}", []), r"`layer_map` must be a non-empty list of"),
        (lambda: layer_terms("hidden.0", HiddenStateLoss, "l.{}", [(0, 0)]), r"`name` must be an identifier"),
        (lambda: layer_terms("h", "mse", "l.{}", [(0, 0)]), r"`loss` must be a loss class or a function"),
    ],
)
def test_bad_arguments(build, match: str) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        build()


def test_minilm_config_builds() -> None:
    with initialize_config_module(config_module="lightning_spiral.conf", version_base="1.3"):
        loss = instantiate(compose(config_name="config", overrides=["distill=minilm"]).distill)
    assert repr(loss) == "WeightedSum(0.1 * ce + 0.9 * kd + 1.0 * qq + 1.0 * kk + 1.0 * vv)"
    assert loss.losses["vv"].student_path == loss.losses["vv"].teacher_path == "bert.encoder.layer.11.attention.self.value"


# ------------------------------------------------------------------------------------- a real (tiny) BERT
class TextClassifier(nn.Module):
    """Input ids in, logits out: a Hugging Face classifier as our engine sees a network."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.hf = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.hf(input_ids=input_ids).logits


class LitText(L.LightningModule):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def training_step(self, batch, batch_idx):
        input_ids, labels = batch
        return F.cross_entropy(self.net(input_ids), labels)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def drop_heads(layer: nn.Module, keep: list[int]) -> None:
    """What head pruning leaves in a BertLayer: Q, K, V rows and output columns of the kept heads only."""
    attention, size = layer.attention, layer.attention.self.attention_head_size
    rows = torch.cat([torch.arange(h * size, (h + 1) * size) for h in keep])
    for name in ("query", "key", "value"):
        old = getattr(attention.self, name)
        new = nn.Linear(old.in_features, len(rows))
        new.weight.data, new.bias.data = old.weight.data[rows].clone(), old.bias.data[rows].clone()
        setattr(attention.self, name, new)
    dense = attention.output.dense
    attention.output.dense = nn.Linear(len(rows), dense.out_features)
    attention.output.dense.weight.data = dense.weight.data[:, rows].clone()
    attention.output.dense.bias.data = dense.bias.data.clone()
    attention.self.num_attention_heads, attention.self.all_head_size = len(keep), len(rows)


class StepRecorder(L.Callback):
    """Every step's loss, and whether gradients reached the student and only the student."""

    def __init__(self, teacher: nn.Module) -> None:
        self.teacher, self.losses, self.student_grads, self.teacher_grads = teacher, [], [], []

    def on_after_backward(self, trainer, pl_module) -> None:
        query = pl_module.net.hf.bert.encoder.layer[0].attention.self.query.weight
        self.student_grads.append(query.grad is not None and query.grad.abs().sum().item() > 0)
        self.teacher_grads.append(any(p.grad is not None for p in self.teacher.parameters()))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(outputs["loss"].item())


def test_minilm_and_tinybert_terms_train_a_pruned_bert_through_the_callback() -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, num_labels=2,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,  # steps on one batch compare cleanly
    )
    teacher = TextClassifier(transformers.BertForSequenceClassification(config))
    student = TextClassifier(transformers.BertForSequenceClassification(config))  # same architecture, its own weights
    del student.hf.bert.encoder.layer[0]  # depth pruned: student block 0 is teacher block 1 (kept = [1])
    drop_heads(student.hf.bert.encoder.layer[0], keep=[0, 2])  # 2 of 4 heads: Q, K, V are 16 wide, the teacher's 32
    layer_map = list(enumerate([1]))
    relation = functools.partial(AttentionRelationLoss, relation_heads=2)
    terms = layer_terms("hidden", HiddenStateLoss, "hf.bert.encoder.layer.{}", layer_map)
    for name in ("query", "key", "value"):
        terms |= layer_terms(name[0] * 2, relation, f"hf.bert.encoder.layer.{{}}.attention.self.{name}", layer_map)
    loss = WeightedSum(dict.fromkeys(terms, 1.0), terms)
    recorder = StepRecorder(teacher)
    data = torch.utils.data.TensorDataset(torch.randint(0, 100, (8, 6)), torch.randint(0, 2, (8,)))
    callbacks = [DistillationCallback(teacher, loss, attr="net", mode="replace"), recorder]
    trainer = quiet_trainer(max_epochs=3, limit_val_batches=0, callbacks=callbacks)
    trainer.fit(LitText(student), train_dataloaders=torch.utils.data.DataLoader(data, batch_size=8))
    assert len(recorder.losses) == 3 and all(math.isfinite(value) for value in recorder.losses)
    assert recorder.losses[-1] < recorder.losses[0]  # the same batch, three steps
    assert all(recorder.student_grads) and not any(recorder.teacher_grads)
    assert {"train/loss/hidden_0", "train/loss/qq_0", "train/loss/kk_0", "train/loss/vv_0"} <= set(trainer.callback_metrics)
