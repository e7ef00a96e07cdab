"""Timing training steps the same way in every speed benchmark."""

from __future__ import annotations

import statistics
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


def best_seconds(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Best wall seconds of `fn()` (its result waited for) over `repeats` runs, after one untimed run that
    pays the compilation."""
    jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best


def windows_of(steps: int, windows: int) -> list[int]:
    """`steps` split into `windows` near-equal window lengths (each >= 1)."""
    windows = max(1, min(windows, steps))
    return [steps // windows + (i < steps % windows) for i in range(windows)]


def time_windows(run_step: Callable[[int], Any], sync: Callable[[Any], Any], warmup: int, steps: int,
                 windows: int) -> dict[str, Any]:
    """Steps 0 .. warmup-1 untimed (the first one's time, compilation included, is `compile_s`), then
    `steps` steps in `windows` windows, each closed by ONE `sync` of its last result, as a training loop
    syncs only at log steps. `run_step(i)` runs step i and returns its loss (any array type); `sync` waits
    for one. Returns steps_per_s (the median window), window_steps_per_s, compile_s, warmup_s, the losses
    (unsynced, in order) and last_window (the length of the last window)."""
    t0 = time.perf_counter()
    losses = [run_step(0)]
    sync(losses[0])
    first = time.perf_counter() - t0
    losses += [run_step(i) for i in range(1, warmup)]
    sync(losses[-1])
    warmup_s = time.perf_counter() - t0
    rates, position = [], warmup
    lengths = windows_of(steps, windows)
    for length in lengths:
        t0 = time.perf_counter()
        losses += [run_step(i) for i in range(position, position + length)]
        sync(losses[-1])
        rates.append(length / (time.perf_counter() - t0))
        position += length
    return {"steps_per_s": statistics.median(rates), "window_steps_per_s": rates, "compile_s": first,
            "warmup_s": warmup_s, "losses": losses, "last_window": lengths[-1]}
