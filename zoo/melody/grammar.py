"""The grammar of melody token sequences, written once for numpy (checking tunes) and for jax.numpy (the
sampler masks its logits with it inside jit, one step at a time).

The rules: METER, then KEY, then BAR; then notes, each a PITCH or REST and its DUR tokens, which may not run
past the bar line; BAR comes exactly when a bar is full (and only then); EOS may follow a complete note.
Real tunes obey them except for the rare note held across a bar line (the encoding writes the BAR after
it), and a sampler that obeys them keeps every note inside its bar.

They are a state machine over integer arrays of any batch shape:

    phase      0 needs METER, 1 needs KEY, 2 in the tune
    bar_len    ticks per bar of the meter
    remaining  ticks left in the bar the last BAR opened (negative after a note held across the bar line)
    bars       BAR tokens so far
    last       the last token

`Grammar(xp)` holds the per-token tables as `xp` arrays, and its `advance` and `allowed` use only indexing,
comparisons, `&`, `|`, `~` and `xp.where`, so the same two functions run on numpy, jax.numpy and torch.
`allowed` takes an optional number of bars: a sampler that asks for `target_bars` may end (EOS) exactly
when that many bars are full and not before; without it (checking a tune) EOS may follow any note.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from zoo.melody.encoding import (
    BAR,
    BOS,
    DUR_BASE,
    DURATIONS,
    EOS,
    KEY_BASE,
    METER_BASE,
    METERS,
    PITCH_BASE,
    REST,
    VOCAB,
    bar_ticks,
)

# Per-token tables, indexed by token id.
DUR_TICKS = np.zeros(VOCAB, np.int32)  # ticks a DUR token adds, 0 for other tokens
DUR_TICKS[DUR_BASE:] = DURATIONS
METER_BAR_TICKS = np.zeros(VOCAB, np.int32)  # bar length of a METER token, 0 for other tokens
METER_BAR_TICKS[METER_BASE:KEY_BASE] = [bar_ticks(m) for m in METERS]
IS_METER = METER_BAR_TICKS > 0
IS_KEY = np.zeros(VOCAB, bool)
IS_KEY[KEY_BASE:PITCH_BASE] = True
IS_EVENT = np.zeros(VOCAB, bool)  # REST and PITCH tokens: what opens a note
IS_EVENT[REST] = True
IS_EVENT[PITCH_BASE:DUR_BASE] = True
IS_DUR = DUR_TICKS > 0

START = {"phase": 0, "bar_len": 0, "remaining": 0, "bars": 0, "last": BOS}  # before the first token


class Grammar:
    """The rules over `xp` arrays: `xp` is numpy, jax.numpy or torch; `asarray` puts a numpy table where
    the states live (default `xp.asarray`; torch passes one that names the device)."""

    def __init__(self, xp: Any = np, asarray: Callable[[np.ndarray], Any] | None = None):
        asarray = asarray or xp.asarray
        self.xp = xp
        self.is_meter, self.is_key = asarray(IS_METER), asarray(IS_KEY)
        self.is_event, self.is_dur = asarray(IS_EVENT), asarray(IS_DUR)
        self.dur_ticks, self.bar_ticks = asarray(DUR_TICKS), asarray(METER_BAR_TICKS)
        self.tokens = asarray(np.arange(VOCAB, dtype=np.int32))

    def advance(self, state: dict, tok: Any) -> dict:
        """The state after `tok` (one token per state: shapes as the state's)."""
        where = self.xp.where
        is_meter, is_bar = self.is_meter[tok], tok == BAR
        bar_len = where(is_meter, self.bar_ticks[tok], state["bar_len"])
        return {
            "phase": where(is_meter, 1, where(self.is_key[tok], 2, state["phase"])),
            "bar_len": bar_len,
            "remaining": state["remaining"] + where(is_bar, bar_len, 0) - self.dur_ticks[tok],
            "bars": state["bars"] + where(is_bar, 1, 0),
            "last": tok,
        }

    def allowed(self, state: dict, target_bars: Any = None) -> Any:
        """bool [..., VOCAB]: the tokens that may come next in each state (see the module docstring)."""
        last, remaining = state["last"][..., None], state["remaining"][..., None]
        full = remaining <= 0
        fits = self.is_dur & (self.dur_ticks <= remaining)
        bar, eos = self.tokens == BAR, self.tokens == EOS
        after_bar, after_dur = last == BAR, self.is_dur[last]
        if target_bars is None:  # a tune may end after any note, and a full bar always takes a BAR
            more, may_end = True, True
        else:  # the last of `target_bars` bars ends the melody once full; a BAR may not follow it
            more = (state["bars"] < target_bars)[..., None]
            may_end = full & ~more
        body = ((self.is_key[last] & bar)
                | (after_bar & ~full & self.is_event) | (after_bar & full & bar)
                | (self.is_event[last] & fits)
                | (after_dur & full & more & bar) | (after_dur & may_end & eos)
                | (after_dur & ~full & (self.is_event | fits)))
        phase = state["phase"][..., None]
        return self.xp.where(phase == 0, self.is_meter, self.xp.where(phase == 1, self.is_key, body))


NUMPY = Grammar(np)


def state_after(prefix: Sequence[int] | np.ndarray) -> dict[str, int]:
    """Where a token prefix (from BOS) leaves the grammar, as plain ints."""
    state = dict(START)
    for tok in np.asarray(prefix).tolist():
        state = {k: int(v) for k, v in NUMPY.advance(state, tok).items()}
    return state


def allowed_next(prefix: Sequence[int] | np.ndarray, target_bars: int | None = None) -> np.ndarray:
    """bool [VOCAB]: the tokens that may follow `prefix` (from BOS)."""
    state = {k: np.asarray(v) for k, v in state_after(prefix).items()}
    return NUMPY.allowed(state, target_bars)


def violations(tokens: Sequence[int] | np.ndarray) -> list[int]:
    """The positions i >= 1 of `tokens` (from BOS) whose token may not follow tokens[:i]; [] for a legal
    sequence. One pass, so it checks a whole corpus quickly."""
    state, out = dict(START), []
    for i, tok in enumerate(np.asarray(tokens).tolist()):
        if i and not NUMPY.allowed(state)[tok]:
            out.append(i)
        state = {k: np.asarray(v) for k, v in NUMPY.advance(state, tok).items()}
    return out
