"""BLEU and Self-BLEU as the text-GAN literature computes them, vectorised with numpy.

Texygen (Zhu et al. 2018), which SeqGAN/LeakGAN/RelGAN-era papers report with, scores every generated
text against ALL reference texts with NLTK's sentence_bleu (uniform weights over orders 1..n, smoothing
"method1": a zero n-gram match count becomes epsilon = 0.1) and averages over the generated texts:

    p_k  = sum_g min(count_hyp(g), max_r count_r(g)) / sum_g count_hyp(g)   over the hypothesis' k-grams g
    BLEU-n = BP * exp(sum_{k=1..n} log(p_k) / n),   BP = 1 if c > r else exp(1 - r / c)

with c the hypothesis length and r the reference length closest to c (the shorter one on a tie).
Self-BLEU (diversity; lower = more diverse) scores each generated text against all the OTHER generated
texts. As in NLTK, a hypothesis with no unigram in common scores 0, and one shorter than k (no k-grams)
has p_k = epsilon / 1.

NLTK loops in Python over every (hypothesis, reference) pair: minutes for 1,000 x 1,000 texts. Here each
n-gram becomes one int64 (ids packed base V), a reference set becomes a sorted table of (n-gram, max
count), and the clipped counts of all hypotheses are one `searchsorted`; Self-BLEU's leave-one-out maximum
needs each n-gram's two largest counts and how many texts hold the largest. tests/test_bleu.py checks the
numbers against hand-computed cases.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EPSILON = 0.1  # NLTK SmoothingFunction().method1


def _ids(texts: Sequence[Sequence[str]], vocab: dict[str, int]) -> list[np.ndarray]:
    out = []
    for text in texts:
        for unit in text:
            vocab.setdefault(unit, len(vocab))
        out.append(np.fromiter((vocab[u] for u in text), np.int64, len(text)))
    return out


def _ngrams(seqs: list[np.ndarray], n: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """(text index, packed n-gram) of every n-gram occurrence in `seqs`."""
    owners, grams = [], []
    for i, s in enumerate(seqs):
        if len(s) >= n:
            packed = np.zeros(len(s) - n + 1, np.int64)
            for k in range(n):
                packed = packed * base + s[k:len(s) - n + 1 + k]
            owners.append(np.full(len(packed), i, np.int64))
            grams.append(packed)
    if not grams:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(owners), np.concatenate(grams)


def _counts(owners: np.ndarray, grams: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (text, n-gram) pairs and their counts."""
    if len(grams) == 0:
        return owners, grams, np.zeros(0, np.int64)
    pairs, counts = np.unique(np.stack([owners, grams]), axis=1, return_counts=True)
    return pairs[0], pairs[1], counts


def _max_table(owners: np.ndarray, grams: np.ndarray, counts: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct n-gram (sorted): the largest count in any text, how many texts have that count, and
    the largest count among the rest (the second largest, or the largest again on a tie; 0 if none)."""
    order = np.lexsort((-counts, grams))
    g, c = grams[order], counts[order]
    first = np.r_[True, g[1:] != g[:-1]]
    starts = np.flatnonzero(first)
    table = g[starts]
    top = c[starts]
    sizes = np.diff(np.r_[starts, len(g)])
    second = np.where(sizes > 1, c[np.minimum(starts + 1, len(c) - 1)], 0)
    n_top = np.add.reduceat((c == np.repeat(top, sizes)).astype(np.int64), starts) if len(g) else top
    return table, top, n_top, second


def _clipped(table: np.ndarray, top: np.ndarray, grams: np.ndarray) -> np.ndarray:
    """The largest reference count of each of `grams` (0 where no reference has it)."""
    if len(table) == 0:
        return np.zeros(len(grams), np.int64)
    pos = np.clip(np.searchsorted(table, grams), 0, len(table) - 1)
    return np.where(table[pos] == grams, top[pos], 0)


def _score(precisions_num: np.ndarray, precisions_den: np.ndarray, hyp_len: np.ndarray, ref_len: np.ndarray,
           max_n: int) -> np.ndarray:
    """Per hypothesis BLEU-max_n from its clipped / total n-gram counts [H, max_n] and lengths."""
    num = precisions_num[:, :max_n].astype(np.float64)
    den = precisions_den[:, :max_n].astype(np.float64)
    p = np.where(num > 0, num, EPSILON) / np.maximum(den, 1)
    log_p = np.log(p).mean(axis=1)
    c = hyp_len.astype(np.float64)
    bp = np.where(c > ref_len, 1.0, np.exp(1.0 - ref_len / np.maximum(c, 1)))
    return np.where(num[:, 0] > 0, bp * np.exp(log_p), 0.0)  # no unigram in common: 0, as NLTK


def _closest(lengths: np.ndarray, ref_lengths: np.ndarray) -> np.ndarray:
    """For each length, the reference length closest to it (the shorter on a tie)."""
    refs = np.unique(ref_lengths)
    pos = np.clip(np.searchsorted(refs, lengths), 0, len(refs) - 1)
    below = refs[np.maximum(pos - 1, 0)]
    above = refs[pos]
    return np.where(np.abs(lengths - below) <= np.abs(above - lengths), below, above).astype(np.float64)


def bleu(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]],
         orders: Sequence[int] = (2, 3, 4)) -> dict[int, float]:
    """{n: mean BLEU-n of each hypothesis against all references} for n in `orders`. Texts are sequences
    of units (characters, words)."""
    return {n: float(v.mean()) for n, v in _per_text(hypotheses, references, orders, leave_one_out=False).items()}


def self_bleu(texts: Sequence[Sequence[str]], orders: Sequence[int] = (2, 3, 4)) -> dict[int, float]:
    """{n: mean BLEU-n of each text against all the others} (Zhu et al.'s Self-BLEU)."""
    return {n: float(v.mean()) for n, v in _per_text(texts, texts, orders, leave_one_out=True).items()}


def sentence_bleu(hypothesis: Sequence[str], references: Sequence[Sequence[str]], n: int) -> float:
    """BLEU-n of one hypothesis against references (NLTK's sentence_bleu with method1)."""
    return float(_per_text([hypothesis], references, (n,), leave_one_out=False)[n][0])


def _per_text(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]], orders: Sequence[int],
              leave_one_out: bool) -> dict[int, np.ndarray]:
    if not hypotheses or not references or (leave_one_out and len(hypotheses) < 2):
        raise ValueError("need hypotheses and references (Self-BLEU: at least two texts)")
    max_n = max(orders)
    vocab: dict[str, int] = {}
    hyp = _ids(hypotheses, vocab)
    ref = hyp if leave_one_out else _ids(references, vocab)
    base = max(len(vocab), 2)
    if base ** max_n >= 2 ** 62:
        raise ValueError(f"{len(vocab)} distinct units are too many to pack {max_n}-grams into int64")
    h_len = np.array([len(s) for s in hyp], np.int64)
    r_len = np.array([len(s) for s in ref], np.int64)
    num = np.zeros((len(hyp), max_n), np.int64)
    den = np.zeros((len(hyp), max_n), np.int64)
    for k in range(1, max_n + 1):
        owners, grams, counts = _counts(*_ngrams(hyp, k, base))
        if leave_one_out:
            table, top, n_top, second = _max_table(owners, grams, counts)
            pos = np.searchsorted(table, grams)
            unique_top = (counts == top[pos]) & (n_top[pos] == 1)
            best_other = np.where(unique_top, second[pos], top[pos])
        else:
            table, top, _, _ = _max_table(*_counts(*_ngrams(ref, k, base)))
            best_other = _clipped(table, top, grams)
        np.add.at(num[:, k - 1], owners, np.minimum(counts, best_other))
        np.add.at(den[:, k - 1], owners, counts)
    if leave_one_out:  # each text's closest length among the others
        ref_len = np.array([_closest(h_len[i:i + 1], np.delete(r_len, i))[0] for i in range(len(hyp))]) \
            if len(np.unique(r_len)) > 1 else np.full(len(hyp), float(r_len[0]))
    else:
        ref_len = _closest(h_len, r_len)
    return {n: _score(num, den, h_len, ref_len, n) for n in orders}
