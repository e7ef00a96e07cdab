"""zoo.critics.selection: scores combine by rank, and the kept set is good AND varied."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.critics.selection import quality, rank_scores, select


def test_ranks_are_scale_free_orient_by_direction_and_share_ties():
    np.testing.assert_allclose(rank_scores(np.array([3.0, 1.0, 2.0])), [1.0, 0.0, 0.5])
    np.testing.assert_allclose(rank_scores(np.array([3.0, 1.0, 2.0]) * 1000), [1.0, 0.0, 0.5])
    np.testing.assert_allclose(rank_scores(np.array([3.0, 1.0, 2.0]), higher_is_better=False), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(rank_scores(np.array([5.0, 5.0, 1.0, 9.0])), [0.5, 0.5, 0.0, 1.0])
    np.testing.assert_allclose(rank_scores(np.array([np.nan, 1.0, 2.0])), [0.0, 0.5, 1.0])  # no score: worst
    np.testing.assert_allclose(rank_scores(np.array([7.0])), [1.0])


def test_quality_is_the_weighted_mean_of_ranks():
    scores = {"nll": np.array([2.0, 3.0, 4.0]), "form": np.array([0.0, 1.0, 0.5])}
    direction = {"nll": False, "form": True}
    # nll ranks [1, 0.5, 0], form ranks [0, 1, 0.5]
    np.testing.assert_allclose(quality(scores, direction), [0.5, 0.75, 0.25])
    np.testing.assert_allclose(quality(scores, direction, {"nll": 3.0}), [0.75, 0.625, 0.125])
    with pytest.raises(ValueError):
        quality({}, {})


def test_selection_skips_near_copies_of_the_best_one():
    # Candidates 0, 1, 2 are near-copies and the three best; 3 and 4 are different and a little worse.
    q = np.array([1.0, 0.95, 0.9, 0.8, 0.7])
    features = np.array([[1.0, 0.0], [1.0, 0.01], [1.0, 0.02], [0.0, 1.0], [-1.0, 0.0]])
    assert select(q, features, 3, diversity=0.0) == [0, 1, 2]  # quality alone keeps the three copies
    assert select(q, features, 3) == [0, 3, 4]
    assert select(q, features, 5) == [0, 3, 4, 1, 2]  # when nothing else is left, copies come last
    with pytest.raises(ValueError, match="cannot keep"):
        select(q, features, 6)
