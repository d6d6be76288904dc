"""A word-level vocabulary for pre-tokenised text: built from the training text, saved as plain JSON.

Text is split on whitespace only, as the SST-2 files are (lower-cased, punctuation already split
off), so text served to a trained model must be prepared the same way and encoded by the
vocabulary saved with it (:meth:`WordVocab.to_dict`, rebuilt by :meth:`WordVocab.from_dict`).
Ids: ``[PAD]`` 0, ``[UNK]`` 1, ``[CLS]`` 2, then the training words by falling frequency, ties
broken by the word itself, so the same text always gives the same ids.

Example:
    >>> import json
    >>> vocab = WordVocab.build(["a good film", "a bad film", "a film"])
    >>> vocab.tokens
    ['[PAD]', '[UNK]', '[CLS]', 'a', 'film', 'bad', 'good']
    >>> vocab.encode(["a great film", "good"], max_length=4)
    tensor([[2, 3, 1, 4],
            [2, 6, 0, 0]])
    >>> WordVocab.from_dict(json.loads(json.dumps(vocab.to_dict()))).tokens == vocab.tokens
    True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from lightning_spiral.checks import check_int, refuse
from lightning_spiral.errors import SpiralConfigError

#: The special tokens, at ids 0, 1, 2: padding, unknown word, classification slot (first position).
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]")
PAD_ID, UNK_ID, CLS_ID = 0, 1, 2
#: The ``format`` key of :meth:`WordVocab.to_dict`, checked by :meth:`WordVocab.from_dict`.
FORMAT = "lightning_spiral.WordVocab/1"


def check_texts(name: str, texts: Any) -> list[str]:
    """Strings of an iterable, as a list; a bare string is refused (it would be read letter by letter)."""
    if isinstance(texts, str) or not isinstance(texts, Iterable):
        raise refuse(name, texts if isinstance(texts, str) else type(texts).__name__,
                     "a sequence of strings (wrap a single text in a list)")
    texts = list(texts)
    if not all(isinstance(text, str) for text in texts):
        wrong = next(type(text).__name__ for text in texts if not isinstance(text, str))
        raise SpiralConfigError(f"`{name}` must be a sequence of strings, got an item of type {wrong}.")
    return texts


def check_tokens(tokens: Any) -> list[str]:
    """The special tokens first, then distinct non-empty words without whitespace."""
    if isinstance(tokens, str) or not isinstance(tokens, Sequence) or list(tokens[:3]) != list(SPECIAL_TOKENS):
        shown = type(tokens).__name__ if isinstance(tokens, str) or not isinstance(tokens, Sequence) else list(tokens[:3])
        raise refuse("tokens", shown, f"a list of tokens starting with {list(SPECIAL_TOKENS)}")
    seen: dict[str, int] = {}
    for index, token in enumerate(tokens):
        if not isinstance(token, str) or token.split() != [token]:
            raise refuse("tokens", token, "words without whitespace", f"It is the token at id {index}.")
        if token in seen:
            raise refuse("tokens", token, "distinct words", f"It is at ids {seen[token]} and {index}.")
        seen[token] = index
    return list(tokens)


class WordVocab:
    """Word -> id mapping of a text classifier, with ``[PAD]``/``[UNK]``/``[CLS]`` at ids 0/1/2.

    Args:
        tokens: every token in id order, starting with :data:`SPECIAL_TOKENS`; usually made by
            :meth:`build` or :meth:`from_dict`.

    Raises:
        SpiralConfigError: ``tokens`` does not start with the special tokens, or holds a
            duplicate, an empty word or one with whitespace.

    Example:
        >>> vocab = WordVocab(["[PAD]", "[UNK]", "[CLS]", "fine"])
        >>> len(vocab), vocab.pad_token_id, vocab.encode(["fine day"], max_length=3).tolist()
        (4, 0, [[2, 3, 1]])
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens = check_tokens(tokens)
        self._ids = {token: index for index, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int = 1, max_size: int | None = None) -> WordVocab:
        """The vocabulary of ``texts`` (the training text only: never validation or test text).

        Args:
            texts: whitespace-tokenised texts.
            min_freq: keep words seen at least this many times; rarer ones encode as ``[UNK]``.
            max_size: at most this many tokens, special ones included (the embedding's rows);
                ``None``: every word seen ``min_freq`` times.

        Example:
            >>> WordVocab.build(["b a", "a c", "c"], min_freq=2).tokens
            ['[PAD]', '[UNK]', '[CLS]', 'a', 'c']
        """
        min_freq = check_int("min_freq", min_freq, 1)
        max_size = check_int("max_size", max_size, len(SPECIAL_TOKENS) + 1, none_ok=True)
        counts = Counter(word for text in check_texts("texts", texts) for word in text.split())
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))  # most frequent first, ties by word
        words = [word for word, count in ranked if count >= min_freq and word not in SPECIAL_TOKENS]
        keep = None if max_size is None else max_size - len(SPECIAL_TOKENS)
        return cls([*SPECIAL_TOKENS, *words[:keep]])

    @property
    def pad_token_id(self) -> int:
        """Id of ``[PAD]``: a model's attention mask is ``input_ids != pad_token_id``."""
        return PAD_ID

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"WordVocab(size={len(self)})"

    def encode(self, texts: Sequence[str], max_length: int) -> torch.Tensor:
        """``[CLS]`` + the words' ids, cut to ``max_length`` and padded with ``[PAD]``: LongTensor ``(N, max_length)``.

        Words not in the vocabulary become ``[UNK]``.
        """
        max_length = check_int("max_length", max_length, 2)
        rows = [self._row(text, max_length) for text in check_texts("texts", texts)]
        return torch.tensor(rows, dtype=torch.long).view(len(rows), max_length)  # view: an empty list too

    def _row(self, text: str, max_length: int) -> list[int]:
        ids = [CLS_ID, *(self._ids.get(word, UNK_ID) for word in text.split()[: max_length - 1])]
        return ids + [PAD_ID] * (max_length - len(ids))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values: ``{"format": FORMAT, "tokens": [...]}``; save it beside the model."""
        return {"format": FORMAT, "tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, data: Any) -> WordVocab:
        """Inverse of :meth:`to_dict`; anything else is refused in one line."""
        if not isinstance(data, dict) or data.get("format") != FORMAT or "tokens" not in data:
            got = type(data).__name__
            if isinstance(data, dict):
                got = f"format {data.get('format')!r} and keys {sorted(map(str, data))}"
            raise SpiralConfigError(
                f"`data` must be a WordVocab.to_dict() record with format '{FORMAT}' and 'tokens', got {got}."
            )
        return cls(data["tokens"])
