"""zoo.models.linear: the flattened dense layer is nnx.Linear, in parameters, values and both gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from zoo.models.linear import Linear, over_rows


@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 5), (2, 1, 3, 5)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_equals_nnx_linear(shape, use_bias):
    ours = Linear(5, 7, use_bias=use_bias, rngs=nnx.Rngs(0))
    theirs = nnx.Linear(5, 7, use_bias=use_bias, rngs=nnx.Rngs(0))
    assert isinstance(ours, nnx.Linear)
    assert jax.tree.map(jnp.shape, nnx.state(ours)) == jax.tree.map(jnp.shape, nnx.state(theirs))
    rng = np.random.default_rng(len(shape))
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    y = ours(x)
    assert y.shape == (*shape[:-1], 7)
    np.testing.assert_allclose(y, theirs(x), rtol=1e-6, atol=1e-6)
    weights = jnp.asarray(rng.normal(size=y.shape), jnp.float32)  # a non-trivial cotangent

    def grads(model: nnx.Module) -> tuple:
        return nnx.grad(lambda m, x: (m(x) * weights).sum(), argnums=(0, 1))(model, x)

    (g_ours, dx_ours), (g_theirs, dx_theirs) = grads(ours), grads(theirs)
    np.testing.assert_allclose(dx_ours, dx_theirs, rtol=1e-5, atol=1e-6)
    for got, expected in zip(jax.tree.leaves(nnx.state(g_ours)), jax.tree.leaves(nnx.state(g_theirs)), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(g_ours.kernel[...]).sum()) > 0


def test_over_rows_keeps_leading_axes():
    embed = nnx.Embed(11, 4, rngs=nnx.Rngs(1))
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 3, 4)), jnp.float32)
    got = over_rows(embed.attend, x)
    assert got.shape == (2, 3, 11)
    np.testing.assert_allclose(got, embed.attend(x), rtol=1e-6, atol=1e-6)
