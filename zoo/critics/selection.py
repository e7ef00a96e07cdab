"""Keep the best of many candidates without keeping near-copies of the best one.

Critics score each candidate on named scales that do not compare with each other (nats per token, a share of
lines, a cosine). So each score is first turned into its rank among the candidates, scaled to [0, 1] (1 =
best; ties share their mean rank), and a candidate's quality is the weighted mean of those ranks: a critic
that is twice as spread out does not count twice as much, and one outlier cannot dominate.

The kept set is then grown greedily by maximal marginal relevance (Carbonell & Goldstein, 1998): the next
candidate kept is the one with the highest

    quality - diversity * max(0, its largest cosine similarity to a candidate already kept)

over feature vectors the modality supplies (a text embedding, a melody's interval histogram, an image's
pixels). diversity = 0 keeps the top `keep` by quality alone; the default 0.5 lets a candidate whose
nearest kept neighbour is a near-copy (similarity ~1) lose to one that is half a rank range worse.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

DIVERSITY = 0.5


def rank_scores(values: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """float [N] in [0, 1]: each value's rank among `values` (1 = best, 0 = worst; ties share their mean rank;
    NaN, a score a critic could not give, ranks worst). A single candidate gets 1."""
    values = np.asarray(values, np.float64)
    n = values.size
    if n == 1:
        return np.ones(1)
    keyed = np.where(np.isnan(values), -np.inf, values if higher_is_better else -values)
    order = np.argsort(keyed, kind="stable")
    ranks = np.empty(n)
    ranks[order] = np.arange(n, dtype=np.float64)
    for value in np.unique(keyed):  # ties share their mean rank
        tied = keyed == value
        ranks[tied] = ranks[tied].mean()
    return ranks / (n - 1)


def quality(scores: Mapping[str, np.ndarray], higher_is_better: Mapping[str, bool],
            weights: Mapping[str, float] | None = None) -> np.ndarray:
    """float [N]: the weighted mean of each score's rank (`rank_scores`); weights default to 1 each."""
    if not scores:
        raise ValueError("no scores to combine")
    weights = weights or {}
    total = sum(weights.get(name, 1.0) for name in scores)
    if total <= 0:
        raise ValueError("the score weights must sum to a positive number")
    return sum(weights.get(name, 1.0) * rank_scores(values, higher_is_better[name])
               for name, values in scores.items()) / total


def select(quality_values: np.ndarray, features: np.ndarray, keep: int, diversity: float = DIVERSITY
           ) -> list[int]:
    """Indices of the `keep` candidates chosen by maximal marginal relevance, in the order chosen (the first
    is the best by quality). features: float [N, F], compared by cosine similarity."""
    quality_values = np.asarray(quality_values, np.float64)
    n = quality_values.size
    if not 1 <= keep <= n:
        raise ValueError(f"cannot keep {keep} of {n} candidates")
    unit = np.asarray(features, np.float64).reshape(n, -1)
    unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    chosen: list[int] = []
    nearest = np.zeros(n)  # each candidate's largest similarity to a kept one (an opposite one is no bonus)
    for _ in range(keep):
        gain = quality_values - diversity * nearest
        gain[chosen] = -np.inf
        best = int(np.argmax(gain))
        chosen.append(best)
        nearest = np.maximum(nearest, similarity[best])
    return chosen
