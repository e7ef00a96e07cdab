"""What every stateless batch source shares: which examples a step's global batch holds, and which of its
rows a process builds. Both are pure functions of (seed, step), so a resumed run sees the same data."""

from __future__ import annotations

import numpy as np


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
