"""Folk-tune corpus and melody event encoding for the `music` model.

Corpus
------
The music21 corpus's ABC collections: O'Neill's Music of Ireland 1850 (`oneills1850`),
Ryan's Mammoth Collection (`ryansMammoth`), Aird's Airs (`airdsAirs`) and `miscFolk` by default; Bach
chorale soprano lines (`bach`) as an option; the Essen collection (`essenFolksong`) only when asked for
by name, because its licence is non-commercial. Parsing with music21 costs ~10-50 tunes/s, so
`load_tunes` parses once, in parallel, and caches plain arrays (one `.npz` under `data_dir()/cache`,
keyed by the music21 version, this module's source and the collections asked for).

ABC files hold many tunes; each `X:` block is parsed on its own, so one malformed tune costs only
itself: it is skipped and counted under a reason (`TuneCorpus.skipped`). The metadata comes from the ABC
header itself, not from music21's reading of it (which, e.g., turns `L:1/16` into a 1/16 time signature):
title (`T:`), meter (`M:`; `C` is 4/4 and `C|` 2/2), key tonic and mode (`K:`, e.g. `Ador`, `E Minor`,
`Gmix`), and a genre from the rhythm field (`R:`), else from words of the title ("... Hornpipe",
"Quick Step"), else, for O'Neill's, from the section of the book the tune number falls in (airs,
double jigs, slip jigs, reels, hornpipes, long dances, marches), else `unknown`. O'Neill's corpus holds
several tunes twice (two transcribers' files); the first copy of each tune number wins.

The melody is the top voice (the highest note of a chord), without grace notes or chord symbols, with
tied notes of the same pitch merged (O'Neill's transcriber also writes slurs as ties; those are kept as
separate notes). Repeats are not expanded: a tune is what is written, once through.

Event encoding
--------------
    BOS METER KEY  BAR ev ev ...  BAR ev ...  EOS        ev = (PITCH | REST) DUR [DUR ...]

* `METER` (one of `METERS`) and `KEY` (12 tonics x 7 modes) come first, so that the model commits to a
  meter and a key/mode before any note, a caption can steer them, and `decode` hands a MIDI writer its time
  signature and key signature.
* Time is on a grid of `TICKS_PER_QUARTER` = 24 ticks per quarter note: the smallest grid that holds
  both the 32nd notes of O'Neill's ornamented airs (3 ticks) and the triplets of reels and hornpipes (8 and
  4 ticks). `DUR` tokens are 1..24 ticks (anything up to a quarter), then dotted/whole values up to two
  4/4 bars; a rare longer note is a run of DUR tokens that add up (greedy). A tune with a duration off the
  grid is skipped (counted as `off grid`).
* `BAR` marks each bar line of the METRICAL grid (every `bar_ticks(meter)` from the start), not music21's
  measure objects. A pickup is padded with a leading rest to a full bar, and a bar that notation leaves
  out of phase with the meter (an uncompensated repeat half-bar, a miscounted bar) is re-aligned with a
  rest; the fixes are counted in `TuneCorpus.repairs`. So in every encoded tune the notes' onsets are
  their true metrical positions: a sampler can track the position inside the bar from BAR and DUR tokens
  alone and mask durations that would cross it (`allowed_next` is that grammar), and a MIDI file gets
  notes on the beats its time signature claims. A note held across a bar line (rare) keeps one PITCH:
  the BAR comes after it.
* Pitches are absolute MIDI numbers `PITCH_MIN..PITCH_MAX`, so `transpose` is a shift of PITCH tokens and
  of the KEY's tonic; an out-of-range result is folded by octaves.

`decode` is tolerant (it reads model output): tokens after EOS are ignored, a DUR without a note is
dropped, a missing header means 4/4 C major.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from zoo.data.batching import EpochOrder, process_rows
from zoo.data.sources import data_dir
from zoo.errors import UsageError

logger = logging.getLogger(__name__)

MUSIC21_INSTALL = "pip install music21"
DEFAULT_COLLECTIONS = ("oneills1850", "ryansMammoth", "airdsAirs", "miscFolk")
OPTIONAL_COLLECTIONS = ("bach", "essenFolksong")  # essenFolksong: non-commercial licence, never a default
COLLECTIONS = DEFAULT_COLLECTIONS + OPTIONAL_COLLECTIONS

# ------------------------------------------------------------------------------------------- vocabulary

TICKS_PER_QUARTER = 24
METERS = ("2/4", "3/4", "4/4", "2/2", "6/8", "9/8", "12/8", "3/8", "6/4", "3/2", "4/2", "9/4", "5/4", "5/8", "7/8")
MODES = ("major", "minor", "dorian", "mixolydian", "phrygian", "lydian", "locrian")
# semitones from the relative major's tonic up to the mode's tonic, and the scale degree it sits on
MODE_OFFSET = {"major": 0, "dorian": 2, "phrygian": 4, "lydian": 5, "mixolydian": 7, "minor": 9, "locrian": 11}
MODE_DEGREE = {"major": 0, "dorian": 1, "phrygian": 2, "lydian": 3, "mixolydian": 4, "minor": 5, "locrian": 6}
PITCH_MIN, PITCH_MAX = 36, 96  # C2..C7: every tune (and every transposition, folded) fits
MAX_SPAN = 48  # a wider tune could not always be folded back into range after a transposition
DURATIONS = tuple(range(1, 25)) + tuple(range(30, 97, 6)) + (120, 144, 192)  # in ticks

EOS, BOS, BAR, REST = 0, 1, 2, 3
METER_BASE = 4
KEY_BASE = METER_BASE + len(METERS)
PITCH_BASE = KEY_BASE + 12 * len(MODES)
DUR_BASE = PITCH_BASE + PITCH_MAX - PITCH_MIN + 1
VOCAB = DUR_BASE + len(DURATIONS)
HEADER = 3  # BOS METER KEY

_DUR_TOKEN = {d: DUR_BASE + i for i, d in enumerate(DURATIONS)}
_MAJOR_NAMES = {0: "C", 7: "G", 2: "D", 9: "A", 4: "E", 11: "B", 6: "F#", 1: "Db", 8: "Ab", 3: "Eb", 10: "Bb", 5: "F"}
_LETTERS = "CDEFGAB"
_NATURAL = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def _token_names() -> tuple[str, ...]:
    names = ["EOS", "BOS", "BAR", "REST"]
    names += [f"METER_{m}" for m in METERS]
    names += [f"KEY_{tonic_name(t, m)}_{m}" for m in MODES for t in range(12)]
    names += [f"PITCH_{p}" for p in range(PITCH_MIN, PITCH_MAX + 1)]
    names += [f"DUR_{d}" for d in DURATIONS]
    return tuple(names)


def tonic_name(tonic: int, mode: str) -> str:
    """The conventional spelling of a tonic pitch class in a mode: the one whose key signature has the
    fewest accidentals (F# minor, Bb dorian, not Gb minor or A# dorian)."""
    major = (tonic - MODE_OFFSET[mode]) % 12
    major_name = _MAJOR_NAMES[major]
    letter = _LETTERS[(_LETTERS.index(major_name[0]) + MODE_DEGREE[mode]) % 7]
    diff = (tonic - _NATURAL[letter] + 6) % 12 - 6
    return letter + ("#" * diff if diff > 0 else "b" * -diff)


def key_signature_sharps(tonic: int, mode: str) -> int:
    """Sharps (> 0) or flats (< 0) of the key signature of a tonic and mode, as MIDI key signatures count."""
    major = (tonic - MODE_OFFSET[mode]) % 12
    return {0: 0, 7: 1, 2: 2, 9: 3, 4: 4, 11: 5, 6: 6, 1: -5, 8: -4, 3: -3, 10: -2, 5: -1}[major]


def bar_ticks(meter: str) -> int:
    """Length of one bar of `meter` ("6/8") in ticks."""
    num, den = (int(x) for x in meter.split("/"))
    return num * 4 * TICKS_PER_QUARTER // den


def meter_token(meter: str) -> int:
    return METER_BASE + METERS.index(meter)


def key_token(tonic: int, mode: str) -> int:
    return KEY_BASE + MODES.index(mode) * 12 + tonic % 12


def pitch_token(pitch: int) -> int:
    return PITCH_BASE + pitch - PITCH_MIN


def duration_tokens(ticks: int) -> list[int]:
    """DUR tokens adding up to `ticks`: one token for every common value, a greedy run for long ones."""
    out = []
    while ticks > 0:
        d = ticks if ticks in _DUR_TOKEN else max(x for x in DURATIONS if x <= ticks)
        out.append(_DUR_TOKEN[d])
        ticks -= d
    return out


TOKEN_NAMES = _token_names()


def token_name(token: int) -> str:
    """A readable name of one token (for debugging and tests)."""
    return TOKEN_NAMES[token] if 0 <= token < VOCAB else f"<{token}?>"


# ------------------------------------------------------------------------------------------ data types


@dataclass(frozen=True)
class Melody:
    """What a MIDI writer needs: meter, key, and notes as (MIDI pitch or None for a rest, quarter lengths)."""

    meter: str = "4/4"
    tonic: int = 0  # pitch class, C = 0
    mode: str = "major"
    notes: tuple[tuple[int | None, float], ...] = ()

    @property
    def key_name(self) -> str:
        return f"{tonic_name(self.tonic, self.mode)} {self.mode}"

    @property
    def quarter_length(self) -> float:
        return float(sum(d for _, d in self.notes))


@dataclass(frozen=True, eq=False)
class Tune:
    """One tune of the corpus: metadata and its melody as arrays (pitch -1 = rest, durations in ticks)."""

    title: str
    genre: str
    meter: str
    tonic: int
    mode: str
    pitches: np.ndarray  # int16, -1 for a rest
    ticks: np.ndarray  # int32 durations, TICKS_PER_QUARTER per quarter note
    collection: str = ""
    source: str = ""  # file and ABC X: number, for finding the tune again

    @property
    def key_name(self) -> str:
        return f"{tonic_name(self.tonic, self.mode)} {self.mode}"

    @property
    def melody(self) -> Melody:
        notes = tuple(
            (None if p < 0 else int(p), t / TICKS_PER_QUARTER)
            for p, t in zip(self.pitches.tolist(), self.ticks.tolist(), strict=True)
        )
        return Melody(self.meter, self.tonic, self.mode, notes)


@dataclass
class TuneCorpus:
    """The parsed tunes and what parsing them cost and dropped."""

    tunes: list[Tune]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (malformed, off grid, ...)
    repairs: int = 0  # bars re-aligned to the meter with a rest (pickups not counted)
    parse_seconds: float = 0.0
    cache_path: Path | None = None

    def per_collection(self) -> dict[str, int]:
        return dict(Counter(t.collection for t in self.tunes))


# --------------------------------------------------------------------------------------------- captions

_ARTICLE_AN = re.compile(r"^[aeiou]", re.IGNORECASE)


def caption(tune: Tune, semitones: int = 0) -> str:
    """A one-sentence description from the tune's metadata, the text the model is conditioned on.

    `semitones` names the key the tune has after `transpose(tune, semitones)`, so a transposed training
    example is described truthfully. E.g. "The Humours of Ennis. A jig in D major, 6/8."
    """
    genre = tune.genre if tune.genre and tune.genre != "unknown" else "tune"
    article = "An" if _ARTICLE_AN.match(genre) else "A"
    key = f"{tonic_name((tune.tonic + semitones) % 12, tune.mode)} {tune.mode}"
    body = f"{article} {genre} in {key}, {tune.meter}."
    title = tune.title.strip()
    if not title:
        return body
    return f"{title}{'' if title[-1] in '.?!' else '.'} {body}"


def caption_table(tunes: Sequence[Tune]) -> tuple[list[str], np.ndarray]:
    """(unique captions, index int32[n, 12]): index[i, s] is the caption of tune i moved up s semitones
    (mod 12), the form `MelodyBatches` takes so that a transposed tune is conditioned on its real key."""
    captions: dict[str, int] = {}
    index = np.zeros((len(tunes), 12), np.int32)
    for i, tune in enumerate(tunes):
        for s in range(12):
            index[i, s] = captions.setdefault(caption(tune, s), len(captions))
    return list(captions), index


# --------------------------------------------------------------------------------------------- encoding


def encode(tune: Tune | Melody) -> np.ndarray:
    """Tokens of a tune (see the module docstring): int32[n], BOS first and EOS last.

    Raises ValueError for what the vocabulary cannot hold: an unknown meter or mode, a pitch out of range,
    a duration off the grid.
    """
    meter, tonic, mode = tune.meter, tune.tonic, tune.mode
    if isinstance(tune, Tune):
        events = list(zip(tune.pitches.tolist(), tune.ticks.tolist(), strict=True))
    else:
        events = [(-1 if p is None else p, _to_ticks(d)) for p, d in tune.notes]
    if meter not in METERS:
        raise ValueError(f"meter {meter} is not one of {METERS}")
    if mode not in MODES:
        raise ValueError(f"mode {mode} is not one of {MODES}")
    bar = bar_ticks(meter)
    out = [BOS, meter_token(meter), key_token(tonic, mode)]
    now = next_bar = 0
    for pitch, ticks in events:
        if ticks <= 0:
            raise ValueError(f"duration {ticks} ticks is not positive")
        while next_bar <= now:
            out.append(BAR)
            next_bar += bar
        if pitch < 0:
            out.append(REST)
        elif PITCH_MIN <= pitch <= PITCH_MAX:
            out.append(pitch_token(pitch))
        else:
            raise ValueError(f"pitch {pitch} is outside {PITCH_MIN}..{PITCH_MAX}")
        out += duration_tokens(ticks)
        now += ticks
    out.append(EOS)
    return np.asarray(out, np.int32)


def decode(tokens: Sequence[int] | np.ndarray) -> Melody:
    """The melody that tokens describe. Tolerant of model output: stops at EOS (a leading BOS is fine),
    ignores stray tokens, adds up consecutive DUR tokens, and defaults to 4/4 C major without a header."""
    meter, tonic, mode = None, None, None
    notes: list[list] = []  # [pitch|None, ticks]
    open_note = False  # the last event can still take DUR tokens
    for tok in np.asarray(tokens).tolist():
        if tok == EOS:
            break
        if METER_BASE <= tok < KEY_BASE:
            meter = meter or METERS[tok - METER_BASE]
        elif KEY_BASE <= tok < PITCH_BASE:
            if tonic is None:
                mode, tonic = MODES[(tok - KEY_BASE) // 12], (tok - KEY_BASE) % 12
        elif tok == REST or PITCH_BASE <= tok < DUR_BASE:
            if notes and notes[-1][1] == 0:
                notes.pop()  # a note that never got a duration
            notes.append([None if tok == REST else tok - PITCH_BASE + PITCH_MIN, 0])
            open_note = True
        elif DUR_BASE <= tok < VOCAB:
            if open_note:
                notes[-1][1] += DURATIONS[tok - DUR_BASE]
        elif tok == BAR:
            open_note = open_note and notes[-1][1] == 0
    out = tuple((p, t / TICKS_PER_QUARTER) for p, t in notes if t > 0)
    return Melody(meter or "4/4", tonic or 0, mode or "major", out)


def _to_ticks(quarter_length: float) -> int:
    ticks = quarter_length * TICKS_PER_QUARTER
    rounded = round(ticks)
    if abs(ticks - rounded) > 1e-6:
        raise ValueError(f"duration {quarter_length} quarters is off the 1/{TICKS_PER_QUARTER}-quarter grid")
    return int(rounded)


def _fold(lo: int, hi: int, shift: int) -> int:
    """`shift` moved by octaves so that [lo, hi] + shift fits PITCH_MIN..PITCH_MAX (if any octave can)."""
    while hi + shift > PITCH_MAX and lo + shift - 12 >= PITCH_MIN:
        shift -= 12
    while lo + shift < PITCH_MIN and hi + shift + 12 <= PITCH_MAX:
        shift += 12
    return shift


def transpose(tune: Tune | Melody, semitones: int) -> Tune | Melody:
    """The tune moved by `semitones`, its key token with it. If that would leave PITCH_MIN..PITCH_MAX the
    notes move by an extra octave (the key is the same either way), so the result always encodes."""
    if isinstance(tune, Tune):
        notes = tune.pitches[tune.pitches >= 0]
        shift = _fold(int(notes.min()), int(notes.max()), semitones) if notes.size else semitones
        pitches = np.where(tune.pitches >= 0, tune.pitches + shift, -1).astype(np.int16)
        return replace(tune, tonic=(tune.tonic + semitones) % 12, pitches=pitches)
    sounding = [p for p, _ in tune.notes if p is not None]
    shift = _fold(min(sounding), max(sounding), semitones) if sounding else semitones
    moved = tuple((None if p is None else p + shift, d) for p, d in tune.notes)
    return replace(tune, tonic=(tune.tonic + semitones) % 12, notes=moved)


def transpose_tokens(tokens: np.ndarray, semitones: int) -> np.ndarray:
    """`transpose` on an encoded tune: PITCH tokens and the KEY token move, everything else stays."""
    tokens = np.asarray(tokens, np.int32)
    is_pitch = (tokens >= PITCH_BASE) & (tokens < DUR_BASE)
    out = tokens.copy()
    if is_pitch.any():
        pitches = tokens[is_pitch] - PITCH_BASE + PITCH_MIN
        shift = _fold(int(pitches.min()), int(pitches.max()), semitones)
        out[is_pitch] += shift
    is_key = (tokens >= KEY_BASE) & (tokens < PITCH_BASE)
    key = tokens[is_key] - KEY_BASE
    out[is_key] = KEY_BASE + key // 12 * 12 + (key % 12 + semitones) % 12
    return out


# ---------------------------------------------------------------------------------------------- grammar

# Per-token tables for a sampler that keeps generated notes on the meter (numpy here, jnp.asarray-able):
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


def allowed_next(prefix: Sequence[int] | np.ndarray) -> np.ndarray:
    """bool[VOCAB]: the tokens that may follow `prefix` (from BOS) in a well-formed tune that keeps every
    note inside its bar: METER, then KEY, then BAR; a note's DUR tokens may not cross the bar line; BAR
    comes exactly when a bar is full (and only then); EOS may follow any complete note.

    A reference for samplers (mask the logits with it, or port its few rules to jnp with the tables
    above). Real tunes obey it except for the rare note held across a bar line.
    """
    prefix = np.asarray(prefix).tolist()
    mask = np.zeros(VOCAB, bool)
    meters = [t for t in prefix if IS_METER[t]]
    if not meters:
        mask[IS_METER] = True
        return mask
    if not any(IS_KEY[t] for t in prefix):
        mask[IS_KEY] = True
        return mask
    last = prefix[-1]
    # ticks left in the bar the last BAR opened (negative after a note held across the bar line)
    remaining = prefix.count(BAR) * int(METER_BAR_TICKS[meters[0]]) - int(DUR_TICKS[prefix].sum())
    if IS_KEY[last]:
        mask[BAR] = True
    elif last == BAR:
        if remaining <= 0:  # a note held across this bar line too: the next bar line follows at once
            mask[BAR] = True
        else:
            mask[IS_EVENT] = True
    elif IS_EVENT[last]:
        mask[IS_DUR & (DUR_TICKS <= remaining)] = True
    elif IS_DUR[last]:
        if remaining <= 0:
            mask[BAR] = True
        else:
            mask[IS_EVENT] = True
            mask[IS_DUR & (DUR_TICKS <= remaining)] = True
        mask[EOS] = True
    return mask


# ---------------------------------------------------------------------------------------------- split


def tune_hash(tune: Tune) -> int:
    """A stable 64-bit hash of a tune's title and notes: what decides its side of the split."""
    h = hashlib.blake2b(digest_size=8)
    h.update(tune.title.strip().lower().encode())
    h.update(np.asarray(tune.pitches, "<i2").tobytes())
    h.update(np.asarray(tune.ticks, "<i4").tobytes())
    return int.from_bytes(h.digest(), "big")


def split_tunes(tunes: Sequence[Tune], val_fraction: float = 0.05) -> tuple[list[Tune], list[Tune]]:
    """Deterministic (train, validation) split by `tune_hash`: independent of order, of the corpus
    growing, and of PYTHONHASHSEED, like `zoo.data.sources.split_documents`."""
    if not 0.0 <= val_fraction < 1.0:
        raise UsageError(f"val_fraction must be in [0, 1), got {val_fraction}")
    cut = int(val_fraction * 2**64)
    hashes = [tune_hash(t) for t in tunes]
    train = [t for t, h in zip(tunes, hashes, strict=True) if h >= cut]
    val = [t for t, h in zip(tunes, hashes, strict=True) if h < cut]
    return train, val


# --------------------------------------------------------------------------------------------- batches


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
      an [n, 12] index (see `caption_table`), so that the caption names the key of the transposed tune.
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


# ----------------------------------------------------------------------------------------- ABC headers

# Genre words, checked in this order (so "slip jig" wins over "jig"), against the R: field and the title.
GENRE_WORDS = (
    ("slip jig", r"slip[- ]?jigg?|hop[- ]?jigg?"),
    ("jig", r"(?:double |single )?jigg?s?"),
    ("reel", r"reels?"),
    ("hornpipe", r"hornpipes?|clog"),
    ("strathspey", r"strathspeys?"),
    ("fling", r"(?:highland )?fling"),
    ("march", r"(?:quick |slow )?march|quick ?step"),
    ("waltz", r"waltz|valse"),
    ("polka", r"polka"),
    ("slide", r"slide"),
    ("set dance", r"set dance|long dance"),
    ("schottische", r"schottische|highland schottische"),
    ("mazurka", r"mazurka"),
    ("minuet", r"minuet|menuet"),
    ("gavotte", r"gavotte"),
    ("air", r"air|lament|lamentation|slow air"),
    ("song", r"song"),
)
_GENRE_RES = tuple((g, re.compile(rf"\b(?:{rx})\b", re.IGNORECASE)) for g, rx in GENRE_WORDS)
# O'Neill's Music of Ireland is ordered by kind; where a tune has no R: field its number says which.
ONEILL_SECTIONS = ((1, 625, "air"), (701, 1115, "jig"), (1116, 1175, "slip jig"), (1176, 1555, "reel"),
                   (1556, 1780, "hornpipe"), (1781, 1800, "set dance"), (1801, 1850, "march"))
_KEY_RE = re.compile(r"^\s*([A-Ga-g])([#b]?)\s*([A-Za-z]*)")
_MODE_PREFIX = {"": "major", "maj": "major", "ion": "major", "m": "minor", "min": "minor", "aeo": "minor",
                "dor": "dorian", "mix": "mixolydian", "phr": "phrygian", "lyd": "lydian", "loc": "locrian"}
_ABC_ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", ",": "\u0327"}


def _split_abc(text: str) -> list[tuple[str, str]]:
    """(tune text, section) per `X:` block of an ABC file. A file header's fields (before the first X:)
    are copied into each tune; `section` is the latest `% ---- Song tunes ----` style comment before it
    (miscFolk groups its tunes that way), a genre hint."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    starts = [m.start() for m in re.finditer(r"(?m)^X:", text)]
    head = text[: starts[0]] if starts else text
    fields = "".join(ln + "\n" for ln in head.split("\n") if re.match(r"[A-Za-z]:", ln))
    sections = [(m.start(), m.group(1).strip()) for m in re.finditer(r"(?m)^%\s*-{3,}\s*([^-\n]+?)\s*-*\s*$", text)]
    out = []
    for i, start in enumerate(starts):
        tune = text[start: starts[i + 1] if i + 1 < len(starts) else len(text)]
        first, _, rest = tune.partition("\n")
        section = next((name for pos, name in reversed(sections) if pos < start), "")
        out.append((f"{first}\n{fields}{rest}" if fields else tune, section))
    return out


def _first_voice(tune_text: str) -> str:
    """The tune with only its first voice (`V:`), which is the top one in these collections. music21
    would read each `V:` block of interleaved multi-voice ABC as a separate part."""
    if not re.search(r"(?m)^V:|\[V:", tune_text):
        return tune_text
    lines = re.sub(r"\[V:\s*([^\]]*)\]", r"\nV:\1\n", tune_text).split("\n")
    first = current = None
    out = []
    for line in lines:
        m = re.match(r"V:\s*(\S*)", line)
        if m:
            current = m.group(1)
            first = first if first is not None else current
            continue
        if current is None or current == first or re.match(r"[A-Za-z]:", line):
            out.append(line)
    return "\n".join(out)


def _header(tune_text: str) -> dict[str, list[str]]:
    """Header fields (before and including the first K:) of one ABC tune: letter -> values, in order."""
    fields: dict[str, list[str]] = {}
    for line in tune_text.split("\n"):
        m = re.match(r"([A-Za-z]):(.*)", line)
        if not m:
            continue
        value = m.group(2).split("%", 1)[0].strip()
        fields.setdefault(m.group(1), []).append(value)
        if m.group(1) == "K":
            break
    return fields


def _parse_meter(value: str) -> str | None:
    value = value.replace(" ", "")
    if value in ("C", "c"):
        return "4/4"
    if value in ("C|", "c|"):
        return "2/2"
    m = re.fullmatch(r"(\d+)/(\d+)", value)
    return f"{int(m.group(1))}/{int(m.group(2))}" if m else None


def parse_key(value: str) -> tuple[int, str] | None:
    """(tonic pitch class, mode) of an ABC K: value ("D", "Ador", "E Minor", "F#m", "HP"), or None."""
    if value.strip().lower().startswith("hp"):  # Highland pipes: A mixolydian
        return 9, "mixolydian"
    m = _KEY_RE.match(value)
    if not m:
        return None
    tonic = (_NATURAL[m.group(1).upper()] + {"#": 1, "b": -1, "": 0}[m.group(2)]) % 12
    word = m.group(3).lower()
    if word in ("m", ""):
        mode = _MODE_PREFIX[word]
    elif word[:3] in _MODE_PREFIX:
        mode = _MODE_PREFIX[word[:3]]
    elif word in ("clef", "treble", "bass", "alto", "exp"):
        mode = "major"
    else:
        return None
    return tonic, mode


def genre_of(rhythm: str, title: str, collection: str = "", number: int | None = None, section: str = "") -> str:
    """A genre from the R: field, else the title's words, else the file's section comment, else O'Neill's
    book section (by tune number), else 'unknown'."""
    for text in (rhythm, title, section):
        for genre, rx in _GENRE_RES:
            if text and rx.search(text):
                return genre
    if collection == "oneills1850" and number is not None:
        for lo, hi, genre in ONEILL_SECTIONS:
            if lo <= number <= hi:
                return genre
    return "unknown"


def clean_title(title: str) -> str:
    """A display title: ABC accents resolved, "Ace and Deuce, The" -> "The Ace and Deuce", SHOUTING in
    title case, no trailing period, and no Ryan's-style " -- Reel" suffix (the genre says that)."""
    import unicodedata

    title = re.sub(r"\\([`'^\"~,])([A-Za-z])", lambda m: m.group(2) + _ABC_ACCENTS[m.group(1)], title)
    title = unicodedata.normalize("NFC", title).strip().rstrip(".").strip()
    title = re.sub(r"\s+--\s+[^-]*$", "", title) if " -- " in title else title
    if len(title) > 1 and title[0] == title[-1] and title[0] in "\"'":
        title = title[1:-1].strip()
    m = re.fullmatch(r"(.*),\s*(The|A|An)", title, re.IGNORECASE)
    if m:
        title = f"{m.group(2).capitalize()} {m.group(1)}"
    if title.isupper() and len(title) > 3:
        title = " ".join(w[:1] + w[1:].lower() for w in title.split(" "))
    return re.sub(r"\s+", " ", title)


# -------------------------------------------------------------------------------------------- parsing


def _corpus_dir() -> Path:
    if importlib.util.find_spec("music21") is None:
        raise UsageError(f"the music corpus needs music21: {MUSIC21_INSTALL}")
    import music21

    return Path(music21.__file__).parent / "corpus"


def _music21_version() -> str:
    import music21

    return str(music21.__version__)


def _tasks(collections: Sequence[str], files: Sequence[str | Path] | None, limit: int | None,
           skipped: Counter) -> list[tuple]:
    """What to parse: (collection, source, kind, payload, number) per tune, before any music21 work.

    O'Neill's duplicate tune numbers are dropped here (counted as `duplicate`)."""
    sources: list[tuple[str, Path]] = []
    if files is not None:
        sources = [("files", Path(f)) for f in files]
    else:
        root = _corpus_dir()
        for name in collections:
            if name == "bach":
                import music21.corpus

                paths = sorted(Path(p) for p in music21.corpus.getComposer("bach")
                               if Path(p).name.startswith("bwv") and Path(p).suffix in (".mxl", ".xml"))
                sources += [("bach", p) for p in paths]
                continue
            folder = root / name
            if not folder.is_dir():
                raise UsageError(f"music21's corpus has no {name} (reinstall it: {MUSIC21_INSTALL})")
            sources += [(name, p) for p in sorted(folder.glob("*.abc"))]
    tasks: list[tuple] = []
    per_collection: Counter = Counter()
    seen_numbers: set[int] = set()
    for collection, path in sources:
        if limit is not None and per_collection[collection] >= limit:
            continue
        if path.suffix.lower() != ".abc":
            tasks.append((collection, path.name, "score", str(path), None))
            per_collection[collection] += 1
            continue
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            text = path.read_bytes().decode("latin-1")
        except OSError as err:
            raise UsageError(f"cannot read {path}: {err.strerror}") from err
        for tune, section in _split_abc(text):
            if limit is not None and per_collection[collection] >= limit:
                break
            head = _header(tune)
            x = (head.get("X") or ["?"])[0]
            number = None
            if collection == "oneills1850":
                m = re.search(r"(\d+)", " ".join(head.get("B", [])))
                number = int(m.group(1)) if m else None
                if number is not None and number in seen_numbers:
                    skipped["duplicate"] += 1
                    continue
                if number is not None:
                    seen_numbers.add(number)
            tasks.append((collection, f"{path.name}:{x}", "abc", tune, (number, section)))
            per_collection[collection] += 1
    return tasks


def _parse_task(task: tuple) -> dict:
    """Worker: one tune -> {"ok": True, ...fields} or {"ok": False, "reason": ...}. Never raises."""
    collection, source, kind, payload, hints = task
    try:
        if kind == "abc":
            return _parse_abc_tune(collection, source, payload, hints)
        return _parse_score_file(collection, source, payload)
    except Exception as err:  # music21 raises anything on malformed input
        return {"ok": False, "reason": "malformed", "source": source, "error": f"{type(err).__name__}: {err}"}


def _parse_abc_tune(collection: str, source: str, text: str, hints: tuple[int | None, str]) -> dict:
    from music21 import converter

    head = _header(text)
    meter = _parse_meter((head.get("M") or [""])[0])
    if meter is None or meter not in METERS:
        return {"ok": False, "reason": "meter", "source": source}
    key = parse_key((head.get("K") or [""])[0])
    if key is None:
        return {"ok": False, "reason": "key", "source": source}
    body = text.split("\n")
    k_line = next((i for i, ln in enumerate(body) if ln.startswith("K:")), len(body))
    if any(re.match(r"M:", ln) or "[M:" in ln for ln in body[k_line + 1:]):
        return {"ok": False, "reason": "meter change", "source": source}
    raw_title = (head.get("T") or [""])[0]
    title = clean_title(raw_title)
    number, section = hints
    genre = "song" if collection == "essenFolksong" else genre_of(" ".join(head.get("R", [])), raw_title,
                                                                  collection, number, section)
    from music21 import stream

    score = converter.parse(_first_voice(text), format="abc")
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    part = score.parts[0] if score.parts else score
    return _finish_tune(part, collection, source, title, genre, meter, key)


def _parse_score_file(collection: str, source: str, path: str) -> dict:
    """A MusicXML chorale: soprano line, meter from its first time signature, key from its signature and
    the bass's last note (a chorale's bass ends on the tonic), title from the file name (BWV number)."""
    from music21 import converter, stream
    from music21 import key as m21key
    from music21 import meter as m21meter

    score = converter.parse(path)
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    parts = list(score.parts) or [score]
    soprano = next((p for p in parts if "soprano" in (p.partName or "").lower()), parts[0])
    bass = next((p for p in parts if "bass" in (p.partName or "").lower()), parts[-1])
    sigs = list(soprano.recurse().getElementsByClass(m21meter.TimeSignature))
    meter = sigs[0].ratioString if sigs else None
    if meter not in METERS or len({s.ratioString for s in sigs}) > 1:
        return {"ok": False, "reason": "meter" if meter not in METERS else "meter change", "source": source}
    keys = list(soprano.recurse().getElementsByClass(m21key.KeySignature))
    if not keys:
        return {"ok": False, "reason": "key", "source": source}
    major = keys[0].asKey("major").tonic.pitchClass
    bass_notes = list(bass.recurse().notes)
    last = bass_notes[-1].pitches[0].pitchClass if bass_notes else major
    tonic, mode = ((major + 9) % 12, "minor") if last == (major + 9) % 12 else (major, "major")
    stem = Path(path).name.split(".mxl")[0].split(".xml")[0].split(".krn")[0]
    title = f"Chorale BWV {stem[3:]}" if stem.lower().startswith("bwv") else stem
    return _finish_tune(soprano, collection, source, title, "chorale", meter, (tonic, mode))


def _finish_tune(part, collection: str, source: str, title: str, genre: str, meter: str,
                 key: tuple[int, str]) -> dict:
    """Top-voice events of a part, aligned to the meter's bars, checked against the vocabulary."""
    from music21 import stream

    measures = list(part.getElementsByClass(stream.Measure)) or [part]
    bars = [_measure_events(m) for m in measures]
    bars = [b for b in bars if b]
    if not bars or not any(ev[0] is not None for b in bars for ev in b):
        return {"ok": False, "reason": "empty", "source": source}
    events, repairs = _align(bars, bar_ticks(meter))
    if events is None:
        return {"ok": False, "reason": "off grid", "source": source}
    if repairs > max(2, len(bars) // 5):
        return {"ok": False, "reason": "irregular bars", "source": source}
    pitches = [p for p, _ in events if p is not None]
    if max(pitches) - min(pitches) > MAX_SPAN:
        return {"ok": False, "reason": "range", "source": source}
    shift = _fold(min(pitches), max(pitches), 0)
    return {"ok": True, "title": title, "genre": genre, "meter": meter, "tonic": key[0], "mode": key[1],
            "pitches": [-1 if p is None else p + shift for p, _ in events], "ticks": [t for _, t in events],
            "collection": collection, "source": source, "repairs": repairs}


def _measure_events(measure) -> list[list]:
    """[pitch|None, Fraction quarter length] of the top voice of one measure: grace notes and chord
    symbols dropped, the highest note of a chord, gaps as rests, same-pitch ties merged."""
    from music21 import chord, harmony, note

    container = measure.voices[0] if getattr(measure, "hasVoices", lambda: False)() else measure
    events: list[list] = []  # [pitch, onset, duration, tie_open]
    pos = Fraction(0)
    for e in container.notesAndRests:
        if isinstance(e, harmony.Harmony) or e.duration.isGrace:
            continue
        ql = Fraction(e.duration.quarterLength).limit_denominator(10_000)
        if ql <= 0:
            continue
        onset = Fraction(e.offset).limit_denominator(10_000)
        if isinstance(e, note.Rest):
            pitch = None
        elif isinstance(e, chord.Chord):
            pitch = max(p.midi for p in e.pitches)
        else:
            pitch = e.pitch.midi
        if events and onset < pos:  # overlap (a chord written as two notes): keep the top one
            prev = events[-1]
            if onset == prev[1]:
                if pitch is not None and (prev[0] is None or pitch > prev[0]):
                    prev[0], prev[2] = pitch, ql
                    pos = onset + ql
                continue
            prev[2] = onset - prev[1]
            pos = onset
        if onset > pos:
            events.append([None, pos, onset - pos, False])
        tie = e.tie.type if getattr(e, "tie", None) is not None else None
        if tie in ("stop", "continue") and events and events[-1][3] and events[-1][0] == pitch:
            events[-1][2] += ql
            events[-1][3] = tie == "continue"
        else:
            events.append([pitch, onset, ql, tie in ("start", "continue")])
        pos = onset + ql
    return [[p, d, t] for p, _, d, t in events]


def _align(bars: list[list[list]], bar: int) -> tuple[list[tuple[int | None, int]] | None, int]:
    """Concatenate measures into (pitch, ticks) events on the meter's grid; None if off the tick grid.

    A short first measure (a pickup) and a short measure followed by a full one (a section's pickup) get a
    rest before them so that they end on a bar line; any other measure that starts out of phase and does
    not complete the bar is moved to the next bar line with a rest. Rests inserted out of phase (an
    uncompensated first ending, a miscounted bar) are counted as repairs."""
    ticks_bars: list[list[list]] = []
    for b in bars:
        out = []
        for pitch, ql, tie_open in b:
            t = ql * TICKS_PER_QUARTER
            if t.denominator != 1:
                return None, 0
            out.append([pitch, int(t), tie_open])
        ticks_bars.append(out)
    lengths = [sum(t for _, t, _ in b) for b in ticks_bars]
    events: list[list] = []  # [pitch, ticks, tie_open]
    now = repairs = 0
    for i, b in enumerate(ticks_bars):
        length, phase = lengths[i], now % bar
        pickup = length < bar and (i == 0 or (i + 1 < len(lengths) and lengths[i + 1] >= bar))
        if pickup:
            pad = -(phase + length) % bar  # end on the bar line the next (full) measure starts on
        elif phase and phase + length != bar:
            pad = bar - phase  # out of phase and not completing the bar: start on the next bar line
        else:
            pad = 0
        repairs += bool(pad and phase)
        if pad:
            if events and events[-1][0] is None:
                events[-1][1] += pad
            else:
                events.append([None, pad, False])
        for j, (pitch, t, tie_open) in enumerate(b):
            prev = events[-1] if events else None
            if j == 0 and not pad and prev is not None and prev[2] and prev[0] == pitch and pitch is not None:
                prev[1] += t  # a tie across the bar line
                prev[2] = tie_open
            else:
                events.append([pitch, t, tie_open])
        now += pad + length
    return [(p, t) for p, t, _ in events], repairs


# ----------------------------------------------------------------------------------------- load + cache


def _fingerprint(collections: Sequence[str], files: Sequence[str | Path] | None, limit: int | None) -> str:
    h = hashlib.blake2b(Path(__file__).read_bytes(), digest_size=8)
    h.update(f"{_music21_version()}|{sorted(collections)}|{limit}".encode())
    for f in files or ():
        st = Path(f).stat()
        h.update(f"{Path(f).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()


def load_tunes(collections: Sequence[str] = DEFAULT_COLLECTIONS, *, files: Sequence[str | Path] | None = None,
               limit: int | None = None, workers: int | None = None, cache: bool = True,
               progress: bool = True) -> TuneCorpus:
    """The tunes of `collections` (or of your own ABC/MusicXML `files`), parsed once and cached.

    `limit` caps the tunes taken per collection (tests, quick looks); `workers` parallel parsers (default:
    all cores; 1 parses in this process). Unparseable tunes are skipped and counted in `.skipped`; exact
    duplicates (same title and notes) too. Raises UsageError for an unknown collection or missing music21.
    """
    collections = tuple(collections)
    if unknown := [c for c in collections if c not in COLLECTIONS]:
        raise UsageError(f"unknown music collection(s) {unknown}; valid: {', '.join(COLLECTIONS)}")
    _corpus_dir()  # fails first, with the install command, when music21 is missing
    if files is not None:
        for f in files:
            if not Path(f).is_file():
                raise UsageError(f"no such music file: {f}")
    key = _fingerprint(collections, files, limit)
    name = "music-" + ("files" if files is not None else "-".join(collections))
    path = data_dir() / "cache" / f"{name[:80]}-{key}.npz"
    if cache and path.is_file():
        try:
            corpus = _read_cache(path)
            corpus.cache_path = path
            return corpus
        except (OSError, ValueError, KeyError) as err:
            logger.warning("ignoring unreadable cache %s: %s", path, err)
    start = time.perf_counter()
    skipped: Counter = Counter()
    tasks = _tasks(collections, files, limit, skipped)
    results = _run_tasks(tasks, workers, progress)
    tunes: list[Tune] = []
    repairs = 0
    seen: set[int] = set()
    for res in results:
        if not res["ok"]:
            skipped[res["reason"]] += 1
            if res.get("error"):
                logger.debug("skipped %s: %s", res["source"], res["error"])
            continue
        tune = Tune(res["title"], res["genre"], res["meter"], res["tonic"], res["mode"],
                    np.asarray(res["pitches"], np.int16), np.asarray(res["ticks"], np.int32),
                    res["collection"], res["source"])
        h = tune_hash(tune)
        if h in seen:
            skipped["duplicate"] += 1
            continue
        seen.add(h)
        repairs += res["repairs"]
        tunes.append(tune)
    corpus = TuneCorpus(tunes, dict(sorted(skipped.items())), repairs, time.perf_counter() - start)
    if not tunes:
        raise UsageError(f"no tune could be parsed from {list(files) if files is not None else collections}")
    if cache:
        corpus.cache_path = _write_cache(path, corpus, name)
    return corpus


def _run_tasks(tasks: list[tuple], workers: int | None, progress: bool) -> list[dict]:
    """`_parse_task` over all tasks, in order, in a spawn pool (fork is unsafe once JAX has threads)."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks) or 1))
    bar = _progress(len(tasks), progress)
    results = []
    if workers == 1:
        for task in tasks:
            results.append(_parse_task(task))
            bar(1)
    else:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for res in pool.imap(_parse_task, tasks, chunksize=4):
                results.append(res)
                bar(1)
    bar(0, close=True)
    return results


def _progress(total: int, enabled: bool):
    """A tqdm bar on a terminal, else a plain line on stderr every 500 tunes (logs, CI)."""
    if not enabled:
        return lambda n, close=False: None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, desc="parsing tunes", unit="tune")

        def update(n: int, close: bool = False) -> None:
            bar.update(n)
            if close:
                bar.close()

        return update
    done = [0]
    start = time.perf_counter()

    def line(n: int, close: bool = False) -> None:
        done[0] += n
        if (n and done[0] % 500 == 0) or close:
            rate = done[0] / max(time.perf_counter() - start, 1e-9)
            print(f"parsing tunes: {done[0]}/{total} ({rate:.0f}/s)", file=sys.stderr, flush=True)

    return line


def _write_cache(path: Path, corpus: TuneCorpus, name: str) -> Path | None:
    """One .npz: concatenated pitches/ticks with offsets, and the metadata as a JSON string (no pickle)."""
    tunes = corpus.tunes
    meta = {
        "tunes": [[t.title, t.genre, t.meter, t.tonic, t.mode, t.collection, t.source] for t in tunes],
        "skipped": corpus.skipped, "repairs": corpus.repairs, "parse_seconds": corpus.parse_seconds,
    }
    offsets = np.cumsum([0] + [len(t.pitches) for t in tunes]).astype(np.int64)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name[:40]}-", suffix=".npz", dir=path.parent)
        with os.fdopen(fd, "wb") as out:
            np.savez_compressed(out, pitches=np.concatenate([t.pitches for t in tunes]).astype(np.int16),
                                ticks=np.concatenate([t.ticks for t in tunes]).astype(np.int32),
                                offsets=offsets, meta=np.asarray(json.dumps(meta, ensure_ascii=False)))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        for stale in path.parent.glob(f"{name[:80]}-{'?' * 16}.npz"):  # this spec's older caches only
            if stale != path:
                stale.unlink(missing_ok=True)
        return path
    except OSError as err:
        logger.info("not caching the music corpus: %s", err)
        return None


def _read_cache(path: Path) -> TuneCorpus:
    with np.load(path, allow_pickle=False) as z:
        pitches, ticks, offsets = z["pitches"], z["ticks"], z["offsets"]
        meta = json.loads(str(z["meta"]))
    tunes = [Tune(title, genre, meter, int(tonic), mode, pitches[offsets[i]:offsets[i + 1]].copy(),
                  ticks[offsets[i]:offsets[i + 1]].copy(), collection, source)
             for i, (title, genre, meter, tonic, mode, collection, source) in enumerate(meta["tunes"])]
    return TuneCorpus(tunes, meta["skipped"], meta["repairs"], meta["parse_seconds"])
