"""Dense layers that multiply 2-D matrices: the sequence models' `Linear`, and `over_rows` for other maps.

Why: a dense layer applied to [B, T, in] activations as one 3-D `dot_general` has a weight gradient that
contracts over two axes (B and T). XLA's CPU backend lowers that with transposed copies of the
activations; flattened to [B*T, in] first, the same gradient is one plain matrix product. Measured on 2 CPU
cores (docs/benchmarks.md), the forward and backward of one layer: [32, 512, 256] x [256, 1024] 113 -> 50 ms,
[64, 384, 256] x [256, 1024] 162 -> 78 ms; whole train steps: the poem LM at context 512 2.62 -> 2.17 s, the
music LSTM 0.95 -> 0.80 s. Values and parameters are
nnx.Linear's (tests/test_linear.py), so checkpoints do not depend on which class wrote them.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from flax import nnx


def over_rows(fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """fn applied to x [..., in] as one [N, in] matrix (N = the product of the leading axes) -> [..., out]."""
    if x.ndim <= 2:
        return fn(x)
    y = fn(x.reshape(-1, x.shape[-1]))
    return y.reshape(*x.shape[:-1], y.shape[-1])


class Linear(nnx.Linear):
    """nnx.Linear over [..., in] inputs, computed on the flattened [N, in] matrix (`over_rows`)."""

    def __call__(self, inputs: jax.Array) -> jax.Array:
        return over_rows(super().__call__, inputs)
