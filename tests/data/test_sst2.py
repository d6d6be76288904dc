"""Tests of the SST-2 text data: the word vocabulary, the DataModule on tiny tsv folders, the shared files."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from conftest import SHARED_DATA, quiet_trainer
from lightning_spiral import SpiralModule
from lightning_spiral.data import SST2DataModule, WordVocab
from lightning_spiral.errors import SpiralConfigError, SpiralError

SST2 = SHARED_DATA / "sst2"
UNK = 1

# --- WordVocab ----------------------------------------------------------------------------------


def test_vocab_special_ids_and_frequency_order() -> None:
    vocab = WordVocab.build(["b a c", "a c", "a d"])
    # a: 3, c: 2, then b and d (1 each) in word order
    assert vocab.tokens == ["[PAD]", "[UNK]", "[CLS]", "a", "c", "b", "d"]
    assert (vocab.pad_token_id, len(vocab), repr(vocab)) == (0, 7, "WordVocab(size=7)")


def test_vocab_is_deterministic_whatever_the_text_order() -> None:
    texts = [f"w{i % 7} w{i % 3} shared" for i in range(50)]
    shuffled = random.Random(0).sample(texts, len(texts))
    assert WordVocab.build(texts).tokens == WordVocab.build(shuffled).tokens


def test_vocab_min_freq_and_max_size() -> None:
    texts = ["a a a b b c", "d"]
    assert WordVocab.build(texts, min_freq=2).tokens[3:] == ["a", "b"]
    assert WordVocab.build(texts, max_size=5).tokens == ["[PAD]", "[UNK]", "[CLS]", "a", "b"]
    assert WordVocab.build(["[PAD] word"]).tokens[3:] == ["word"]  # a special token in the text is not a word


def test_encode_prepends_cls_truncates_pads_and_maps_unknown_words() -> None:
    vocab = WordVocab.build(["the film is good"])
    ids = vocab.encode(["the film is good", "a film", ""], max_length=4)
    assert ids.dtype == torch.int64 and ids.shape == (3, 4)
    the, film, is_ = (vocab.tokens.index(word) for word in ("the", "film", "is"))
    assert ids.tolist() == [[2, the, film, is_], [2, UNK, film, 0], [2, 0, 0, 0]]
    assert vocab.encode([], max_length=4).shape == (0, 4)


def test_vocab_round_trip_through_json() -> None:
    vocab = WordVocab.build(["crème brûlée , 'n' \" quotes", "more words"])
    restored = WordVocab.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored.tokens == vocab.tokens
    texts = ["crème more unseen", "\" quotes"]
    assert torch.equal(restored.encode(texts, 6), vocab.encode(texts, 6))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: WordVocab(["a", "b"]), r"`tokens` must be a list of tokens starting with \['\[PAD\]', '\[UNK\]', '\[CLS\]'\], got \['a', 'b'\]"),
        (lambda: WordVocab(["[PAD]", "[UNK]", "[CLS]", "x", "x"]), r"`tokens` must be distinct words, got 'x'\. It is at ids 3 and 4\."),
        (lambda: WordVocab(["[PAD]", "[UNK]", "[CLS]", "a b"]), r"`tokens` must be words without whitespace, got 'a b'\. It is the token at id 3"),
        (lambda: WordVocab.build("a good film"), r"`texts` must be a sequence of strings \(wrap a single text in a list\), got 'a good film'"),
        (lambda: WordVocab.build(["a", 3]), r"`texts` must be a sequence of strings, got an item of type int\."),
        (lambda: WordVocab.build(["a"], min_freq=0), r"`min_freq` must be an integer >= 1, got 0"),
        (lambda: WordVocab.build(["a"], max_size=3), r"`max_size` must be an integer >= 4, got 3"),
        (lambda: WordVocab.build(["a"]).encode(["a"], max_length=1), r"`max_length` must be an integer >= 2, got 1"),
        (lambda: WordVocab.from_dict({"tokens": []}), r"`data` must be a WordVocab.to_dict\(\) record with format 'lightning_spiral.WordVocab/1' and 'tokens', got format None and keys \['tokens'\]"),
        (lambda: WordVocab.from_dict([1]), r"`data` must be a WordVocab.to_dict\(\) record .*, got list\."),
    ],
)
def test_bad_vocab_inputs_are_refused(call, match: str) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        call()


# --- SST2DataModule on tiny folders -------------------------------------------------------------


def write_tsv(path: Path, rows: list[str], header: str = "label\tsentence") -> None:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


@pytest.fixture
def tiny_sst2(tmp_path: Path) -> Path:
    """40 training phrases, each with its own word ``only<i>``; test and dev texts use words seen nowhere else."""
    write_tsv(tmp_path / "train.tsv", [f"{i % 2}\tthe film is {'good' if i % 2 else 'bad'} only{i}" for i in range(40)])
    write_tsv(tmp_path / "test.tsv", ["1\ta good testword film", "0\tbad " + "long " * 20], header="label\tcontent")
    write_tsv(tmp_path / "dev.tsv", ["0\tdevword bad", "1\tdevword good", "1\tgood"], header="label\tcontent")
    return tmp_path


def test_shapes_dtypes_and_attributes(tiny_sst2: Path) -> None:
    dm = SST2DataModule(tiny_sst2, max_length=6, batch_size=8, val_fraction=0.25)
    assert (dm.num_classes, dm.input_shape, dm.pad_token_id, dm.vocab_size) == (2, (6,), 0, len(dm.vocab))
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (30, 10, 2)
    input_ids, labels = next(iter(dm.train_dataloader()))
    assert input_ids.shape == (8, 6) and input_ids.dtype == torch.int64
    assert labels.shape == (8,) and labels.dtype == torch.int64 and set(labels.tolist()) <= {0, 1}
    test_ids = dm.test_set.tensors[0]
    assert test_ids[1].tolist() == [2, dm.vocab.tokens.index("bad")] + [UNK] * 4  # cut to max_length, no padding
    assert (test_ids[0] == dm.pad_token_id).sum() == 1  # [CLS] a good testword film [PAD]


def test_validation_is_carved_from_train_and_the_vocab_sees_only_the_training_part(tiny_sst2: Path) -> None:
    dm = SST2DataModule(tiny_sst2, val_fraction=0.25, seed=3)
    dm.setup()
    own_words = {word for word in dm.vocab.tokens if word.startswith("only")}
    assert len(own_words) == 30  # one per training phrase: the 10 validation phrases added none
    train_ids, val_ids = dm.train_set.tensors[0], dm.val_set.tensors[0]
    assert (train_ids[:, 5] != UNK).all() and (val_ids[:, 5] == UNK).all()  # position 5: the word only<i>
    assert not {"testword", "devword", "a", "long"} & set(dm.vocab.tokens)
    all_labels = sorted(dm.train_set.tensors[1].tolist() + dm.val_set.tensors[1].tolist())
    assert all_labels == [0] * 20 + [1] * 20  # train + val is all of train.tsv, once


def test_splits_follow_the_seed_and_the_subset(tiny_sst2: Path) -> None:
    def val_ids(**kwargs) -> torch.Tensor:
        dm = SST2DataModule(tiny_sst2, val_fraction=0.25, **kwargs)
        dm.setup()
        return dm.val_set.tensors[0]

    assert torch.equal(val_ids(seed=0), val_ids(seed=0)) and not torch.equal(val_ids(seed=0), val_ids(seed=1))
    dm = SST2DataModule(tiny_sst2, val_fraction=0.25, train_subset=20)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), dm.vocab_size) == (15, 5, 3 + 5 + 15)  # specials, 5 shared words, 15 only<i>


def test_dev_split_and_glue_column_order(tiny_sst2: Path) -> None:
    write_tsv(tiny_sst2 / "train.tsv", [f"good film {i}\t1" if i % 2 else f"bad film {i}\t0" for i in range(20)],
              header="sentence\tlabel")  # GLUE's own SST-2 files put the label last
    dm = SST2DataModule(tiny_sst2, test_split="dev", val_fraction=0.1)
    dm.setup()
    assert dm.test_set.tensors[1].tolist() == [0, 1, 1] and "good" in dm.vocab.tokens


def test_a_tiny_sentiment_task_trains_through_the_shipped_config(tiny_sst2: Path) -> None:
    with initialize_config_module(config_module="lightning_spiral.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["data=sst2", f"data.data_dir={tiny_sst2}", "data.batch_size=8",
                                                        "data.val_fraction=0.25", "data.max_length=8"])  # fmt: skip
    dm = instantiate(cfg.data)
    assert isinstance(dm, SST2DataModule) and dm.input_shape == (8,)
    torch.manual_seed(0)
    module = SpiralModule(MeanOfEmbeddings(dm.vocab_size, dm.pad_token_id), num_classes=2)
    trainer = quiet_trainer(max_epochs=15)
    trainer.fit(module, datamodule=dm)
    assert trainer.test(module, datamodule=dm, verbose=False)[0]["test/top1"] == 1.0  # "good" / "bad" decide


class MeanOfEmbeddings(nn.Module):
    """Mean of the word embeddings over the non-pad positions, then a linear classifier."""

    def __init__(self, vocab_size: int, pad_token_id: int) -> None:
        super().__init__()
        self.pad_token_id = pad_token_id
        self.embed = nn.Embedding(vocab_size, 16)
        self.head = nn.Linear(16, 2)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        mask = (input_ids != self.pad_token_id).unsqueeze(-1).float()  # (B, L, 1): the attention mask
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1)  # (B, 16)
        return self.head(pooled)


def test_dataloader_before_setup_is_an_error(tiny_sst2: Path) -> None:
    with pytest.raises(SpiralError, match=r"call `setup\(\)` before asking for a dataloader"):
        SST2DataModule(tiny_sst2).train_dataloader()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"data_dir": 3}, r"`data_dir` must be a folder path \(str or os.PathLike\), got 3\."),
        ({"max_length": 1}, r"`max_length` must be an integer >= 2, got 1\."),
        ({"batch_size": 0}, r"`batch_size` must be an integer >= 1, got 0\."),
        ({"val_fraction": 1.0}, r"`val_fraction` must be a number in \(0, 1\), got 1\.0\."),
        ({"test_split": "val"}, r"`test_split` must be one of \['test', 'dev'\], got 'val'\."),
        ({"max_vocab_size": 3}, r"`max_vocab_size` must be an integer >= 4, got 3\."),
        ({"min_freq": 0}, r"`min_freq` must be an integer >= 1, got 0\."),
        ({"num_workers": -1}, r"`num_workers` must be an integer >= 0, got -1\."),
        ({"seed": -1}, r"`seed` must be an integer >= 0, got -1\."),
        ({"train_subset": 1}, r"`train_subset` must be an integer >= 2, got 1\."),
    ],
)
def test_bad_arguments_are_refused_before_the_files_are_read(kwargs: dict, match: str) -> None:
    with pytest.raises(SpiralConfigError, match=match):
        SST2DataModule(**{"data_dir": "/no/such/sst2", **kwargs})


def test_a_missing_folder_or_file_is_named(tmp_path: Path, tiny_sst2: Path) -> None:
    with pytest.raises(SpiralConfigError, match=r"`data_dir` must be a folder holding SST-2's train.tsv and test.tsv, "
                       r"got '.*nowhere' \(not found\)\. See the SST2DataModule docstring"):
        SST2DataModule(tmp_path / "nowhere")
    (tiny_sst2 / "dev.tsv").unlink()
    with pytest.raises(SpiralConfigError, match=r"holding SST-2's train.tsv and dev.tsv, got '.*' \(no '.*dev.tsv'\)"):
        SST2DataModule(tiny_sst2, test_split="dev")


@pytest.mark.parametrize(
    ("file", "rows", "match"),
    [
        ("train.tsv", ["1\tfine", "0\ttoo\tmany"], r"Line 3 of '.*train.tsv' must be a label \(0 or 1\), a tab and a non-empty text, got 3 columns\."),
        ("train.tsv", ["1\tfine", "positive film"], r"Line 3 of '.*train.tsv' must be .*, got 1 column\."),
        ("test.tsv", ["2\ta film"], r"Line 2 of '.*test.tsv' must be .*, got label '2'\."),
        ("test.tsv", ["1\t  "], r"Line 2 of '.*test.tsv' must be .*, got an empty text\."),
        ("test.tsv", [], r"'.*test.tsv' must hold at least one row \(a label \(0 or 1\), a tab and a non-empty text\) after its header, got none\."),
    ],
)
def test_malformed_rows_are_named_with_their_line(tiny_sst2: Path, file: str, rows: list[str], match: str) -> None:
    write_tsv(tiny_sst2 / file, rows)
    with pytest.raises(SpiralConfigError, match=match):
        SST2DataModule(tiny_sst2)


def test_a_bad_header_or_encoding_is_refused(tiny_sst2: Path) -> None:
    write_tsv(tiny_sst2 / "test.tsv", ["1\tfine"], header="index\tsentence")  # GLUE's unlabelled test file
    with pytest.raises(SpiralConfigError, match=r"Line 1 of '.*test.tsv' must be a header naming a 'label' column "
                       r"and a text column \(e.g. 'label<TAB>sentence'\), got \['index', 'sentence'\]\."):
        SST2DataModule(tiny_sst2)
    (tiny_sst2 / "test.tsv").write_bytes(b"label\tcontent\n1\t\xff\xfe\n")
    with pytest.raises(SpiralConfigError, match=r"'.*test.tsv' must be a readable UTF-8 tab-separated file, got .*codec"):
        SST2DataModule(tiny_sst2)


def test_split_sizes_beyond_the_data_are_refused(tiny_sst2: Path) -> None:
    with pytest.raises(SpiralConfigError, match=r"`train_subset` must be at most 40 .*, got 41\."):
        SST2DataModule(tiny_sst2, train_subset=41)
    with pytest.raises(SpiralConfigError, match=r"`val_fraction`=0.01 of 40 .* leaves an empty split"):
        SST2DataModule(tiny_sst2, val_fraction=0.01)


# --- the shared SST-2 files ---------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.skipif(not (SST2 / "train.tsv").is_file(), reason=f"shared data folder {SST2} is absent")
def test_shared_sst2_files() -> None:
    dm = SST2DataModule(SST2)
    dev = SST2DataModule(SST2, test_split="dev")
    dm.setup()
    dev.setup()
    # README: train 67,349 (29,780 / 37,569), test 1,821 (912 / 909), dev 872 (428 / 444)
    assert (len(dm.train_set) + len(dm.val_set), len(dm.test_set), len(dev.test_set)) == (67349, 1821, 872)
    assert len(dm.val_set) == round(0.05 * 67349)
    train_labels = torch.cat([dm.train_set.tensors[1], dm.val_set.tensors[1]])
    assert int(train_labels.sum()) == 37569 and int(dm.test_set.tensors[1].sum()) == 909
    assert int(dev.test_set.tensors[1].sum()) == 444
    assert 0.5 < dm.val_set.tensors[1].float().mean() < 0.62  # the carve keeps roughly train's 56% positives
    assert 10000 < dm.vocab_size <= 20000 and dm.vocab.tokens[3:6] == ["the", ",", "a"]
    test_ids = dm.test_set.tensors[0]
    assert (test_ids[:, 0] == 2).all() and (test_ids == UNK).float().mean() < 0.05  # max 56 words + [CLS] fit in 64


def test_a_teacher_file_with_a_smaller_vocabulary_than_the_data_is_refused_before_training(tiny_sst2: Path,
                                                                                          tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    import functools

    import lightning.pytorch as L

    from lightning_spiral import PruningCallback, Spiral, save_model
    from lightning_spiral.models import build_model

    dm = SST2DataModule(tiny_sst2, max_length=6, batch_size=8, val_fraction=0.25)
    teacher = build_model("hf.bert", num_classes=2, input_shape=(6,), vocab_size=dm.vocab_size - 5, hidden_size=32,
                          num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    save_model(teacher, tmp_path / "teacher.pt")  # e.g. trained on another split: another, smaller vocabulary
    with pytest.raises(SpiralConfigError, match=f"token embedding has {dm.vocab_size - 5} rows but the data's "
                                                f"vocabulary has `vocab_size`={dm.vocab_size}") as refused:
        Spiral(teacher_checkpoint=str(tmp_path / "teacher.pt"), datamodule=dm, trainer=functools.partial(L.Trainer),
               pruning=functools.partial(PruningCallback), output_dir=str(tmp_path / "run"))
    assert "\n" not in str(refused.value) and not (tmp_path / "run").exists()
