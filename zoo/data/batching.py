"""What every stateless batch source shares: which examples a step's global batch holds, and which of its
rows a process builds. Both are pure functions of (seed, step), so a resumed run sees the same data."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

EVAL_SEED = 20240611  # the order of every eval split: the same for every run and training seed


def process_rows(global_batch: int, process_index: int, process_count: int) -> slice:
    """Rows [p*B/n, (p+1)*B/n) of a global batch of B rows: process p's share when n processes feed it.

    Raises ValueError when B does not split evenly (every process must build the same number of rows)."""
    if global_batch % process_count:
        raise ValueError(f"global batch {global_batch} does not split over {process_count} processes")
    local = global_batch // process_count
    return slice(process_index * local, (process_index + 1) * local)


class EpochOrder:
    """The example indices of each step's global batch: epoch after epoch through all `n` examples, each
    epoch in a fresh permutation drawn from (seed, stream, epoch), so every example is seen once per epoch
    and a batch that straddles two epochs takes the end of one and the start of the next. `stream` keeps
    two sources with the same seed from sharing an order. The last few permutations are memoised."""

    def __init__(self, n: int, seed: int, stream: int):
        self.n, self.seed, self.stream = n, seed, stream
        self._perms: dict[int, np.ndarray] = {}

    def indices(self, step: int, global_batch: int) -> np.ndarray:
        positions = step * global_batch + np.arange(global_batch, dtype=np.int64)
        out = np.empty(global_batch, np.int64)
        for epoch in np.unique(positions // self.n).tolist():
            if epoch not in self._perms:
                if len(self._perms) > 4:
                    self._perms.clear()
                self._perms[epoch] = np.random.default_rng([self.seed, self.stream, epoch]).permutation(self.n)
            sel = positions // self.n == epoch
            out[sel] = self._perms[epoch][positions[sel] % self.n]
        return out


class ArrayBatches:
    """Batches of equally long arrays (`columns`, row i of each = example i), a pure function of
    (seed, step): epoch after epoch through an `EpochOrder`. Eval batches walk the rows in one fixed
    permutation (by EVAL_SEED, the same for every run, so a few batches already sample the whole split,
    not its first rows) and keep their shape: rows past the end repeat the first ones with `mask` 0."""

    def __init__(self, columns: dict[str, np.ndarray], global_batch: int, seed: int, stream: int = 1):
        sizes = {len(v) for v in columns.values()}
        if len(sizes) != 1 or not sizes.pop():
            raise ValueError(f"columns must be non-empty and equally long, got {[len(v) for v in columns.values()]}")
        self.columns, self.global_batch = columns, global_batch
        self.n = len(next(iter(columns.values())))
        self._order = EpochOrder(self.n, seed, stream)
        self._eval_order = np.random.default_rng(EVAL_SEED).permutation(self.n)

    def batch(self, step: int, process_index: int = 0, process_count: int = 1) -> dict[str, np.ndarray]:
        idx = self._order.indices(step, self.global_batch)[process_rows(self.global_batch, process_index,
                                                                       process_count)]
        return {k: v[idx] for k, v in self.columns.items()}

    def eval_batches(self, max_batches: int, process_index: int = 0,
                     process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
        rows = process_rows(self.global_batch, process_index, process_count)
        for b in range(max(1, min(max_batches, -(-self.n // self.global_batch)))):
            pos = np.arange(b * self.global_batch, (b + 1) * self.global_batch)[rows]
            idx = self._eval_order[pos % self.n]
            yield {**{k: v[idx] for k, v in self.columns.items()}, "mask": (pos < self.n).astype(np.float32)}
