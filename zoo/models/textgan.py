"""The text GAN (`textgan`): a GPT generator and RelGAN's multi-representation CNN discriminator.

Generator: zoo.models.lm.GPT, unchanged: the same decoder the poem LMs use, trained first by maximum
likelihood and then adversarially (zoo.objectives.textgan). Nothing about Gumbel-softmax lives in the
model: the objective draws the Gumbel noise and relaxes the generator's logits.

Discriminator (Nie et al. 2019, RelGAN, section 2.3): the input is a sequence of distributions over the
vocabulary, x [B, T, V]: one-hot rows for real text, Gumbel-softmax rows for generated text, so gradients
reach the generator through them. Instead of one embedding, `num_rep` independent embeddings of
`embed_dim` each look at the same sequence (RelGAN found that many small embedded representations give the
generator a richer, more stable signal than one large one):

    x [B, T, V] --(V -> num_rep * embed_dim, no bias)--> [B, num_rep, T, embed_dim]
      + a learned embedding of each position (shared by the representations; `max_length` > 0)
      for each width f in filter_sizes: Conv1d over time (embed_dim -> n_f, VALID), ReLU, max over time
      (shared by the representations) -> concat [B, num_rep, sum n_f] --highway--> dropout
      --Linear(hidden)--> --Linear(1)--> logits [B, num_rep]

Every representation gives its own real/fake logit; the loss averages over all of them. RelGAN's setting is
num_rep = 64, embed_dim = 64, 300 filters per width 2..5; configs/textgan.py scales these down so an
adversarial step runs on two CPU cores. Initialisation: the embeddings N(0, 1/embed_dim), the rest Flax's
defaults (LeCun normal kernels, zero biases).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.layers.dropout import Dropout
from zoo.layers.linear import Linear
from zoo.models.lm import GPT


class RelGANDiscriminator(nnx.Module):
    """Multi-representation CNN discriminator over (relaxed) one-hot sequences."""

    def __init__(self, *, vocab_size: int, max_length: int = 0, num_rep: int = 16, embed_dim: int = 32,
                 filter_sizes: Sequence[int] = (2, 3, 4, 5), num_filters: Sequence[int] = (64, 64, 64, 64),
                 hidden_dim: int = 100, dropout: float = 0.25, dtype: Any = jnp.float32, rngs: nnx.Rngs):
        filter_sizes, num_filters = tuple(int(f) for f in filter_sizes), tuple(int(n) for n in num_filters)
        if len(filter_sizes) != len(num_filters) or not filter_sizes:
            raise ValueError("filter_sizes and num_filters must be non-empty lists of the same length")
        if min(num_rep, embed_dim, hidden_dim, *num_filters, *filter_sizes) < 1:
            raise ValueError("discriminator sizes must be positive")
        self.num_rep, self.embed_dim, self.dtype = num_rep, embed_dim, dtype
        self.filter_sizes = filter_sizes
        self.embed = Linear(vocab_size, num_rep * embed_dim, use_bias=False, dtype=dtype,
                            kernel_init=nnx.initializers.normal(1.0 / embed_dim ** 0.5), rngs=rngs)
        # Max-pooling over time makes the CNN blind to WHERE an n-gram occurs; a fixed form (punctuation
        # at every sixth position of a quatrain) needs that, so positions get learned embeddings too.
        self.positions = (nnx.Param(nnx.initializers.normal(1.0 / embed_dim ** 0.5)(rngs.params(),
                                                                                 (max_length, embed_dim)))
                          if max_length else None)
        self.convs = nnx.List([nnx.Conv(embed_dim, n, (f,), padding="VALID", dtype=dtype, rngs=rngs)
                               for f, n in zip(filter_sizes, num_filters, strict=True)])
        features = sum(num_filters)
        self.highway = Linear(features, features, dtype=dtype, rngs=rngs)
        self.drop = Dropout(dropout)
        self.hidden = Linear(features, hidden_dim, dtype=dtype, rngs=rngs)
        self.out = Linear(hidden_dim, 1, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, *, deterministic: bool = True, rngs: nnx.Rngs | None = None) -> jax.Array:
        """x float [B, T, V] (rows sum to 1), or int [B, T] token ids (the same as their one-hot rows, by a
        lookup instead of a V-wide product) -> float32 logits [B, num_rep]. T >= the widest filter."""
        b, t = x.shape[:2]
        if t < max(self.filter_sizes):
            raise ValueError(f"sequences of {t} tokens are shorter than the widest filter {max(self.filter_sizes)}")
        if jnp.issubdtype(x.dtype, jnp.integer):
            emb = jnp.take(self.embed.kernel[...].astype(self.dtype), x, axis=0)
        else:
            emb = self.embed(x.astype(self.dtype))
        emb = emb.reshape(b, t, self.num_rep, self.embed_dim)
        if self.positions is not None:
            emb = emb + self.positions[:t, None, :].astype(emb.dtype)
        emb = emb.transpose(0, 2, 1, 3).reshape(b * self.num_rep, t, self.embed_dim)
        pooled = jnp.concatenate([nnx.relu(conv(emb)).max(axis=1) for conv in self.convs], axis=-1)
        h = self.highway(pooled)
        gate = nnx.sigmoid(h)
        h = gate * nnx.relu(h) + (1.0 - gate) * pooled
        h = self.drop(h, deterministic=deterministic, rngs=rngs)
        return self.out(self.hidden(h)).astype(jnp.float32).reshape(b, self.num_rep)


class TextGAN(nnx.Module):
    """Both networks; the objective trains them, sampling needs only `generator` (a GPT)."""

    def __init__(self, *, vocab_size: int, context_length: int, num_layers: int, num_heads: int, embed_dim: int,
                 dropout: float = 0.0, discriminator: dict | None = None, dtype: Any = jnp.float32,
                 rngs: nnx.Rngs):
        self.generator = GPT(vocab_size=vocab_size, context_length=context_length, num_layers=num_layers,
                             num_heads=num_heads, embed_dim=embed_dim, dropout=dropout, dtype=dtype, rngs=rngs)
        self.discriminator = RelGANDiscriminator(vocab_size=vocab_size, dtype=dtype, rngs=rngs,
                                                 **{"max_length": context_length, **dict(discriminator or {})})
