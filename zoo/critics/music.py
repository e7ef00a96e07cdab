"""Critics of melodies: the attributes the prompt asked for, in-key share, structure, range and novelty.

- `key`: the prompt's key honoured, as music21's Krumhansl-Schmuckler key analysis hears the NOTES (not the
  key the model wrote in its header): 1 for the asked tonic and mode, 0.5 for the mode alone, 0 otherwise;
  NaN where the prompt names no key or mode, or a mode the analysis cannot hear (it knows major and
  minor). Judge selections with a different key-finding algorithm (benchmarks/selection_gain.py uses
  music21's Aarden-Essen).
- `meter`: the prompt's meter honoured: 1 if the melody's meter is the one it names ("6/8") or, for a genre
  word ("jig", "reel"), one of the meters that hold 80% of that genre's training captions; NaN where the
  prompt asks for neither.
- `in_key`: share of notes whose pitch class is in the scale of the key the melody declares.
- `structure`: the share of bars that repeat an earlier bar exactly (same rhythm and intervals, at any
  pitch), scored against the training tunes: 1 at their median share, 0.25 (10th-90th percentile of the
  folk corpus: 0.06-0.44; 7% of its tunes repeat no bar), falling linearly to 0 at none and at all.
- `range`: 1 for a range of a fifth to an octave and a half (7-19 semitones), falling linearly to 0 at
  0 and at 31 semitones.
- `novelty`: 1 - share of the melody's 8-note (interval, duration) n-grams found in the training tunes.
- `copied`: the longest run of notes (interval and duration) shared with one training tune; reported, not
  ranked by. A melody copying at least 16 notes and half of itself is flagged.
"""

from __future__ import annotations

import collections
import functools
import logging
import re
from collections.abc import Sequence

import numpy as np

from zoo.critics import Score
from zoo.critics.novelty import NgramIndex
from zoo.errors import UsageError
from zoo.melody.encoding import MODE_OFFSET, MODES, TICKS_PER_QUARTER, Melody, bar_ticks

log = logging.getLogger(__name__)

NGRAM, COPY_MIN = 8, 16
REPEAT_TARGET = 0.25  # the folk corpus's median share of bars repeating an earlier one
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
# Pitch classes of each mode above its tonic: the major scale seen from the degree the mode starts on.
SCALES = {mode: tuple(sorted((p - offset) % 12 for p in _MAJOR)) for mode, offset in MODE_OFFSET.items()}
_TONICS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# The tonic's letter is a capital: "a minor reel" asks for the mode, "A minor" for the key.
_KEY = re.compile(r"\b([A-G])(#|♯|b|♭|-sharp|-flat| sharp| flat)?\s+(?i:(" + "|".join(MODES) + r"))\b")
_MODE = re.compile(r"\b(" + "|".join(MODES) + r")\b", re.IGNORECASE)
_METER = re.compile(r"\b(\d{1,2}/\d{1,2})\b")
_CAPTION = re.compile(r"(?:^|\. )An? ([^.]+?) in ([A-G][#b]?) (\w+), (\d+/\d+)\.$")  # after any "A ..." title

SCORES = {
    "key": Score("key", True, "asked key honoured as music21 (Krumhansl-Schmuckler) hears the notes"),
    "meter": Score("meter", True, "asked meter (or the genre's usual meters) honoured"),
    "in_key": Score("in_key", True, "share of notes in the scale of the declared key"),
    "structure": Score("structure", True, "repeated-bar share, best at the training tunes' median (0.25)"),
    "range": Score("range", True, "pitch range, best from a fifth to an octave and a half"),
    "novelty": Score("novelty", True, "1 - share of its 8-note n-grams found in the training tunes"),
    "copied": Score("copied", False, "longest run of notes copied from one training tune", weight=0.0),
}


def asked(prompt: str, genre_meters: dict[str, set[str]]) -> tuple[int | None, str | None, set[str] | None]:
    """(tonic pitch class, mode, meters) the prompt asks for; None where it asks for none."""
    tonic, mode, meters = None, None, None
    if m := _KEY.search(prompt):
        shift = {"#": 1, "♯": 1, "-sharp": 1, " sharp": 1, "b": -1, "♭": -1, "-flat": -1, " flat": -1}
        tonic = (_TONICS[m.group(1)] + shift.get(m.group(2) or "", 0)) % 12
        mode = m.group(3).lower()
    elif m := _MODE.search(prompt):
        mode = m.group(1).lower()
    if m := _METER.search(prompt):
        meters = {m.group(1)}
    else:
        from zoo.data.music_parse import genre_of

        genre = genre_of("", prompt)
        meters = genre_meters.get(genre) if genre != "unknown" else None
    return tonic, mode, meters


def genre_meters(captions: Sequence[str], coverage: float = 0.8) -> dict[str, set[str]]:
    """genre -> the fewest meters that hold `coverage` of its training captions."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for caption in captions:
        if m := _CAPTION.search(caption):
            counts[m.group(1).lower()][m.group(4)] += 1
    out = {}
    for genre, meters in counts.items():
        total, kept, held = sum(meters.values()), set(), 0
        for meter, n in meters.most_common():
            if held >= coverage * total:
                break
            kept.add(meter)
            held += n
        out[genre] = kept
    return out


def bars(melody: Melody) -> list[tuple]:
    """Each bar as (onset in the bar, duration, interval from the bar's first pitch or None for a rest)."""
    length, out, current, position, first = bar_ticks(melody.meter) / TICKS_PER_QUARTER, [], [], 0.0, None
    for pitch, ql in melody.notes:
        if first is None and pitch is not None:
            first = pitch
        current.append((round(position % length, 4), ql, None if pitch is None else pitch - (first or pitch)))
        position += ql
        if position % length < 1e-6 or position % length > length - 1e-6:
            out.append(tuple(current))
            current, first = [], None
    return out + ([tuple(current)] if current else [])


def structure(melody: Melody) -> float:
    patterns = bars(melody)
    if len(patterns) < 2:
        return 0.0
    repeated = sum(p in patterns[:i] for i, p in enumerate(patterns) if i > 0) / (len(patterns) - 1)
    if repeated <= REPEAT_TARGET:
        return repeated / REPEAT_TARGET
    return 1.0 - (repeated - REPEAT_TARGET) / (1.0 - REPEAT_TARGET)


def pitch_range(melody: Melody) -> float:
    pitches = [p for p, _ in melody.notes if p is not None]
    span = max(pitches) - min(pitches) if pitches else 0
    if 7 <= span <= 19:
        return 1.0
    return max(0.0, span / 7 if span < 7 else 1 - (span - 19) / 12)


def in_key(melody: Melody) -> float:
    scale = {(melody.tonic + s) % 12 for s in SCALES[melody.mode]}
    pitches = [p % 12 for p, _ in melody.notes if p is not None]
    return sum(p in scale for p in pitches) / len(pitches) if pitches else float("nan")


def note_stream(melody: Melody):
    """The melody as a music21 stream of notes and rests, built directly (writing and re-reading MIDI costs
    far more)."""
    from music21 import note, stream

    part = stream.Stream()
    for pitch, ql in melody.notes:
        part.append(note.Rest(quarterLength=ql) if pitch is None else note.Note(midi=pitch, quarterLength=ql))
    return part


def analysed_key(melody: Melody, algorithm: str = "KrumhanslSchmuckler") -> tuple[int, str] | None:
    """(tonic pitch class, mode) as one of music21's key-finding algorithms (music21.analysis.discrete:
    KrumhanslSchmuckler, AardenEssen ...) hears the notes; None for a melody of rests only."""
    from music21.analysis import discrete

    if not any(p is not None for p, _ in melody.notes):
        return None
    (tonic, mode, _), _ = getattr(discrete, algorithm)().process(note_stream(melody))
    return tonic.pitchClass, mode


def units(melody: Melody) -> list[str]:
    """Notes as (interval from the previous note, duration): what novelty compares, at any pitch."""
    notes = [(p, ql) for p, ql in melody.notes if p is not None]
    return [f"{b[0] - a[0]}:{b[1]:g}" for a, b in zip(notes, notes[1:], strict=False)]


@functools.cache
def corpus_index(spec: str, limit: int | None) -> NgramIndex:
    """The n-grams of the training tunes of a music data spec: `limit` per collection, as training's
    `max_tunes` took them."""
    from zoo.data.music import load_corpus

    tunes = load_corpus(spec, limit=limit).tunes
    return NgramIndex([units(t.melody) for t in tunes], NGRAM)


class MelodyCritic:
    """Scores melodies of a model trained on `data` (its config's music data spec, `max_tunes` of them, 0 for
    all) whose training captions are `captions` (they give each genre's meters)."""

    available_scores = tuple(SCORES.values())

    def __init__(self, captions: Sequence[str], data: str, max_tunes: int = 0):
        self.genre_meters = genre_meters(captions)
        self.data, self.limit = data, max_tunes or None

    def __call__(self, prompt: str, melodies: Sequence[Melody]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        tonic, mode, meters = asked(prompt, self.genre_meters)
        scores = {
            "in_key": np.array([in_key(m) for m in melodies]),
            "structure": np.array([structure(m) for m in melodies]),
            "range": np.array([pitch_range(m) for m in melodies]),
        }
        if meters is not None:
            scores["meter"] = np.array([float(m.meter in meters) for m in melodies])
        if mode in ("major", "minor"):
            scores["key"] = np.array([self._key_score(m, tonic, mode) for m in melodies])
        copies = np.zeros(len(melodies), bool)
        index = self._index()
        if index is not None:
            found = [index.overlap(units(m)) for m in melodies]
            scores["novelty"] = np.array([1.0 - share for share, _ in found])
            scores["copied"] = np.array([float(span) for _, span in found])
            sizes = np.array([len(units(m)) for m in melodies])
            copies = (scores["copied"] >= COPY_MIN) & (scores["copied"] >= 0.5 * sizes)
        return scores, copies

    @staticmethod
    def _key_score(melody: Melody, tonic: int | None, mode: str) -> float:
        heard = analysed_key(melody)
        if heard is None:
            return 0.0
        if heard[1] != mode:
            return 0.0
        return 1.0 if tonic is None or heard[0] == tonic else 0.5

    def _index(self) -> NgramIndex | None:
        try:
            return corpus_index(self.data, self.limit)
        except UsageError as e:
            log.warning("note: novelty is not scored: %s", e)
            return None

    @staticmethod
    def features(melodies: Sequence[Melody]) -> np.ndarray:
        """float32 [N, 25 + 8]: histograms of intervals (-12..12, clipped) and of durations, what diversity
        compares."""
        durations = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
        out = np.zeros((len(melodies), 25 + len(durations)), np.float32)
        for i, m in enumerate(melodies):
            pitches = [p for p, _ in m.notes if p is not None]
            for a, b in zip(pitches, pitches[1:], strict=False):
                out[i, int(np.clip(b - a, -12, 12)) + 12] += 1
            for _, ql in m.notes:
                out[i, 25 + int(np.argmin([abs(ql - d) for d in durations]))] += 1
        return out
