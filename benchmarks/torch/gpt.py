"""zoo.models.lm.GPT in PyTorch, written the way nanoGPT writes it, so that figures compare with nanoGPT's.

The architecture, parameter layout and initialisation are the JAX model's, which is GPT-2's and so nanoGPT's
with `bias=True`: pre-LN blocks, learned position embeddings, a fused qkv projection, a 4x MLP, a final
LayerNorm (eps 1e-5) and an output projection tied to the token embedding; every weight N(0, 0.02), the two
residual projections of each block N(0, 0.02 / sqrt(2 * num_layers)), biases zero, LayerNorms (1, 0).

Where the zoo's model differs from nanoGPT, this twin follows the zoo (the comparison is with the JAX side):
- GELU is the tanh approximation (GPT-2's; nanoGPT's `nn.GELU()` is the exact erf form).
- Dropout sits after the embeddings and on both residual branches, but NOT on the attention probabilities
  (nanoGPT also passes `dropout_p` to `scaled_dot_product_attention`; the zoo's attention has none).

Training attention is `F.scaled_dot_product_attention(..., is_causal=True)`, as nanoGPT's flash path.
`generate` is nanoGPT's sampler (no cache: the whole cropped context is re-run for each new token);
`generate_cached` keeps a KV cache and slides the window the way zoo.sample.lm does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.torch.common import load_flax_params

# One (k, v) pair of [B, H, S, D] tensors per layer, written in place by `GPT.decode`.
KVCache = list[tuple[torch.Tensor, torch.Tensor]]


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused qkv projection (nanoGPT's `c_attn` / `c_proj`)."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.c_attn = nn.Linear(embed_dim, 3 * embed_dim)
        self.c_proj = nn.Linear(embed_dim, embed_dim)
        self.resid_dropout = nn.Dropout(dropout)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        return tuple(z.view(b, t, self.num_heads, c // self.num_heads).transpose(1, 2) for z in (q, k, v))

    def _out(self, y: torch.Tensor) -> torch.Tensor:
        b, _, t, _ = y.shape
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(b, t, -1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._qkv(x)
        return self._out(F.scaled_dot_product_attention(q, k, v, is_causal=True))

    def decode(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor], index: int) -> torch.Tensor:
        """Write this chunk's K/V at positions index..index+T-1 of `cache` (in place) and attend to <= own."""
        q, k, v = self._qkv(x)
        t = x.shape[1]
        ck, cv = cache
        ck[:, :, index:index + t] = k
        cv[:, :, index:index + t] = v
        keys, values = ck[:, :, :index + t], cv[:, :, :index + t]
        if t == 1:  # one new token sees every cached position: no mask
            return self._out(F.scaled_dot_product_attention(q, keys, values))
        mask = torch.arange(index + t, device=x.device)[None, :] <= (index + torch.arange(t, device=x.device))[:, None]
        return self._out(F.scaled_dot_product_attention(q, keys, values, attn_mask=mask))


class MLP(nn.Module):
    """Linear(4x) -> GELU (tanh approximation, as the zoo and GPT-2) -> Linear -> dropout."""

    def __init__(self, embed_dim: int, dropout: float):
        super().__init__()
        self.c_fc = nn.Linear(embed_dim, 4 * embed_dim)
        self.c_proj = nn.Linear(4 * embed_dim, embed_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    """Pre-LN block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(embed_dim, eps=1e-5)
        self.attn = CausalSelfAttention(embed_dim, num_heads, dropout)
        self.ln_2 = nn.LayerNorm(embed_dim, eps=1e-5)
        self.mlp = MLP(embed_dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

    def decode(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor], index: int) -> torch.Tensor:
        x = x + self.attn.decode(self.ln_1(x), cache, index)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """The zoo's GPT (same constructor arguments as zoo.models.lm.GPT, less dtype and rngs)."""

    def __init__(self, *, vocab_size: int, context_length: int, num_layers: int, num_heads: int,
                 embed_dim: int, dropout: float = 0.0):
        super().__init__()
        self.vocab_size, self.context_length = vocab_size, context_length
        self.num_layers, self.num_heads, self.embed_dim = num_layers, num_heads, embed_dim
        self.wte = nn.Embedding(vocab_size, embed_dim)
        self.wpe = nn.Embedding(context_length, embed_dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, dropout) for _ in range(num_layers)])
        self.ln_f = nn.LayerNorm(embed_dim, eps=1e-5)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's (and the JAX model's explicit) init; PyTorch's Linear/Embedding defaults differ."""
        proj_std = 0.02 / math.sqrt(2 * self.num_layers)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, proj_std if name.endswith("c_proj") else 0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, 0.02)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        # Weight tying: the output projection is the token embedding (nanoGPT's lm_head.weight = wte.weight).
        return F.linear(self.ln_f(x), self.wte.weight).float()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens int64 [B, T] (T <= context_length) -> float32 logits [B, T, V]; dropout per train()/eval()."""
        t = tokens.shape[1]
        if t > self.context_length:
            raise ValueError(f"sequence length {t} exceeds context_length {self.context_length}")
        x = self.drop(self.wte(tokens) + self.wpe(torch.arange(t, device=tokens.device)))
        for block in self.blocks:
            x = block(x)
        return self._logits(x)

    def init_cache(self, batch_size: int, max_length: int) -> KVCache:
        """Zeroed K/V for `max_length` (<= context_length) positions, in the compute dtype."""
        if max_length > self.context_length:
            raise ValueError(f"max_length {max_length} exceeds context_length {self.context_length}")
        weight = self.wte.weight
        kind = weight.device.type  # under autocast K/V come out in its dtype: keep the cache in it
        dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else weight.dtype
        shape = (batch_size, self.num_heads, max_length, self.embed_dim // self.num_heads)
        return [(weight.new_zeros(shape, dtype=dtype), weight.new_zeros(shape, dtype=dtype))
                for _ in range(self.num_layers)]

    def decode(self, tokens: torch.Tensor, cache: KVCache, index: int) -> torch.Tensor:
        """Inference: tokens [B, T] at positions index..index+T-1 against `cache` (updated in place) ->
        float32 logits [B, T, V]. Call in eval mode and under no_grad, as zoo.models.lm.GPT.decode."""
        positions = torch.arange(index, index + tokens.shape[1], device=tokens.device)
        x = self.wte(tokens) + self.wpe(positions)
        for block, layer_cache in zip(self.blocks, cache, strict=True):
            x = block.decode(x, layer_cache, index)
        return self._logits(x)


def _draw(logits: torch.Tensor, temperature: float, logit_bias: torch.Tensor | None,
          generator: torch.Generator | None) -> torch.Tensor:
    """One multinomial draw per row of logits [B, V] at `temperature` (0 = greedy) -> int64 [B, 1]."""
    if logit_bias is not None:
        logits = logits + logit_bias
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    probs = F.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


@torch.no_grad()
def generate(model: GPT, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             generator: torch.Generator | None = None, logit_bias: torch.Tensor | None = None) -> torch.Tensor:
    """nanoGPT's `GPT.generate`: for each new token re-run the whole context (cropped to the last
    context_length tokens) and sample from the last position. idx int64 [B, P] -> [B, P + max_new_tokens]."""
    was_training = model.training
    model.eval()
    for _ in range(max_new_tokens):
        idx_cond = idx if idx.size(1) <= model.context_length else idx[:, -model.context_length:]
        logits = model(idx_cond)[:, -1, :]
        idx = torch.cat((idx, _draw(logits, temperature, logit_bias, generator)), dim=1)
    model.train(was_training)
    return idx


@torch.no_grad()
def generate_cached(model: GPT, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                    generator: torch.Generator | None = None, logit_bias: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """`generate` with a KV cache: prefill, then one-token decode steps. Once the window is full it is
    re-prefilled with the last context_length // 2 tokens (zoo.sample.lm's slide; learned absolute
    positions rule out rolling the cache). idx int64 [B, P] -> [B, P + max_new_tokens]."""
    was_training = model.training
    model.eval()
    limit = model.context_length
    window, cache = idx[:, -limit:], None
    for i in range(max_new_tokens):
        if window is not None:  # (re-)prefill; stale K/V past the window is never read
            cache = cache or model.init_cache(idx.size(0), limit)
            logits = model.decode(window, cache, 0)[:, -1]
            pos, window = window.size(1), None
        token = _draw(logits, temperature, logit_bias, generator)
        idx = torch.cat((idx, token), dim=1)
        if i + 1 == max_new_tokens:
            break
        if pos < limit:
            logits = model.decode(token, cache, pos)[:, -1]
            pos += 1
        else:
            window = idx[:, -(limit // 2):]
    model.train(was_training)
    return idx


def load_jax_params(model: GPT, params: dict) -> None:
    """Copies zoo.models.lm.GPT's pure-dict params into the twin (parity checks). The module names are
    the same and so is the fused qkv layout (columns [q | k | v], each head-major), so
    `load_flax_params`'s one-to-one map covers it: Linear kernels (c_attn, c_proj, c_fc), Embed (wte, also
    the tied output projection, and wpe), LayerNorm (ln_1, ln_2, ln_f)."""
    load_flax_params(model, params)
