"""Dropout whose mask costs a quarter of the random bits of `nnx.Dropout`'s.

`nnx.Dropout` draws one float32 uniform per element, and with JAX's (partitionable) threefry each of them
is a full threefry2x32 evaluation whose two 32-bit outputs are XOR-ed into one. On a CPU that hashing is
the largest elementwise cost of a transformer step: 16% of the poem LM's train step at context 512.

Here each threefry2x32 evaluation yields 64 bits, cut into four 16-bit uniforms, so a mask needs a quarter
of the evaluations (and where XLA keeps the hash's output words to rebuild the mask in the backward pass, as
it does in the poem LM's compiled step, a quarter of the words). An element is dropped when its 16-bit
uniform is below round(rate * 65536): the rate is exact to 2^-17 (0.1 becomes 0.100006), and the kept
elements are scaled (in float32) by the inverse of the keep probability actually used, so the layer is
unbiased up to the input dtype's rounding. The counters are the elements' positions, like partitionable
threefry's, so the mask of an array sharded over its leading axes is computed shard-locally.

The call interface of `nnx.Dropout` as the zoo's models use it: the rate, and `deterministic` and `rngs` (an
`nnx.Rngs`, an `RngStream` or a key) at call time; no `broadcast_dims`. Arrays whose last axis is not a
multiple of 4, and keys of another PRNG implementation, fall back to `jax.random.bernoulli`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax.extend.random import threefry2x32_p

_UNIFORM_BITS = 16
_FIELDS = 64 // _UNIFORM_BITS  # uniforms per threefry2x32 evaluation


def _is_threefry(key: jax.Array) -> bool:
    """One threefry key: a typed scalar key, or a raw uint32[2] (the default implementation's layout)."""
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key.shape == (2,) and key.dtype == jnp.uint32
    return key.shape == () and "threefry" in str(jax.random.key_impl(key))


def keep_mask(key: jax.Array, shape: tuple[int, ...], rate: float) -> tuple[jax.Array, float]:
    """A bool mask of `shape` (True = keep) and the keep probability it was drawn with."""
    threshold = round(rate * (1 << _UNIFORM_BITS))
    keep_prob = 1.0 - threshold / (1 << _UNIFORM_BITS)
    words_shape = (*shape[:-1], shape[-1] // _FIELDS) if shape else ()
    if (not shape or shape[-1] % _FIELDS or math.prod(words_shape) >= 1 << 32 or not _is_threefry(key)
            or threshold in (0, 1 << _UNIFORM_BITS)):
        return jax.random.bernoulli(key, 1.0 - rate, shape), 1.0 - rate
    raw = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    # Each element's row-major position (< 2^32) is its counter: elementwise, so it shards like the input.
    counter = jnp.zeros(words_shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(len(words_shape))):
        counter = counter + jax.lax.broadcasted_iota(jnp.uint32, words_shape, axis) * jnp.uint32(stride)
        stride *= words_shape[axis]
    hi, lo = threefry2x32_p.bind(raw[0], raw[1], jnp.zeros_like(counter), counter)
    mask16 = jnp.uint32((1 << _UNIFORM_BITS) - 1)
    fields = [lo & mask16, lo >> _UNIFORM_BITS, hi & mask16, hi >> _UNIFORM_BITS]
    return jnp.concatenate(fields, axis=-1) >= jnp.uint32(threshold), keep_prob


class Dropout(nnx.Module):
    """Inverted dropout with 16-bit uniforms (see the module docstring); a drop-in for `nnx.Dropout`."""

    def __init__(self, rate: float, *, rng_collection: str = "dropout") -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"dropout rate must be in [0, 1], got {rate}")
        self.rate = rate
        self.rng_collection = rng_collection

    def __call__(self, x: jax.Array, *, deterministic: bool,
                 rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None) -> jax.Array:
        if deterministic or self.rate == 0.0:
            return x
        if self.rate == 1.0:
            return jnp.zeros_like(x)
        if rngs is None:
            raise ValueError("Dropout in training mode needs rngs (an nnx.Rngs with a dropout stream)")
        if isinstance(rngs, nnx.Rngs):
            key = rngs[self.rng_collection]()
        elif isinstance(rngs, nnx.RngStream):
            key = rngs()
        else:
            key = rngs
        keep, keep_prob = keep_mask(key, x.shape, self.rate)
        scaled = (x.astype(jnp.float32) * (1.0 / keep_prob)).astype(x.dtype)
        return jnp.where(keep, scaled, jnp.zeros_like(x))
