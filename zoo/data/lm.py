"""Batches for language modelling: random windows of a token stream, a pure function of (seed, step).

Statelessness is what makes resume exact and multi-host feeding trivial: the global batch of step s is
drawn from `default_rng([seed, s])`, and process p keeps rows [p*B/n, (p+1)*B/n). The data position saved in
a checkpoint is simply the step.

The stream may be any 1-D integer array, a read-only `np.memmap` of token shards (zoo/data/tokens.py)
included: a batch reads only its own windows, so memory does not grow with the corpus.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from zoo.data.batching import process_rows


class TokenWindows:
    """Windows of `context_length + 1` tokens (inputs and shifted targets) from a 1-D token array.

    `tokens` is kept as given, never copied or widened: a memory map of several GB stays on disk, and
    only the gathered windows become int32."""

    def __init__(self, tokens: np.ndarray, context_length: int, global_batch: int, seed: int):
        if np.ndim(tokens) != 1:
            raise ValueError(f"tokens must be a 1-D array, got shape {np.shape(tokens)}")
        if len(tokens) < context_length + 2:
            raise ValueError(f"only {len(tokens)} tokens: too few for windows of {context_length + 1}")
        self.tokens = tokens if isinstance(tokens, np.ndarray) else np.asarray(tokens)
        self.window = context_length + 1
        self.global_batch = global_batch
        self.seed = seed

    def starts(self, step: int, process_index: int = 0, process_count: int = 1) -> np.ndarray:
        """The int64 offsets of this process's windows at `step`: anywhere in the stream, past 2**31 too."""
        rng = np.random.default_rng([self.seed, step])
        starts = rng.integers(0, len(self.tokens) - self.window + 1, size=self.global_batch, dtype=np.int64)
        return starts[process_rows(self.global_batch, process_index, process_count)]

    def batch(self, step: int, process_index: int = 0, process_count: int = 1) -> dict[str, np.ndarray]:
        return {"tokens": self._gather(self.starts(step, process_index, process_count))}

    def eval_batches(self, max_batches: int, process_index: int = 0,
                     process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
        """Fixed, evenly spaced windows covering the stream: the same every time."""
        n_windows = max(1, min(max_batches * self.global_batch, len(self.tokens) // self.window))
        n_batches = max(1, n_windows // self.global_batch)
        starts = np.linspace(0, len(self.tokens) - self.window, n_batches * self.global_batch).astype(np.int64)
        rows = process_rows(self.global_batch, process_index, process_count)
        for b in range(n_batches):
            yield {"tokens": self._gather(starts[b * self.global_batch:(b + 1) * self.global_batch][rows])}

    def _gather(self, starts: np.ndarray) -> np.ndarray:
        return np.asarray(self.tokens[starts[:, None] + np.arange(self.window, dtype=np.int64)], np.int32)
