"""zoo.metrics.bleu against BLEU values computed by hand (NLTK's sentence_bleu with smoothing method1)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zoo.metrics.bleu import bleu, self_bleu, sentence_bleu


def t(s: str) -> list[str]:
    return s.split()


def test_identical_text_scores_one():
    assert sentence_bleu(t("a b c d"), [t("a b c d")], 4) == pytest.approx(1.0)
    assert bleu([t("a b c d")], [t("x y"), t("a b c d")]) == pytest.approx({2: 1.0, 3: 1.0, 4: 1.0})


def test_partial_matches_and_smoothing():
    # unigrams 3/4 (c missing), bigrams 1/3 (only "a b"), trigrams 0/2 -> epsilon 0.1/2; lengths equal: BP 1.
    hyp, refs = t("a b c d"), [t("a b x d")]
    assert sentence_bleu(hyp, refs, 2) == pytest.approx(math.sqrt(0.75 / 3))
    assert sentence_bleu(hyp, refs, 3) == pytest.approx((0.75 / 3 * 0.05) ** (1 / 3))


def test_counts_are_clipped_by_the_reference():
    # "a" x4 against a reference with two: unigram 2/4; bigram "a a" x3 unmatched: 0.1/3.
    assert sentence_bleu(t("a a a a"), [t("a b a c")], 2) == pytest.approx(math.sqrt(0.5 * 0.1 / 3))


def test_clipping_takes_the_largest_count_of_any_reference():
    # unigrams: a x2 (the second reference has two) + b unmatched = 2/3; bigrams "a a" matched, "a b" not = 1/2.
    assert sentence_bleu(t("a a b"), [t("a c"), t("a a d")], 2) == pytest.approx(math.sqrt(2 / 3 * 1 / 2))


def test_brevity_penalty_uses_the_closest_reference_length():
    assert sentence_bleu(t("a b"), [t("a b c d")], 2) == pytest.approx(math.exp(1 - 4 / 2))
    # lengths 3 and 5 are equally close to 4: the shorter wins, so no penalty for a 4-token hypothesis.
    assert sentence_bleu(t("a b c d"), [t("a b c"), t("a b c d e")], 2) == pytest.approx(1.0)


def test_no_unigram_in_common_scores_zero():
    assert sentence_bleu(t("x y z"), [t("a b c")], 2) == 0.0


def test_mean_over_hypotheses():
    hyps = [t("a b c d"), t("x y z w")]
    assert bleu(hyps, [t("a b c d")], (2,))[2] == pytest.approx(0.5)


def test_self_bleu_leaves_each_text_out():
    # Two copies score 1 against each other; the odd one out shares nothing with them.
    assert self_bleu([t("a b"), t("a b"), t("c d")], (2,))[2] == pytest.approx(2 / 3)
    # Nothing in common with the others: 0, even though each text matches itself perfectly.
    assert self_bleu([t("a b c"), t("x y z")], (2, 3)) == {2: 0.0, 3: 0.0}


def test_self_bleu_ties_and_unique_maxima():
    # "a" x2 in texts 0 and 1: each sees a count of 2 in the other (a tie). Text 2 ("a b") sees "a" x2 too.
    texts = [t("a a"), t("a a"), t("a b")]
    expected = [1.0, 1.0, sentence_bleu(t("a b"), [t("a a"), t("a a")], 2)]
    assert self_bleu(texts, (2,))[2] == pytest.approx(np.mean(expected))
    # The only text with "q q" can clip its count against nobody else's "q q".
    texts = [t("q q r"), t("q r s")]
    assert self_bleu(texts, (2,))[2] == pytest.approx(
        np.mean([sentence_bleu(texts[0], [texts[1]], 2), sentence_bleu(texts[1], [texts[0]], 2)]))


def test_chinese_characters_as_units():
    a, b = list("白日依山盡黃河入海流"), list("白日依山盡黃河入海深")
    assert sentence_bleu(a, [b], 2) == pytest.approx(math.sqrt(9 / 10 * 8 / 9))


def test_rejects_empty_inputs():
    with pytest.raises(ValueError):
        bleu([], [t("a")])
    with pytest.raises(ValueError):
        self_bleu([t("a")])
