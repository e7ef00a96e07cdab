"""Pieces the objectives share (zoo/objectives/common.py)."""

import jax
import numpy as np

from zoo.objectives.common import top1_correct


def test_top1_correct_equals_argmax_without_ties() -> None:
    logits = jax.random.normal(jax.random.key(0), (4, 50, 97))
    targets = jax.random.randint(jax.random.key(1), (4, 50), 0, 97)
    targets = targets.at[:, ::3].set(logits.argmax(-1)[:, ::3])  # a third of them right, the rest mostly wrong
    got = np.asarray(top1_correct(logits, targets))
    np.testing.assert_array_equal(got, np.asarray(logits.argmax(-1) == targets))
    assert got.shape == (4, 50) and 0.3 < got.mean() < 0.4
