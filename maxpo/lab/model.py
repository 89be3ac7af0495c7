"""A small decoder-only transformer (GPT) trained from scratch, with a KV cache.

Pre-norm blocks (LayerNorm, causal self-attention through
``torch.nn.functional.scaled_dot_product_attention``, LayerNorm, GELU MLP), learned
absolute position embeddings, and an output layer tied to the token embedding.

Every causal LM in the lab (this one, or a Hugging Face model through
:class:`maxpo.lab.hf.HFCausalLM`) has the same call:

``model(input_ids, attention_mask=None, position_ids=None, cache=None) -> logits``

* ``attention_mask`` (bool ``(N, S)``, ``S`` = cached + new positions) marks real
  tokens; it is needed only when prompts are left-padded.
* ``cache`` comes from ``model.new_cache(batch, max_len)`` and is filled in place,
  so sampling costs one new position per step instead of the whole prefix.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GPTConfig", "GPT", "KVCache"]


@dataclass(frozen=True)
class GPTConfig:
    """Shape of the tiny GPT.

    Attributes:
        vocab_size: number of token ids.
        n_layer: transformer blocks.
        n_head: attention heads (``d_model`` must be divisible by it).
        d_model: width of the residual stream.
        max_len: longest sequence (prompt + answer) the position table covers.
    """

    vocab_size: int
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    max_len: int = 48

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layer", "n_head", "d_model", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"GPTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_head={self.n_head}")

    def to_dict(self) -> dict:
        return asdict(self)


class KVCache:
    """Preallocated keys and values of every layer, ``(layers, N, heads, max_len, head_dim)``.

    ``length`` is the number of positions already stored. The buffers are created
    at the first write, in the dtype of the keys (bf16 under autocast).
    """

    def __init__(self, n_layer: int, batch: int, n_head: int, max_len: int, head_dim: int) -> None:
        self.shape = (n_layer, batch, n_head, max_len, head_dim)
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.length = 0

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new keys/values of ``layer`` after the cached ones; return all of them."""
        if self.k is None:
            self.k = torch.empty(self.shape, dtype=k.dtype, device=k.device)
            self.v = torch.empty(self.shape, dtype=v.dtype, device=v.device)
        end = self.length + k.shape[2]
        if end > self.shape[3]:
            raise ValueError(f"KV cache holds {self.shape[3]} positions; {end} requested")
        self.k[layer, :, :, self.length:end] = k
        self.v[layer, :, :, self.length:end] = v  # type: ignore[index]
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]  # type: ignore[index]


class _Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model)
        self.out = nn.Linear(4 * cfg.d_model, cfg.d_model)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, causal: bool, cache: KVCache | None, layer: int
    ) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(n, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        if cache is not None:
            k, v = cache.write(layer, k, v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        x = x + self.proj(y.transpose(1, 2).reshape(n, t, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    """The lab's from-scratch causal language model (see the module docstring)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.d_model)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.apply(self._init)
        for block in cast(Iterable[_Block], self.blocks):  # GPT-2's scaled init of the residual projections
            for lin in (block.proj, block.out):
                nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def num_parameters(self) -> int:
        """Number of trainable parameters (the tied output layer counted once)."""
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        """An empty KV cache for ``batch`` sequences of up to ``max_len`` positions."""
        c = self.cfg
        return KVCache(c.n_layer, batch, c.n_head, min(max_len, c.max_len), c.d_model // c.n_head)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Logits ``(N, T, vocab)`` for the ``T`` new tokens (see the module docstring)."""
        n, t = input_ids.shape
        past = cache.length if cache is not None else 0
        if past + t > self.cfg.max_len:
            raise ValueError(f"sequence of {past + t} tokens is longer than the model's max_len={self.cfg.max_len}")
        if position_ids is None:
            position_ids = torch.arange(past, past + t, device=input_ids.device).expand(n, t)
        x = self.tok_emb(input_ids) + self.pos_emb(position_ids)
        mask, causal = self._attention_mask(attention_mask, n, t, past, input_ids.device)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, causal, cache, i)
        if cache is not None:
            cache.length = past + t
        return F.linear(self.ln_f(x), self.tok_emb.weight)

    @staticmethod
    def _attention_mask(
        attention_mask: torch.Tensor | None, n: int, t: int, past: int, device: torch.device
    ) -> tuple[torch.Tensor | None, bool]:
        """Return ``(mask, is_causal)`` for SDPA; the fast paths need no mask at all."""
        if attention_mask is None or bool(attention_mask.all()):
            if past == 0:
                return None, t > 1
            if t == 1:
                return None, False
            attention_mask = torch.ones(n, past + t, dtype=torch.bool, device=device)
        if attention_mask.shape != (n, past + t):
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected {(n, past + t)}")
        q = torch.arange(past, past + t, device=device)[:, None]
        kpos = torch.arange(past + t, device=device)[None, :]
        allowed = (kpos <= q)[None] & attention_mask.bool()[:, None, :]
        allowed |= (kpos == q)[None]  # a padded query still sees itself: no all-masked row, no NaN
        return allowed[:, None], False
