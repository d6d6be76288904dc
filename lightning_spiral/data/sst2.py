"""SST-2 movie-review sentiment (binary) as a LightningDataModule of token ids, read from local files.

Data: Socher et al. 2013, "Recursive Deep Models for Semantic Compositionality Over a Sentiment
Treebank" (https://nlp.stanford.edu/sentiment/), binary split as in GLUE (Wang et al. 2018,
https://gluebenchmark.com/tasks). Nothing is downloaded: ``data_dir`` holds tab-separated files
with a header row naming a ``label`` column (0 negative, 1 positive) and a text column of
lower-cased text with words and punctuation separated by spaces — ``train.tsv`` (67,349 phrases
and sentences of the training reviews), ``dev.tsv`` (872 sentences) and ``test.tsv`` (1,821
sentences, the public SST labels). ``../shared/data/sst2`` (beside the repository) is such a
folder; GLUE's own ``SST-2.zip`` has the same train and dev files (columns ``sentence``, ``label``)
but an unlabelled test file, so there use ``test_split="dev"``.

Splits follow the rules of every datamodule here (:mod:`lightning_spiral.data.array_datamodule`):

* **val** — ``val_fraction`` of ``train.tsv`` (after ``train_subset``), carved by a seeded
  permutation. ``train.tsv`` holds many phrases of the same sentences, so this validation split
  shares phrases with training and reads optimistic; ``dev.tsv`` (whole sentences, none in
  ``train.tsv``) is the fairer check when choosing a recipe;
* **test** — ``test.tsv`` (or ``dev.tsv``), for reported numbers only;
* **vocabulary** — a :class:`~lightning_spiral.data.text_vocab.WordVocab` built from the training
  part only (never the validation carve or the test text), known right after construction.

Batches are ``(input_ids, labels)``: LongTensors ``(B, max_length)`` and ``(B,)``. Each row is
``[CLS]``, the word ids, then ``[PAD]`` (id ``pad_token_id``, 0): a model derives its attention mask
as ``input_ids != pad_token_id``. Serve a trained model with the same vocabulary
(``dm.vocab.to_dict()`` saved beside it) and ``vocab.encode(texts, max_length)``.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> rows = "".join(f"{i % 2}\\tthe film is {'good' if i % 2 else 'bad'} .\\n" for i in range(20))
    >>> _ = (folder / "train.tsv").write_text("label\\tsentence\\n" + rows)
    >>> _ = (folder / "test.tsv").write_text("label\\tcontent\\n1\\ta good film .\\n")
    >>> dm = SST2DataModule(folder, max_length=8, batch_size=4, val_fraction=0.25)
    >>> dm.num_classes, dm.input_shape, dm.vocab
    (2, (8,), WordVocab(size=9))
    >>> dm.setup("fit")
    >>> len(dm.train_set), len(dm.val_set), len(dm.test_set)
    (15, 5, 1)
    >>> input_ids, labels = next(iter(dm.test_dataloader()))  # "a" is no training word: [UNK] (1)
    >>> input_ids.tolist(), labels.tolist()
    ([[2, 1, 7, 4, 3, 0, 0, 0]], [1])
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import TensorDataset

from lightning_spiral.checks import check_choice, check_int, check_interval, refuse
from lightning_spiral.data.array_datamodule import train_val_indices
from lightning_spiral.data.loaders import SplitLoaders
from lightning_spiral.data.text_vocab import SPECIAL_TOKENS, WordVocab
from lightning_spiral.errors import SpiralConfigError

LABELS = {"0": 0, "1": 1}
ROW_ALLOWED = "a label (0 or 1), a tab and a non-empty text"


def read_labelled_tsv(path: Path) -> tuple[list[str], list[int]]:
    """Texts and labels of one SST-2 file; the header's ``label`` column is the label, the other the text.

    Raises:
        SpiralConfigError: the file is unreadable, its header names no ``label`` column, or a
            row is not a label 0/1 and a non-empty text (the message gives the line number).
    """
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    except (OSError, UnicodeError, csv.Error) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise SpiralConfigError(f"'{path}' must be a readable UTF-8 tab-separated file, got {reason}.") from error
    header = rows[0] if rows else []
    if len(header) != 2 or header.count("label") != 1:
        raise SpiralConfigError(
            f"Line 1 of '{path}' must be a header naming a 'label' column and a text column "
            f"(e.g. 'label<TAB>sentence'), got {header}."
        )
    label_column = header.index("label")
    texts, labels = [], []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or row[label_column] not in LABELS or not row[1 - label_column].strip():
            got = malformed(row, label_column)
            raise SpiralConfigError(f"Line {number} of '{path}' must be {ROW_ALLOWED}, got {got}.")
        texts.append(row[1 - label_column])
        labels.append(LABELS[row[label_column]])
    if not labels:
        raise SpiralConfigError(f"'{path}' must hold at least one row ({ROW_ALLOWED}) after its header, got none.")
    return texts, labels


def malformed(row: list[str], label_column: int) -> str:
    """What is wrong with a row, for :func:`read_labelled_tsv`'s message."""
    if len(row) != 2:
        return f"{len(row)} column{'s' if len(row) != 1 else ''}"
    if row[label_column] not in LABELS:
        return f"label {row[label_column]!r}"
    return "an empty text"


class SST2DataModule(SplitLoaders, LightningDataModule):
    """SST-2 from ``data_dir``: val carved from ``train.tsv``, ``test.tsv`` (or ``dev.tsv``) as test.

    ``num_classes`` (2), ``input_shape`` (``(max_length,)``), ``vocab``, ``vocab_size`` and
    ``pad_token_id`` are set by the constructor, which also reads and checks the files;
    ``train_set``, ``val_set`` and ``test_set`` (``TensorDataset`` of ids and labels) by :meth:`setup`.

    Args:
        data_dir: folder holding ``train.tsv`` and ``test.tsv`` (or ``dev.tsv``).
        max_length: tokens per sample, ``[CLS]`` included; longer texts are cut, shorter ones padded.
        batch_size: samples per batch.
        val_fraction: share of the training phrases (after ``train_subset``) held out for validation.
        test_split: ``"test"`` (``test.tsv``, for reported numbers) or ``"dev"`` (``dev.tsv``).
        max_vocab_size: at most this many tokens, the 3 special ones included; ``None``: no cap.
        min_freq: words seen fewer times in the training part encode as ``[UNK]``.
        num_workers: DataLoader worker processes.
        seed: seed of the validation split and of ``train_subset``.
        train_subset: keep only this many training phrases (the first of the seeded shuffle), for fast runs.

    Raises:
        SpiralConfigError: an argument is invalid; ``data_dir`` or a file is missing; a file is
            unreadable or has a malformed header or row (named with its line number).

    Example:
        >>> SST2DataModule("/no/such/folder")
        Traceback (most recent call last):
            ...
        lightning_spiral.errors.SpiralConfigError: `data_dir` must be a folder holding SST-2's train.tsv and test.tsv, got '/no/such/folder' (not found). See the SST2DataModule docstring for the data.
    """

    num_classes = 2
    classes = ("negative", "positive")

    def __init__(
        self,
        data_dir: str | os.PathLike = "../shared/data/sst2",
        max_length: int = 64,
        batch_size: int = 64,
        val_fraction: float = 0.05,
        test_split: Literal["test", "dev"] = "test",
        max_vocab_size: int | None = 20000,
        min_freq: int = 1,
        num_workers: int = 0,
        seed: int = 0,
        train_subset: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(data_dir, (str, os.PathLike)):
            raise refuse("data_dir", data_dir, "a folder path (str or os.PathLike)")
        self.max_length = check_int("max_length", max_length, 2)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.val_fraction = check_interval("val_fraction", val_fraction, "(0, 1)")
        self.test_split = check_choice("test_split", test_split, ("test", "dev"))
        self.num_workers = check_int("num_workers", num_workers, 0)
        self.seed = check_int("seed", seed, 0)
        self.train_subset = check_int("train_subset", train_subset, 2, none_ok=True)
        self.max_vocab_size = check_int("max_vocab_size", max_vocab_size, len(SPECIAL_TOKENS) + 1, none_ok=True)
        self.min_freq = check_int("min_freq", min_freq, 1)
        self.data_dir = Path(data_dir)
        train_path, test_path = self._files()
        self._train_texts, self._train_labels = read_labelled_tsv(train_path)
        self._test_texts, self._test_labels = read_labelled_tsv(test_path)
        self._train_index, self._val_index = train_val_indices(
            len(self._train_labels), self.val_fraction, self.seed, self.train_subset
        )
        train_part = [self._train_texts[i] for i in self._train_index]
        self.vocab = WordVocab.build(train_part, self.min_freq, self.max_vocab_size)  # never val or test text
        self.vocab_size = len(self.vocab)
        self.pad_token_id = self.vocab.pad_token_id
        self.input_shape = (self.max_length,)
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None
        self.test_set: TensorDataset | None = None

    def _files(self) -> tuple[Path, Path]:
        """``train.tsv`` and the test split's file, checked to exist."""
        names = ("train.tsv", f"{self.test_split}.tsv")
        if not self.data_dir.is_dir():
            raise self._missing("not found")
        for name in names:
            if not (self.data_dir / name).is_file():
                raise self._missing(f"no '{self.data_dir / name}'")
        return self.data_dir / names[0], self.data_dir / names[1]

    def _missing(self, reason: str) -> SpiralConfigError:
        return SpiralConfigError(
            f"`data_dir` must be a folder holding SST-2's train.tsv and {self.test_split}.tsv, got '{self.data_dir}' "
            f"({reason}). See the SST2DataModule docstring for the data."
        )

    def setup(self, stage: str | None = None) -> None:
        """Encode the training part, the validation carve and the test split into token ids."""
        if self.train_set is not None:
            return
        self.train_set = self._encode_part(self._train_index)
        self.val_set = self._encode_part(self._val_index)
        self.test_set = self._encode(self._test_texts, self._test_labels)

    def _encode_part(self, index: np.ndarray) -> TensorDataset:
        """The training phrases at ``index``, encoded."""
        return self._encode([self._train_texts[i] for i in index], [self._train_labels[i] for i in index])

    def _encode(self, texts: list[str], labels: list[int]) -> TensorDataset:
        """``(input_ids (N, max_length), labels (N,))``, both int64."""
        return TensorDataset(self.vocab.encode(texts, self.max_length), torch.tensor(labels, dtype=torch.long))
