"""Batches of encoded tunes for the `music` model: a pure function of (seed, step), split across processes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from zoo.data.batching import EpochOrder, process_rows
from zoo.melody.encoding import BAR, EOS, HEADER, transpose_tokens


class MelodyBatches:
    """Batches of encoded tunes, a pure function of (seed, step) like `zoo.data.lm.TokenWindows`.

    Tunes are drawn epoch by epoch (a fresh permutation of all tunes per epoch, from `default_rng([seed,
    0, epoch])`), so each is seen once per epoch; the random transposition of each row (uniform in
    `transpose_range`) and the crop of an over-long tune come from `default_rng([seed, step])`. A batch:

    - `tokens` int32[B, max_len + 1]: a tune from BOS, EOS-padded (inputs `[:, :-1]`, targets `[:, 1:]`).
      A tune longer than that keeps its header (BOS METER KEY) and continues from a random BAR token
      (one that fills the row, or the first one after those, whose row holds the tune's end).
    - `mask` float32[B, max_len + 1]: 1 on the tune's real tokens (its EOS included), 0 on padding.
    - `caption_id` int32[B]: `captions_index[i]` for a 1-D index, or `captions_index[i, shift % 12]` for
      an [n, 12] index (see `zoo.data.music.caption_table`), so that the caption names the key of the transposed tune.
    - `transpose` int32[B]: the shift applied.
    Process p of n keeps rows [p*B/n, (p+1)*B/n) of the global batch.
    """

    def __init__(self, tokens_list: Sequence[np.ndarray], captions_index: np.ndarray, max_len: int,
                 global_batch: int, seed: int, transpose_range: tuple[int, int] = (-5, 6)):
        if not tokens_list:
            raise ValueError("no tunes to batch")
        self.tokens = [np.asarray(t, np.int32) for t in tokens_list]
        self.captions_index = np.asarray(captions_index, np.int32)
        if len(self.captions_index) != len(self.tokens) or self.captions_index.ndim not in (1, 2):
            raise ValueError(f"captions_index must be [{len(self.tokens)}] or [{len(self.tokens)}, 12], "
                             f"got {self.captions_index.shape}")
        if max_len < HEADER + 2:
            raise ValueError(f"max_len {max_len} is too short for a header and a note")
        self.max_len, self.global_batch, self.seed = max_len, global_batch, seed
        self.transpose_range = transpose_range
        self._bars = [np.flatnonzero(t == BAR) for t in self.tokens]
        self._order = EpochOrder(len(self.tokens), seed, stream=0)

    def _tune_indices(self, step: int) -> np.ndarray:
        return self._order.indices(step, self.global_batch)

    def _row(self, i: int, shift: int, crop: float | None) -> tuple[np.ndarray, np.ndarray]:
        width = self.max_len + 1
        seq = transpose_tokens(self.tokens[i], shift) if shift else self.tokens[i]  # whole tune: same octave fold
        if len(seq) > width:
            # start at a bar line that leaves a full window, or at the first one past those (to see the end)
            bars = self._bars[i]
            bars = bars[:np.searchsorted(bars, len(seq) - (width - HEADER), side="right") + 1]
            start = int(bars[int(crop * len(bars))]) if crop is not None and len(bars) else HEADER
            seq = np.concatenate([seq[:HEADER], seq[start:start + width - HEADER]])
        row = np.full(width, EOS, np.int32)
        row[:len(seq)] = seq
        mask = np.zeros(width, np.float32)
        mask[:len(seq)] = 1.0
        return row, mask

    def _caption(self, i: int, shift: int) -> int:
        if self.captions_index.ndim == 2:
            return int(self.captions_index[i, shift % 12])
        return int(self.captions_index[i])

    def batch(self, step: int, process_index: int = 0, process_count: int = 1) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, step])
        lo, hi = self.transpose_range
        shifts = rng.integers(lo, hi + 1, size=self.global_batch)
        crops = rng.random(self.global_batch)
        rows = process_rows(self.global_batch, process_index, process_count)
        idx = self._tune_indices(step)[rows]
        built = [self._row(int(i), int(s), float(c)) for i, s, c in zip(idx, shifts[rows], crops[rows], strict=True)]
        return {
            "tokens": np.stack([r for r, _ in built]),
            "mask": np.stack([m for _, m in built]),
            "caption_id": np.asarray([self._caption(int(i), int(s)) for i, s in zip(idx, shifts[rows],
                                                                                     strict=True)], np.int32),
            "transpose": shifts[rows].astype(np.int32),
        }

    def eval_batches(self, max_batches: int, process_index: int = 0,
                     process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
        """Every tune in order (up to max_batches batches), untransposed, from its start: the same every
        time. Rows past the last tune repeat tune 0 with a zero mask, so batches keep their shape."""
        n = len(self.tokens)
        n_batches = max(1, min(max_batches, -(-n // self.global_batch)))
        rows = process_rows(self.global_batch, process_index, process_count)
        for b in range(n_batches):
            idx = np.arange(b * self.global_batch, (b + 1) * self.global_batch)[rows]
            built = [self._row(int(i) if i < n else 0, 0, None) for i in idx]
            mask = np.stack([m for _, m in built]) * (idx < n)[:, None]
            yield {
                "tokens": np.stack([r for r, _ in built]),
                "mask": mask.astype(np.float32),
                "caption_id": np.asarray([self._caption(int(i) if i < n else 0, 0) for i in idx], np.int32),
                "transpose": np.zeros(len(idx), np.int32),
            }
