"""zoo.layers.linear: the flattened dense layer is nnx.Linear, in parameters, values and both gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from zoo.layers.linear import Linear, over_rows


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


def _dot_operand_ranks(fn, *args) -> list[int]:
    jaxpr = jax.make_jaxpr(fn)(*args)
    return [v.aval.ndim for eqn in jaxpr.eqns if eqn.primitive.name == "dot_general" for v in eqn.invars]


def test_forward_and_backward_multiply_matrices():
    """The reason for the class: every matmul of the forward and backward pass on [B, T, in] is 2-D (with
    nnx.Linear the weight gradient contracts a 3-D pair over two axes)."""
    x = jnp.ones((2, 3, 5), jnp.float32)

    def loss(model: nnx.Module, x: jax.Array) -> jax.Array:
        return model(x).sum()

    grads = nnx.grad(loss, argnums=(0, 1))
    ranks = _dot_operand_ranks(grads, Linear(5, 7, rngs=nnx.Rngs(0)), x)
    assert ranks and set(ranks) == {2}
    assert 3 in _dot_operand_ranks(grads, nnx.Linear(5, 7, rngs=nnx.Rngs(0)), x)  # the check tells them apart


def test_bfloat16_compute_matches_nnx_linear():
    ours = Linear(5, 7, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    theirs = nnx.Linear(5, 7, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 3, 5)), jnp.float32)
    got, expected = ours(x), theirs(x)
    assert got.dtype == expected.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(expected, np.float32), rtol=1e-2, atol=1e-2)


def test_over_rows_keeps_leading_axes():
    embed = nnx.Embed(11, 4, rngs=nnx.Rngs(1))
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 3, 4)), jnp.float32)
    got = over_rows(embed.attend, x)
    assert got.shape == (2, 3, 11)
    np.testing.assert_allclose(got, embed.attend(x), rtol=1e-6, atol=1e-6)
