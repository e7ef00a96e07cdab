"""Timing a jitted training step the same way in every speed benchmark."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import jax


def time_train_step(step: Callable, state: Any, batches: Sequence[Any], key: jax.Array) -> tuple[Any, float, float]:
    """(final state, compile seconds, seconds per step): the first batch pays the compile, the others are
    timed back to back with one sync at the end, as the training loop runs them."""
    t0 = time.perf_counter()
    state, metrics = step(state, batches[0], key)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i, batch in enumerate(batches[1:]):
        state, metrics = step(state, batch, jax.random.fold_in(key, i))
    jax.block_until_ready(metrics)
    return state, compile_s, (time.perf_counter() - t0) / max(1, len(batches) - 1)
