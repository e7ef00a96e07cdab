"""A GPT-2 style decoder-only transformer in Flax NNX, with a functional KV cache for fast sampling.

Pre-LN blocks (LayerNorm -> causal self-attention -> residual, LayerNorm -> GELU MLP -> residual), learned
position embeddings, a final LayerNorm and an output projection tied to the token embedding.

Two conventions make it fit the rest of the zoo:
- The model holds no RNG state: dropout draws its randomness from an `nnx.Rngs` given at call time, so
  `nnx.split(model)` yields only `nnx.Param`s and the training loop can split once, `jax.jit` a pure step
  function and pass `nnx.Rngs(dropout=key)` per step.
- The KV cache is a plain pytree (a list with one `{"k", "v"}` dict per layer) returned by `decode`, not
  `nnx.Cache` variables, so it can be the carry of a `lax.while_loop` inside one jitted sampler.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.layers.dropout import Dropout
from zoo.layers.linear import Linear, over_rows

# One {"k": [B * H, S, D], "v": [B * H, S, D]} dict per layer, in the compute dtype. Heads before positions
# so the attention einsums are plain batched matmuls over the cache (with [B, S, H, D] XLA transposes the
# whole cache every step). Batch and heads in one axis so that no axis of the cache is 1 at batch 1: XLA
# bitcasts such an axis away before the matmul, and the cache update feeding both that bitcast and the
# loop's carry is then duplicated, each copy with a full copy of the cache, every step.
KVCache = list[dict[str, jax.Array]]

_NEG_INF = float(jnp.finfo(jnp.float32).min)


def _normal(std: float) -> nnx.initializers.Initializer:
    return nnx.initializers.normal(stddev=std)


def _attend(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """Masked softmax attention. q: [..., T, D], k/v: [..., S, D], mask: bool [T, S] (True = may attend).

    Plain einsums, faster on the CPU than `jax.nn.dot_product_attention`. The softmax's normalisation is
    applied to the [B,H,T,D] output rather than to the [B,H,T,S] probabilities (FlashAttention's order):
    one pass less over the scores, forward and backward. Both matmuls accumulate in float32 and the scores,
    softmax and normalisation stay float32, so a bfloat16 compute dtype rounds only the matmul operands.
    """
    f32 = jnp.float32
    scores = jnp.einsum("...td,...sd->...ts", q * (1.0 / math.sqrt(q.shape[-1])), k, preferred_element_type=f32)
    scores = jnp.where(mask, scores, _NEG_INF)
    weights = jnp.exp(scores - jax.lax.stop_gradient(jnp.max(scores, axis=-1, keepdims=True)))
    out = jnp.einsum("...ts,...sd->...td", weights.astype(v.dtype), v, preferred_element_type=f32)
    return (out / jnp.sum(weights, axis=-1, keepdims=True)).astype(v.dtype)


ATTENTION_BLOCK = 128  # query rows per block of causal attention over long sequences


def _causal_attend(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """Causal self-attention, q/k/v [B, H, T, D]. Past ATTENTION_BLOCK positions the queries go in blocks,
    each attending only to the keys up to its own end: score blocks wholly above the diagonal are never
    computed (T = 512: 10 of the 16 blocks are, the 4 on the diagonal masked), and each block's scores are
    a fraction of the T x T tensor."""
    t = q.shape[2]
    if t <= ATTENTION_BLOCK or t % ATTENTION_BLOCK:
        return _attend(q, k, v, jnp.tril(jnp.ones((t, t), dtype=bool)))
    outs = []
    for end in range(ATTENTION_BLOCK, t + 1, ATTENTION_BLOCK):
        rows = jnp.arange(end - ATTENTION_BLOCK, end)
        mask = jnp.arange(end)[None, :] <= rows[:, None]
        outs.append(_attend(q[:, :, end - ATTENTION_BLOCK:end], k[:, :, :end], v[:, :, :end], mask))
    return jnp.concatenate(outs, axis=2)


class CausalSelfAttention(nnx.Module):
    """Multi-head causal self-attention with one fused qkv projection."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float, dtype: Any, proj_std: float,
                 *, rngs: nnx.Rngs):
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.c_attn = Linear(embed_dim, 3 * embed_dim, dtype=dtype, kernel_init=_normal(0.02), rngs=rngs)
        self.c_proj = Linear(embed_dim, embed_dim, dtype=dtype, kernel_init=_normal(proj_std), rngs=rngs)
        self.resid_drop = Dropout(dropout)

    def _qkv(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        b, t, c = x.shape
        qkv = self.c_attn(x).reshape(b, t, 3, self.num_heads, c // self.num_heads)
        q, k, v = jnp.transpose(qkv, (2, 0, 3, 1, 4))  # each [B, H, T, D]
        return q, k, v

    def _out(self, y: jax.Array, deterministic: bool, rngs: nnx.Rngs | None) -> jax.Array:
        b, _, t, _ = y.shape
        y = jnp.transpose(y, (0, 2, 1, 3)).reshape(b, t, -1)
        return self.resid_drop(self.c_proj(y), deterministic=deterministic, rngs=rngs)

    def __call__(self, x: jax.Array, *, deterministic: bool, rngs: nnx.Rngs | None) -> jax.Array:
        q, k, v = self._qkv(x)
        return self._out(_causal_attend(q, k, v), deterministic, rngs)

    def decode(self, x: jax.Array, cache: dict[str, jax.Array], index: jax.Array
               ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Write this chunk's K/V at cache positions index..index+T-1, attend to positions <= own."""
        b, t, _ = x.shape
        q, k, v = (a.reshape(-1, *a.shape[2:]) for a in self._qkv(x))  # [B * H, T, D]
        zero = jnp.zeros((), jnp.int32)
        start = (zero, index, zero)
        ck = jax.lax.dynamic_update_slice(cache["k"], k.astype(cache["k"].dtype), start)
        cv = jax.lax.dynamic_update_slice(cache["v"], v.astype(cache["v"].dtype), start)
        q_pos = index + jnp.arange(t)
        mask = jnp.arange(ck.shape[1])[None, :] <= q_pos[:, None]
        y = _attend(q, ck, cv, mask)
        return self._out(y.reshape(b, -1, *y.shape[1:]), True, None), {"k": ck, "v": cv}


class MLP(nnx.Module):
    """Position-wise feed-forward: Linear(4x) -> GELU (tanh approximation, as GPT-2) -> Linear."""

    def __init__(self, embed_dim: int, dropout: float, dtype: Any, proj_std: float, *, rngs: nnx.Rngs):
        self.c_fc = Linear(embed_dim, 4 * embed_dim, dtype=dtype, kernel_init=_normal(0.02), rngs=rngs)
        self.c_proj = Linear(4 * embed_dim, embed_dim, dtype=dtype, kernel_init=_normal(proj_std), rngs=rngs)
        self.drop = Dropout(dropout)

    def __call__(self, x: jax.Array, *, deterministic: bool, rngs: nnx.Rngs | None) -> jax.Array:
        h = jax.nn.gelu(self.c_fc(x), approximate=True)
        return self.drop(self.c_proj(h), deterministic=deterministic, rngs=rngs)


class Block(nnx.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float, dtype: Any, proj_std: float,
                 *, rngs: nnx.Rngs):
        self.ln_1 = nnx.LayerNorm(embed_dim, epsilon=1e-5, dtype=dtype, rngs=rngs)
        self.attn = CausalSelfAttention(embed_dim, num_heads, dropout, dtype, proj_std, rngs=rngs)
        self.ln_2 = nnx.LayerNorm(embed_dim, epsilon=1e-5, dtype=dtype, rngs=rngs)
        self.mlp = MLP(embed_dim, dropout, dtype, proj_std, rngs=rngs)

    def __call__(self, x: jax.Array, *, deterministic: bool, rngs: nnx.Rngs | None) -> jax.Array:
        x = x + self.attn(self.ln_1(x), deterministic=deterministic, rngs=rngs)
        return x + self.mlp(self.ln_2(x), deterministic=deterministic, rngs=rngs)

    def decode(self, x: jax.Array, cache: dict[str, jax.Array], index: jax.Array
               ) -> tuple[jax.Array, dict[str, jax.Array]]:
        a, cache = self.attn.decode(self.ln_1(x), cache, index)
        x = x + a
        return x + self.mlp(self.ln_2(x), deterministic=True, rngs=None), cache


def _block(block: Block, x: jax.Array, rngs: nnx.Rngs | None, deterministic: bool) -> jax.Array:
    return block(x, deterministic=deterministic, rngs=rngs)


# Activation checkpointing: the backward pass recomputes a block's forward from its input, so a step keeps one
# [B, T, C] array per block instead of every intermediate (attention scores, the 4x MLP). Costs about one
# more forward pass (~1/3 more FLOPs); the values are unchanged (dropout masks come from the same keys).
_remat_block = nnx.remat(_block, static_argnums=3)


class GPT(nnx.Module):
    """GPT-2 style decoder. `dtype` is the compute dtype (e.g. jnp.bfloat16); parameters stay float32.
    `remat=True` recomputes each block in the backward pass: the same values, less activation memory for
    about a third more training FLOPs (how a large per-device batch fits a chip; benchmarks/plan.py)."""

    def __init__(self, *, vocab_size: int, context_length: int, num_layers: int, num_heads: int,
                 embed_dim: int, dropout: float = 0.0, dtype: Any = jnp.float32, remat: bool = False,
                 rngs: nnx.Rngs):
        self.vocab_size = vocab_size
        # Training only: keep each block's input, recompute its insides in the backward pass (_remat_block).
        self.remat = remat
        self.context_length = context_length
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.embed_dim = embed_dim
        self.dropout = dropout
        self.dtype = dtype
        # GPT-2 init: N(0, 0.02) everywhere, residual projections scaled by 1/sqrt(2 * num_layers) so the
        # variance of the residual stream does not grow with depth.
        proj_std = 0.02 / math.sqrt(2 * num_layers)
        self.wte = nnx.Embed(vocab_size, embed_dim, dtype=dtype, embedding_init=_normal(0.02), rngs=rngs)
        self.wpe = nnx.Embed(context_length, embed_dim, dtype=dtype, embedding_init=_normal(0.02), rngs=rngs)
        self.drop = Dropout(dropout)
        self.blocks = nnx.List(
            [Block(embed_dim, num_heads, dropout, dtype, proj_std, rngs=rngs) for _ in range(num_layers)])
        self.ln_f = nnx.LayerNorm(embed_dim, epsilon=1e-5, dtype=dtype, rngs=rngs)

    def _logits(self, x: jax.Array) -> jax.Array:
        # Weight tying: the output projection is the token embedding, transposed.
        return over_rows(self.wte.attend, self.ln_f(x)).astype(jnp.float32)

    def __call__(self, tokens: jax.Array, *, deterministic: bool = True, rngs: nnx.Rngs | None = None
                 ) -> jax.Array:
        """tokens int[B, T] (T <= context_length) -> float32 logits [B, T, vocab_size].

        With deterministic=False and dropout > 0, `rngs` (an `nnx.Rngs` with a `dropout` stream) is required.
        """
        return self._logits(self.hidden(tokens, deterministic=deterministic, rngs=rngs))

    def hidden(self, tokens: jax.Array, *, deterministic: bool = True, rngs: nnx.Rngs | None = None
               ) -> jax.Array:
        """The residual stream after the last block, before the final LayerNorm: [B, T, embed_dim]. What a
        classifier fine-tuned from this LM reads (zoo.models.classify)."""
        if tokens.shape[1] > self.context_length:
            raise ValueError(f"sequence length {tokens.shape[1]} exceeds context_length {self.context_length}")
        if not deterministic and self.dropout > 0 and rngs is None:
            raise ValueError("training mode with dropout needs rngs=nnx.Rngs(dropout=key)")
        x = self.wte(tokens) + self.wpe(jnp.arange(tokens.shape[1]))
        x = self.drop(x, deterministic=deterministic, rngs=rngs)
        for block in self.blocks:
            x = (_remat_block if self.remat else _block)(block, x, rngs, deterministic)
        return x

    def init_cache(self, batch_size: int, max_length: int) -> KVCache:
        """An empty KV cache for `max_length` (<= context_length) positions, in the compute dtype."""
        if max_length > self.context_length:
            raise ValueError(f"max_length {max_length} exceeds context_length {self.context_length}")
        shape = (batch_size * self.num_heads, max_length, self.embed_dim // self.num_heads)
        return [{"k": jnp.zeros(shape, self.dtype), "v": jnp.zeros(shape, self.dtype)}
                for _ in range(self.num_layers)]

    def decode(self, tokens: jax.Array, cache: KVCache, index: jax.Array) -> tuple[jax.Array, KVCache]:
        """Run tokens int[B, T] at positions index..index+T-1 against the cache (inference, no dropout).

        T > 1 is a prefill, T == 1 one sampling step. Returns float32 logits [B, T, V] and the cache with
        this chunk's K/V written. Cache slots after a query's position are masked out, so whatever they
        hold (zeros, or K/V of right-padding from a bucketed prefill) never affects the result.
        `index` may be a traced int32 scalar; the caller keeps index + T <= cache length.
        """
        index = jnp.asarray(index, jnp.int32)
        x = self.wte(tokens) + self.wpe(index + jnp.arange(tokens.shape[1]))
        new_cache = []
        for block, layer_cache in zip(self.blocks, cache, strict=True):
            x, layer_cache = block.decode(x, layer_cache, index)
            new_cache.append(layer_cache)
        return self._logits(x), new_cache


def num_params(model: nnx.Module) -> int:
    """Number of scalar parameters (tied embedding counted once)."""
    return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
