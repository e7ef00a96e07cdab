"""Pieces the objectives share (zoo/objectives/common.py)."""

import jax
import jax.numpy as jnp
import numpy as np

from zoo.objectives.common import top1_correct


def test_top1_correct_equals_argmax_without_ties() -> None:
    logits = jax.random.normal(jax.random.key(0), (4, 50, 97))
    targets = jax.random.randint(jax.random.key(1), (4, 50), 0, 97)
    targets = targets.at[:, ::3].set(logits.argmax(-1)[:, ::3])  # a third of them right, the rest mostly wrong
    got = np.asarray(top1_correct(logits, targets))
    np.testing.assert_array_equal(got, np.asarray(logits.argmax(-1) == targets))
    assert got.shape == (4, 50) and 0.3 < got.mean() < 0.4


def test_top1_correct_breaks_ties_like_argmax():
    """bfloat16 logits tie often; the first of the tied maxima is the prediction, as with argmax."""
    logits = jax.random.normal(jax.random.key(2), (64, 40, 16)).astype(jnp.bfloat16).astype(jnp.float32)
    logits = jnp.round(logits * 2) / 2  # many exact ties
    for t in range(16):
        targets = jnp.full((64, 40), t, jnp.int32)
        np.testing.assert_array_equal(np.asarray(top1_correct(logits, targets)),
                                      np.asarray(logits.argmax(-1) == targets))
    assert float((logits == logits.max(-1, keepdims=True)).sum(-1).max()) > 1  # the case really has ties
