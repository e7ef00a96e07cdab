"""The melody event encoding: the vocabulary, `Melody`, encode/decode and transposition.

    BOS METER KEY  BAR ev ev ...  BAR ev ...  EOS        ev = (PITCH | REST) DUR [DUR ...]

* `METER` (one of `METERS`) and `KEY` (12 tonics x 7 modes) come first, so that the model commits to a
  meter and a key/mode before any note, a caption can steer them, and `decode` hands a MIDI writer its time
  signature and key signature.
* Time is on a grid of `TICKS_PER_QUARTER` = 24 ticks per quarter note: the smallest grid that holds
  both the 32nd notes of O'Neill's ornamented airs (3 ticks) and the triplets of reels and hornpipes (8 and
  4 ticks). `DUR` tokens are 1..24 ticks (anything up to a quarter), then dotted/whole values up to two
  4/4 bars; a rare longer note is a run of DUR tokens that add up (greedy). A duration off the grid does
  not encode.
* `BAR` marks each bar line of the METRICAL grid (every `bar_ticks(meter)` from the start): the corpus pads
  a pickup with a leading rest to a full bar and re-aligns a bar that notation leaves out of phase with the
  meter, so in every encoded tune the notes' onsets are their true metrical positions. A sampler can track
  the position inside the bar from BAR and DUR tokens alone and mask durations that would cross it
  (zoo.melody.grammar is that grammar), and a MIDI file gets notes on the beats its time signature claims.
  A note held across a bar line (rare) keeps one PITCH: the BAR comes after it.
* Pitches are absolute MIDI numbers `PITCH_MIN..PITCH_MAX`, so `transpose` is a shift of PITCH tokens and
  of the KEY's tonic; an out-of-range result is folded by octaves.

`encode` takes a `Melody` or a melody held as arrays (the corpus's `Tune`). `decode` is tolerant (it reads
model output): tokens after EOS are ignored, a DUR without a note is dropped, a missing header means 4/4
C major.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

VERSION = 1  # exports record it: bump when the encoding changes meaning

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
_KEY_RE = re.compile(r"^\s*([A-Ga-g])([#b]?)\s*([A-Za-z]*)")
_MODE_PREFIX = {"": "major", "maj": "major", "ion": "major", "m": "minor", "min": "minor", "aeo": "minor",
                "dor": "dorian", "mix": "mixolydian", "phr": "phrygian", "lyd": "lydian", "loc": "locrian"}


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


def parse_key(value: str) -> tuple[int, str] | None:
    """(tonic pitch class, mode) of a key as ABC's K: field and MIDI key signatures write it ("D", "Ador",
    "E Minor", "F#m", "HP"), or None."""
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
    title: str = ""  # what the MIDI file is named inside: a sample's prompt, so a kept file carries its caption

    @property
    def key_name(self) -> str:
        return f"{tonic_name(self.tonic, self.mode)} {self.mode}"

    @property
    def quarter_length(self) -> float:
        return float(sum(d for _, d in self.notes))


class MelodyArrays(Protocol):
    """A melody held as arrays, as the corpus's `Tune` (a dataclass) holds it."""

    meter: str
    tonic: int
    mode: str
    pitches: np.ndarray  # int16, -1 for a rest
    ticks: np.ndarray  # int32 durations, TICKS_PER_QUARTER per quarter note


# --------------------------------------------------------------------------------------------- encoding


def encode(melody: Melody | MelodyArrays) -> np.ndarray:
    """Tokens of a melody (see the module docstring): int32[n], BOS first and EOS last.

    Raises ValueError for what the vocabulary cannot hold: an unknown meter or mode, a pitch out of range,
    a duration off the grid.
    """
    meter, tonic, mode = melody.meter, melody.tonic, melody.mode
    if isinstance(melody, Melody):
        events = [(-1 if p is None else p, _to_ticks(d)) for p, d in melody.notes]
    else:
        events = list(zip(melody.pitches.tolist(), melody.ticks.tolist(), strict=True))
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


# ---------------------------------------------------------------------------------------- transposition

def fold(lo: int, hi: int, shift: int) -> int:
    """`shift` moved by octaves so that [lo, hi] + shift fits PITCH_MIN..PITCH_MAX (if any octave can)."""
    while hi + shift > PITCH_MAX and lo + shift - 12 >= PITCH_MIN:
        shift -= 12
    while lo + shift < PITCH_MIN and hi + shift + 12 <= PITCH_MAX:
        shift += 12
    return shift


def transpose(melody: Melody | MelodyArrays, semitones: int) -> Melody | MelodyArrays:
    """The melody moved by `semitones`, its key with it. If that would leave PITCH_MIN..PITCH_MAX the
    notes move by an extra octave (the key is the same either way), so the result always encodes."""
    if not isinstance(melody, Melody):
        notes = melody.pitches[melody.pitches >= 0]
        shift = fold(int(notes.min()), int(notes.max()), semitones) if notes.size else semitones
        pitches = np.where(melody.pitches >= 0, melody.pitches + shift, -1).astype(np.int16)
        return replace(melody, tonic=(melody.tonic + semitones) % 12, pitches=pitches)
    sounding = [p for p, _ in melody.notes if p is not None]
    shift = fold(min(sounding), max(sounding), semitones) if sounding else semitones
    moved = tuple((None if p is None else p + shift, d) for p, d in melody.notes)
    return replace(melody, tonic=(melody.tonic + semitones) % 12, notes=moved)


def transpose_tokens(tokens: np.ndarray, semitones: int) -> np.ndarray:
    """`transpose` on an encoded melody: PITCH tokens and the KEY token move, everything else stays."""
    tokens = np.asarray(tokens, np.int32)
    is_pitch = (tokens >= PITCH_BASE) & (tokens < DUR_BASE)
    out = tokens.copy()
    if is_pitch.any():
        pitches = tokens[is_pitch] - PITCH_BASE + PITCH_MIN
        shift = fold(int(pitches.min()), int(pitches.max()), semitones)
        out[is_pitch] += shift
    is_key = (tokens >= KEY_BASE) & (tokens < PITCH_BASE)
    key = tokens[is_key] - KEY_BASE
    out[is_key] = KEY_BASE + key // 12 * 12 + (key % 12 + semitones) % 12
    return out
