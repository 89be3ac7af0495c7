"""Use a local Hugging Face causal LM (model and tokenizer directory) in the lab.

A reader with, say, a 0.5B model on disk runs the same lab with
``--model-path DIR``: nothing is downloaded, ``DIR`` must hold the model and the
tokenizer as written by ``save_pretrained``. :func:`save_tiny_random_model`
writes such a directory (a two-layer random Llama and a character tokenizer) so
the path is tested without any download.

``transformers`` is imported only here, and only when one of these functions runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from maxpo.lab.task import ALPHABET
from maxpo.lab.tokenizer import HFTokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["HFCausalLM", "load_hf", "context_length", "save_tiny_random_model", "save_tiny_random_model_like_qwen2"]


class HFCausalLM(nn.Module):
    """Gives a ``transformers`` causal LM the lab's call (see :mod:`maxpo.lab.model`)."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def new_cache(self, batch: int, max_len: int) -> Any:
        """An empty ``DynamicCache`` (it grows as tokens are added)."""
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Any = None,
    ) -> torch.Tensor:
        out = self.model(
            input_ids=input_ids,
            attention_mask=None if attention_mask is None else attention_mask.long(),
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=cache is not None,
        )
        return out.logits


def load_hf(path: str | Path, device: torch.device) -> tuple[HFCausalLM, HFTokenizer]:
    """Load a model and its tokenizer from a local directory (no network).

    Raises:
        FileNotFoundError: ``path`` is not a directory with a ``config.json``.
        ValueError: ``transformers`` is missing; the config, the tokenizer or the
            weights cannot be loaded (the message names which file); the tokenizer
            has no EOS token.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"--model-path {str(path)!r} is not a Hugging Face model directory (no config.json there)"
        )
    try:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise ValueError(
            f"--model-path {str(path)!r} needs the transformers package: pip install 'maxpo[lab]'"
        ) from None

    def failed(what: str, err: Exception) -> ValueError:
        msg = " ".join(str(err).split())[:160] or type(err).__name__
        return ValueError(f"--model-path {str(path)!r}: {what} cannot be loaded ({msg})")

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except Exception as err:  # transformers raises OSError, ValueError, KeyError, JSONDecodeError ... for a bad config
        raise failed(f"the model config {path / 'config.json'}", err) from None
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as err:
        files = sorted(p.name for p in path.glob("*token*")) or ["no tokenizer files"]
        raise failed(f"the tokenizer ({', '.join(files)})", err) from None
    try:
        model = AutoModelForCausalLM.from_pretrained(path, config=config, local_files_only=True, dtype=torch.float32)
    except Exception as err:
        raise failed("the model weights", err) from None
    model.to(device)  # type: ignore[arg-type]  # transformers types the wrapped ``to`` without ``self``
    return HFCausalLM(model), HFTokenizer(tok)


def context_length(model: HFCausalLM) -> int | None:
    """The model's context (``max_position_embeddings``), or ``None`` when its config does not say."""
    return getattr(model.model.config, "max_position_embeddings", None)


def save_tiny_random_model(path: str | Path, seed: int = 0, hidden: int = 64, layers: int = 2) -> Path:
    """Write a randomly initialised tiny Llama and a character-level tokenizer to ``path``.

    The tokenizer is a ``tokenizers`` BPE model with one token per character of the
    task's alphabet and no merges and a decoder that joins tokens without spaces, wrapped in
    ``PreTrainedTokenizerFast`` with
    ``<pad>``, ``<s>``, ``</s>`` special tokens.
    """
    from tokenizers import Tokenizer, decoders, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials + list(ALPHABET))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.decoder = decoders.Fuse()  # join tokens without spaces
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tok.save_pretrained(path)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=vocab["<pad>"],
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path


def save_tiny_random_model_like_qwen2(path: str | Path, vocab_size: int = 151_936, seed: int = 0) -> Path:
    """A tiny random Qwen2-architecture model with a large vocabulary (Qwen2's size by default) and the lab's
    character tokenizer padded with unused tokens to ``vocab_size``: the memory profile of a real pretrained
    model's output layer, without any download."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    names = specials + list(ALPHABET)
    vocab = {tok: i for i, tok in enumerate(names + [f"<unused{i}>" for i in range(vocab_size - len(names))])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                  unk_token="<unk>")
    tok.save_pretrained(path)
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                      pad_token_id=vocab["<pad>"], bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"],
                      tie_word_embeddings=True)
    Qwen2ForCausalLM(cfg).save_pretrained(path)
    return path
