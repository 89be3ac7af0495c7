"""Tokenizers for the lab: a character-level one for the from-scratch model, and an
adapter that gives a Hugging Face tokenizer the same small interface.

The interface (:class:`LabTokenizer`) is what the sampler and the trainer use:
``encode`` a prompt or an answer to ids (no special tokens), ``decode`` ids back to
text, and the ids of the ``bos``, ``eos`` and ``pad`` tokens.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from maxpo.lab.task import ALPHABET

__all__ = ["LabTokenizer", "CharTokenizer", "HFTokenizer"]


class LabTokenizer(Protocol):
    """What the lab needs from a tokenizer."""

    bos_id: int | None
    eos_id: int
    pad_id: int
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` without special tokens."""

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; special tokens are dropped."""


class CharTokenizer:
    """One token per character of :data:`~maxpo.lab.task.ALPHABET`, plus PAD, BOS, EOS.

    Ids: 0 = PAD, 1 = BOS, 2 = EOS, then the alphabet in order. Encoding a
    character outside the alphabet raises ``ValueError`` naming it.
    """

    PAD, BOS, EOS = 0, 1, 2

    def __init__(self, alphabet: str = ALPHABET) -> None:
        if len(set(alphabet)) != len(alphabet):
            raise ValueError(f"alphabet has repeated characters: {alphabet!r}")
        self.alphabet = alphabet
        self._to_id = {ch: i + 3 for i, ch in enumerate(alphabet)}
        self.bos_id: int | None = self.BOS
        self.eos_id = self.EOS
        self.pad_id = self.PAD
        self.vocab_size = len(alphabet) + 3

    def encode(self, text: str) -> list[int]:
        try:
            return [self._to_id[ch] for ch in text]
        except KeyError as err:
            raise ValueError(
                f"character {err.args[0]!r} in {text!r} is not in the tokenizer's alphabet {self.alphabet!r}"
            ) from None

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.alphabet[i - 3] for i in ids if i >= 3)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "char", "alphabet": self.alphabet}


class HFTokenizer:
    """Adapter around a Hugging Face tokenizer (``AutoTokenizer``).

    Prompts get the tokenizer's BOS token in front when it has one; answers end
    with its EOS token. A tokenizer without a pad token pads with EOS (the pad
    positions are masked out anyway).
    """

    def __init__(self, tok: Any) -> None:
        if tok.eos_token_id is None:
            raise ValueError("the Hugging Face tokenizer has no eos_token; the lab needs one to end answers")
        self.tok = tok
        self.bos_id = tok.bos_token_id
        self.eos_id = int(tok.eos_token_id)
        self.pad_id = int(tok.pad_token_id) if tok.pad_token_id is not None else self.eos_id
        self.vocab_size = len(tok)

    def encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "hf", "name": getattr(self.tok, "name_or_path", "")}
