"""zoo.layers.conv: the transposed convolution with a hand-written kernel gradient equals lax's, values and
both gradients, for the shapes the image models use and for odd ones (other kernels, strides, paddings)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from zoo.layers.conv import ConvTranspose, conv_transpose, transpose_pads

NHWC = ("NHWC", "HWIO", "NHWC")
CASES = [  # batch, size, in, out, kernel, stride, padding
    (3, 7, 6, 8, 4, 2, "SAME"), (2, 4, 5, 9, 4, 2, "VALID"), (2, 5, 3, 8, 3, 2, "SAME"), (2, 5, 3, 8, 3, 2, "VALID"),
    (2, 6, 4, 8, 3, 1, "SAME"), (2, 3, 4, 8, 5, 3, "SAME"), (2, 4, 4, 8, 2, 2, "SAME"), (2, 4, 4, 8, 4, 2, (1, 2)),
]


@pytest.mark.parametrize("batch,size,cin,cout,k,s,padding", CASES)
def test_values_and_gradients_equal_lax(batch, size, cin, cout, k, s, padding):
    rng = np.random.default_rng(k * 10 + s)
    x = jnp.asarray(rng.normal(size=(batch, size, size, cin)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(k, k, cin, cout)), jnp.float32)
    lax_padding = padding if isinstance(padding, str) else [padding, padding]
    pads = tuple(transpose_pads(k, s, padding) for _ in range(2))

    def reference(x, kernel):
        return lax.conv_transpose(x, kernel, (s, s), lax_padding, dimension_numbers=NHWC)

    def ours(x, kernel):
        return conv_transpose(x, kernel, (s, s), pads)

    np.testing.assert_allclose(ours(x, kernel), reference(x, kernel), rtol=1e-5, atol=1e-5)
    weights = jnp.asarray(rng.normal(size=reference(x, kernel).shape), jnp.float32)  # a non-trivial cotangent
    grads = [jax.grad(lambda a, b, f=f: (f(a, b) * weights).sum(), argnums=(0, 1))(x, kernel)
             for f in (reference, ours)]
    for expected, got in zip(grads[0], grads[1], strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_module_is_nnx_conv_transpose_with_the_same_parameters():
    ours = ConvTranspose(16, 32, (4, 4), strides=(2, 2), padding="SAME", rngs=nnx.Rngs(0))
    theirs = nnx.ConvTranspose(16, 32, (4, 4), strides=(2, 2), padding="SAME", rngs=nnx.Rngs(0))
    assert jax.tree.map(jnp.shape, nnx.state(ours)) == jax.tree.map(jnp.shape, nnx.state(theirs))
    np.testing.assert_array_equal(ours.kernel[...], theirs.kernel[...])  # same init, same layout
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 7, 7, 16)), jnp.float32)
    np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    g_ours = nnx.grad(lambda m: (m(x) ** 2).sum())(ours)
    g_theirs = nnx.grad(lambda m: (m(x) ** 2).sum())(theirs)
    np.testing.assert_allclose(g_ours.kernel[...], g_theirs.kernel[...], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(g_ours.bias[...], g_theirs.bias[...], rtol=1e-4, atol=1e-3)


def test_non_square_kernel_strides_and_image():
    """Rows and columns with different kernel sizes, strides and lengths: a swapped axis would show."""
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=(2, 5, 6, 3)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(3, 4, 3, 8)), jnp.float32)
    strides = (1, 2)
    pads = (transpose_pads(3, 1, "SAME"), transpose_pads(4, 2, "SAME"))

    def reference(x, kernel):
        return lax.conv_transpose(x, kernel, strides, "SAME", dimension_numbers=NHWC)

    def ours(x, kernel):
        return conv_transpose(x, kernel, strides, pads)

    assert ours(x, kernel).shape == reference(x, kernel).shape == (2, 5, 12, 8)
    np.testing.assert_allclose(ours(x, kernel), reference(x, kernel), rtol=1e-5, atol=1e-5)
    weights = jnp.asarray(rng.normal(size=(2, 5, 12, 8)), jnp.float32)
    grads = [jax.grad(lambda a, b, f=f: (f(a, b) * weights).sum(), argnums=(0, 1))(x, kernel)
             for f in (reference, ours)]
    for expected, got in zip(grads[0], grads[1], strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
