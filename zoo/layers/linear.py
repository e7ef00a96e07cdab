"""Dense layers that multiply 2-D matrices: the sequence models' `Linear`, and `over_rows` for other maps.

Why: a dense layer applied to [B, T, in] activations as one 3-D `dot_general` has a weight gradient that
contracts over two axes (B and T), which XLA's CPU backend lowers with transposed copies of the activations.
Flattened to [B*T, in] first, that gradient is one plain matrix product: the forward and backward of a
[32, 512, 256] x [256, 1024] layer take 50 ms against 113 on 2 CPU cores (docs/performance.md has the
whole-step figures). Parameters and values are nnx.Linear's (tests/test_linear.py), so checkpoints do not
depend on which class wrote them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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

    def __call__(self, inputs: jax.Array, out_sharding: Any = None) -> jax.Array:
        if out_sharding is not None:  # a sharding of the [..., out] result: no flattening
            return super().__call__(inputs, out_sharding=out_sharding)
        return over_rows(super().__call__, inputs)
