"""zoo.layers.dropout: the 16-bit-uniform dropout mask is Bernoulli(rate), independent, and unbiased."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from zoo.layers.dropout import Dropout, keep_mask

SHAPE = (16, 128, 256)  # 524,288 elements: the drop rate's standard error is 4e-4 at rate 0.1


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_drop_rate_and_keep_probability(rate: float) -> None:
    mask, keep_prob = keep_mask(jax.random.key(0), SHAPE, rate)
    assert mask.shape == SHAPE and mask.dtype == jnp.bool_
    assert keep_prob == pytest.approx(1 - rate, abs=2 ** -17)
    n = mask.size
    dropped = 1 - float(np.asarray(mask).mean())
    assert abs(dropped - (1 - keep_prob)) < 5 * np.sqrt(rate * (1 - rate) / n)


def test_bits_are_independent_across_fields_positions_and_keys() -> None:
    """The four 16-bit fields of one threefry output land a quarter of the last axis apart: no correlation
    between them, between neighbours, between rows, or between two keys' masks. At rate 0.3 the threshold
    (19661) depends on more than the top bit of each field."""
    m = np.asarray(keep_mask(jax.random.key(0), SHAPE, 0.3)[0], np.float64)
    q = SHAPE[-1] // 4
    limit = 5 / np.sqrt(m[..., :q].size)  # 5 standard errors of a correlation of independent bits
    pairs = [(m[..., :q], m[..., q:2 * q]), (m[..., :q], m[..., 2 * q:3 * q]), (m[..., :q], m[..., 3 * q:]),
             (m[..., :-1], m[..., 1:]), (m[:, :-1], m[:, 1:]), (m[:-1], m[1:])]
    for a, b in pairs:
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < limit
    other = np.asarray(keep_mask(jax.random.key(1), SHAPE, 0.3)[0], np.float64)
    assert abs(np.corrcoef(m.ravel(), other.ravel())[0, 1]) < 5 / np.sqrt(m.size)
    # Same key, same mask: the stream is a function of the key alone; a raw uint32[2] key gives the same.
    np.testing.assert_array_equal(m, np.asarray(keep_mask(jax.random.key(0), SHAPE, 0.3)[0]))
    raw = jax.random.key_data(jax.random.key(0))
    np.testing.assert_array_equal(m, np.asarray(jax.jit(lambda k: keep_mask(k, SHAPE, 0.3)[0])(raw)))


def test_layer_is_inverted_dropout_and_unbiased() -> None:
    layer = Dropout(0.1)
    x = jax.random.normal(jax.random.key(2), SHAPE)
    y = np.asarray(layer(x, deterministic=False, rngs=nnx.Rngs(dropout=3)))
    mask, keep_prob = keep_mask(nnx.Rngs(dropout=3).dropout(), SHAPE, 0.1)
    mask = np.asarray(mask)
    np.testing.assert_allclose(y[mask], np.asarray(x)[mask] / keep_prob, rtol=1e-6)
    assert np.all(y[~mask] == 0)
    # E[y] = x: the mean of y / x over the elements is 1 within 5 standard errors.
    ratio = y / np.asarray(x)
    assert abs(ratio.mean() - 1) < 5 * ratio.std() / np.sqrt(ratio.size)
    np.testing.assert_array_equal(layer(x, deterministic=True), x)
    np.testing.assert_array_equal(Dropout(0.0)(x, deterministic=False, rngs=nnx.Rngs(dropout=3)), x)
    assert not np.any(np.asarray(Dropout(1.0)(x, deterministic=False, rngs=nnx.Rngs(dropout=3))))


def test_keys_streams_and_bfloat16() -> None:
    """rngs may be an Rngs, an RngStream or a key, all giving the same mask for the same key; in bfloat16
    the kept values are x / keep_prob rounded once (the scale is applied in float32)."""
    layer = Dropout(0.3)
    x = jax.random.normal(jax.random.key(4), (32, 64))
    by_rngs = layer(x, deterministic=False, rngs=nnx.Rngs(dropout=7))
    by_stream = layer(x, deterministic=False, rngs=nnx.Rngs(dropout=7).dropout)
    by_key = layer(x, deterministic=False, rngs=nnx.Rngs(dropout=7).dropout())
    np.testing.assert_array_equal(by_rngs, by_stream)
    np.testing.assert_array_equal(by_rngs, by_key)
    xb = x.astype(jnp.bfloat16)
    yb = jax.jit(lambda x, k: layer(x, deterministic=False, rngs=k))(xb, nnx.Rngs(dropout=7).dropout())
    mask, keep_prob = keep_mask(nnx.Rngs(dropout=7).dropout(), x.shape, 0.3)
    expected = np.where(np.asarray(mask), (np.asarray(xb, np.float32) / keep_prob).astype(jnp.bfloat16), 0)
    assert yb.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(yb, np.float32), expected.astype(np.float32))


def test_gradient_flows_through_kept_elements_only() -> None:
    layer = Dropout(0.3)
    x = jnp.ones((8, 64))
    g = jax.grad(lambda x: jnp.sum(layer(x, deterministic=False, rngs=nnx.Rngs(dropout=5))))(x)
    mask, keep_prob = keep_mask(nnx.Rngs(dropout=5).dropout(), x.shape, 0.3)
    np.testing.assert_allclose(np.asarray(g), np.where(np.asarray(mask), 1 / keep_prob, 0.0), rtol=1e-6)


def test_fallback_for_odd_last_axis_and_other_prng() -> None:
    """A last axis that is not a multiple of 4, or an rbg key, takes jax.random.bernoulli at the exact rate;
    under vmap each key draws its own mask."""
    mask, keep_prob = keep_mask(jax.random.key(0), (4096, 103), 0.2)
    assert keep_prob == 0.8 and mask.shape == (4096, 103)
    assert abs(1 - float(np.asarray(mask).mean()) - 0.2) < 5 * np.sqrt(0.16 / mask.size)
    rbg = jax.random.key(0, impl="rbg")
    mask, keep_prob = keep_mask(rbg, (64, 256), 0.2)
    assert keep_prob == 0.8 and mask.shape == (64, 256)
    keys = jax.random.split(jax.random.key(0), 64)
    mask, keep_prob = jax.vmap(lambda k: keep_mask(k, (256,), 0.2)[0])(keys), 0.8
    assert mask.shape == (64, 256) and abs(1 - float(np.asarray(mask).mean()) - 0.2) < 0.02


def test_bad_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="dropout rate"):
        Dropout(1.5)
