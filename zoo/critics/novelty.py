"""How much of a sample was copied from the training data: n-gram overlap and the longest copied span.

The training documents become one array of unit ids (words or characters; -1 between documents, so that no
span crosses two of them) and a sorted array of the hashes of its n-grams. A sample's n-gram is then found
by binary search, and each occurrence is extended unit by unit to the longest span the sample shares with
ONE training document. That is exact (every match is checked unit by unit, so a hash collision costs time,
never a false match) and needs no suffix structure: the Tang corpus (2.6M characters) indexes in ~1 s.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_MAX_OCCURRENCES = 64  # occurrences of one n-gram extended: common n-grams are capped (the span is a lower bound)
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def _hashes(units: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 hash of each n-gram starting at 0 .. len - n, whether it lies inside one document)."""
    windows = np.lib.stride_tricks.sliding_window_view(units, n)
    valid = (windows >= 0).all(axis=1)
    h = np.zeros(len(windows), np.uint64)
    with np.errstate(over="ignore"):
        for column in range(n):
            h = (h + windows[:, column].astype(np.uint64) + np.uint64(1)) * _MULTIPLIER
    return h, valid


class NgramIndex:
    """The n-grams of `documents` (each a sequence of units: words, characters)."""

    def __init__(self, documents: Sequence[Sequence[str]], n: int):
        if n < 1:
            raise ValueError("n must be >= 1")
        self.n = n
        self.vocab: dict[str, int] = {}
        ids: list[int] = []
        for doc in documents:
            ids.extend(self.vocab.setdefault(u, len(self.vocab)) for u in doc)
            ids.append(-1)
        self.units = np.asarray(ids, np.int64)
        hashes, valid = _hashes(self.units, n) if len(self.units) >= n else (np.zeros(0, np.uint64), np.zeros(0, bool))
        starts = np.flatnonzero(valid)
        order = np.argsort(hashes[starts], kind="stable")
        self.sorted_hashes = hashes[starts][order]
        self.starts = starts[order]

    def _ids(self, units: Sequence[str]) -> np.ndarray:
        return np.asarray([self.vocab.get(u, -2) for u in units], np.int64)  # -2: never in the corpus

    def overlap(self, units: Sequence[str]) -> tuple[float, int]:
        """(share of the sample's n-grams found in the corpus, its longest span found verbatim in one
        training document, in units). A sample shorter than n has no n-grams: (nan, 0)."""
        ids = self._ids(units)
        if len(ids) < self.n:
            return float("nan"), 0
        hashes, valid = _hashes(np.where(ids >= 0, ids, -1), self.n)
        seen, longest = 0, 0
        for i, (h, ok) in enumerate(zip(hashes, valid, strict=True)):
            if not ok:
                continue
            lo = np.searchsorted(self.sorted_hashes, h, side="left")
            hi = np.searchsorted(self.sorted_hashes, h, side="right")
            found = False
            for start in self.starts[lo:min(hi, lo + _MAX_OCCURRENCES)]:
                k = 0
                while i + k < len(ids) and self.units[start + k] == ids[i + k]:
                    k += 1
                if k >= self.n:
                    found = True
                    longest = max(longest, k)
            seen += found
        return seen / len(hashes), longest
