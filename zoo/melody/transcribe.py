"""Audio -> melody: a hummed, sung or played tune transcribed onto the encoding's grid, to prime `music`.

    python sample.py --model music --prompt "a jig" --primer tune.wav [--tempo 120] [--meter 6/8]

1. **Pitch.** Any file librosa reads is loaded as mono 16 kHz; `librosa.pyin` (probabilistic YIN) tracks
   the fundamental between C2 and C7 every 16 ms and says which frames are voiced.
2. **Notes.** The voiced frames' pitches are rounded to semitones (a 5-frame median first, so vibrato and
   scoops do not split a note); a note is a run of one pitch at least 50 ms long, and a run is split again
   where an onset (librosa's spectral-flux onset detector) falls inside it with a swell in level, since a
   tune repeats notes (a singer's vibrato also sets off the detector, but keeps the level).
3. **Time.** The tatum (the tune's most common note length, taken to be an eighth note) is the mode of the
   inter-onset intervals, or 60 / (2 x --tempo) s. Onsets are then placed on a grid of half tatums
   (sixteenths) one by one, the step re-estimated after each (a slow follower, so a player who drifts is
   followed). Whether beats
   hold 2 or 3 tatums, and how many beats a bar holds, is read from where the long notes fall
   (--meter overrides); the bar lines go where the long notes fall most.
4. **Key.** Krumhansl-Kessler profiles against the duration-weighted pitch classes: 24 major and minor
   keys.

What the sampler needs is a `Melody`; `Transcription` also keeps the notes in seconds (what `mir_eval`
scores, see benchmarks/transcription.py) and says what it heard. Refused with a UsageError (exit 2): a file
that is not audio, silence, audio with too little pitched sound to follow (speech or noise), and audio
whose pitched sound lies off the tracked note's harmonics (a chord; two instruments playing apart are not
always caught, see `harmonicity`). librosa and its numba kernels load only when this module runs, never on the
default sampling path.
"""

from __future__ import annotations

import logging
import pathlib
import warnings
from dataclasses import dataclass

import numpy as np

from zoo.errors import UsageError
from zoo.melody.encoding import METERS, TICKS_PER_QUARTER, Melody, bar_ticks, tonic_name, transpose

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
HOP = 256  # 16 ms frames
FMIN, FMAX = 65.4, 2093.0  # C2..C7
MIN_NOTE_S = 0.05
ATTACK = 1.3  # a same-pitch run is split where the level swells by this much (a new attack)
MIN_VOICED_SHARE = 0.5  # of the sounding frames: below it there is no single line to follow
MIN_HARMONICITY = 0.85  # of the pitched sound on the tracked note's harmonics: below it, other notes sound
SILENCE_DB = -50.0  # frames this far below the loudest are silence
MAX_SECONDS = 120.0
GRID_TICKS = TICKS_PER_QUARTER // 4  # onsets go on a sixteenth-note grid: half the tatum, read as an eighth
FOLLOW = 0.15  # how fast the tatum follows a drifting tempo
# Krumhansl-Kessler key profiles (C major, C minor), for the key the transcription reports.
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
# meter: (sixteenths per beat, beats per bar), the meters a transcription chooses among.
METER_SHAPES = {"2/4": (4, 2), "3/4": (4, 3), "4/4": (4, 4), "6/8": (6, 2), "9/8": (6, 3), "12/8": (6, 4)}


@dataclass(frozen=True)
class Transcription:
    """A transcribed tune: the notes in seconds as heard, and the melody on the encoding's grid."""

    notes: tuple[tuple[float, float, int], ...]  # (onset s, offset s, MIDI pitch)
    melody: Melody
    tatum_s: float  # seconds per eighth note at the start
    voiced_share: float

    @property
    def tempo(self) -> float:
        """Quarter notes per minute."""
        return 60.0 / (2 * self.tatum_s)

    def describe(self) -> str:
        names = " ".join(_note_name(p) for _, _, p in self.notes[:12])
        more = f" ... ({len(self.notes)} notes)" if len(self.notes) > 12 else ""
        return (f"heard {names}{more}; {self.melody.meter} at quarter = {self.tempo:.0f}, "
                f"{self.melody.key_name}")


def _note_name(pitch: int) -> str:
    return f"{tonic_name(pitch % 12, 'major')}{pitch // 12 - 1}"


def load_audio(path: str | pathlib.Path) -> np.ndarray:
    """float32 mono samples at SAMPLE_RATE (UsageError: unreadable, empty, silent or too long)."""
    import librosa

    try:
        with warnings.catch_warnings():  # librosa warns as it falls back from soundfile to audioread
            warnings.simplefilter("ignore")
            audio, _ = librosa.load(str(path), sr=SAMPLE_RATE, mono=True, duration=MAX_SECONDS + 1)
    except Exception as err:  # soundfile and audioread raise many kinds on a file that is not audio
        raise UsageError(f"{path} is neither a MIDI file nor audio that librosa can read "
                         f"({type(err).__name__})") from None
    if len(audio) > MAX_SECONDS * SAMPLE_RATE:
        raise UsageError(f"{path} is longer than {MAX_SECONDS:.0f} s; a primer is a few bars: trim it")
    if len(audio) < SAMPLE_RATE // 4 or float(np.abs(audio).max(initial=0.0)) < 1e-3:
        raise UsageError(f"{path} is silent (or shorter than a quarter of a second): nothing to transcribe")
    return audio


def transcribe(path: str | pathlib.Path, tempo: float | None = None, meter: str | None = None) -> Transcription:
    """The tune in the audio file at `path` (see the module docstring). `tempo` in quarter notes per minute
    and `meter` ("6/8") override what is estimated."""
    if meter is not None and meter not in METER_SHAPES:
        raise UsageError(f"--meter must be one of {', '.join(METER_SHAPES)}, got {meter!r}")
    if tempo is not None and not 20 <= tempo <= 400:
        raise UsageError(f"--tempo must be between 20 and 400 quarter notes per minute, got {tempo}")
    return transcribe_audio(load_audio(path), tempo, meter, name=str(path))


def transcribe_audio(audio: np.ndarray, tempo: float | None = None, meter: str | None = None,
                     name: str = "the audio") -> Transcription:
    import librosa

    f0, voiced, _ = librosa.pyin(audio, fmin=FMIN, fmax=FMAX, sr=SAMPLE_RATE, frame_length=1024,
                                 hop_length=HOP, resolution=0.2)
    rms = librosa.feature.rms(y=audio, frame_length=1024, hop_length=HOP)[0][:len(f0)]
    sounding = librosa.amplitude_to_db(rms, ref=np.max) > SILENCE_DB
    voiced_share = float((voiced & sounding).sum() / max(1, sounding.sum()))
    if voiced_share < MIN_VOICED_SHARE:
        raise UsageError(f"cannot follow one melodic line in {name}: only {voiced_share:.0%} of its sound has a "
                         "clear pitch (a chord, several instruments, speech or noise?); hum or play one line")
    harmonic = harmonicity(audio, f0, voiced)
    if harmonic < MIN_HARMONICITY:
        raise UsageError(f"cannot follow one melodic line in {name}: only {harmonic:.0%} of its pitched sound lies "
                         "on one note's harmonics (a chord, or several instruments?); hum or play one line")
    onsets = librosa.onset.onset_detect(y=audio, sr=SAMPLE_RATE, hop_length=HOP, units="frames", backtrack=False)
    notes = segment(f0, voiced, attacks(onsets, rms))
    if len(notes) < 2:
        raise UsageError(f"heard {len(notes)} note(s) in {name}: a primer needs a phrase of several notes")
    tatum = 60.0 / (2 * tempo) if tempo is not None else estimate_tatum([n[0] for n in notes])
    positions, steps = place_on_grid([n[0] for n in notes], tatum / 2)
    ends = [p + max(1, round((off - on) / g)) for p, (on, off, _), g in zip(positions, notes, steps, strict=True)]
    meter, phase = choose_meter(positions, ends, meter)
    melody = to_melody(positions, ends, [n[2] for n in notes], meter, phase)
    return Transcription(tuple(notes), melody, tatum, voiced_share)


def harmonicity(audio: np.ndarray, f0: np.ndarray, voiced: np.ndarray) -> float:
    """The median, over voiced frames, of the share of spectral energy (50 Hz-5 kHz) within 3% of a
    harmonic of the tracked pitch: near 1 for one voice or instrument, even at 10 dB SNR (0.92), lower
    where other notes sound (a 4-note chord: 0.75)."""
    import librosa

    power = np.abs(librosa.stft(audio, n_fft=2048, hop_length=HOP)) ** 2
    freqs = librosa.fft_frequencies(sr=SAMPLE_RATE, n_fft=2048)
    band = (freqs > 50) & (freqs < 5000)
    frames = np.flatnonzero(voiced[:power.shape[1]])
    if not len(frames):
        return 0.0
    ratio = freqs[band][None, :] / f0[frames][:, None]  # [frames, bins]: in harmonics of the pitch
    near = np.abs(ratio - np.round(ratio)) < 0.03 * np.round(ratio).clip(1)
    near &= (np.round(ratio) >= 1) & (np.round(ratio) <= 40)
    spectrum = power[band][:, frames].T
    shares = (spectrum * near).sum(axis=1) / np.maximum(spectrum.sum(axis=1), 1e-12)
    return float(np.median(shares))


def attacks(onsets: np.ndarray, rms: np.ndarray) -> list[int]:
    """The onset frames where the sound swells anew (the loudest of the next 4 frames at least ATTACK times
    the quietest of the 4 before): a repeated note, not a singer's vibrato, which the onset detector
    also reports but which keeps the level."""
    out = []
    for f in np.asarray(onsets, int).tolist():
        before = float(rms[max(0, f - 4):f].min(initial=np.inf)) if f > 0 else 0.0
        if float(rms[f:f + 4].max(initial=0.0)) >= ATTACK * before:
            out.append(f)
    return out


def segment(f0: np.ndarray, voiced: np.ndarray, cuts: list[int]) -> list[tuple[float, float, int]]:
    """Notes (onset s, offset s, MIDI pitch) from a pitch track: runs of one rounded pitch, split at the
    frames in `cuts` (attacks)."""
    from scipy.ndimage import median_filter

    midi = np.where(voiced, np.round(12 * np.log2(np.where(voiced, f0, 440.0) / 440.0) + 69), -1).astype(int)
    midi = median_filter(midi, size=5, mode="nearest")
    frame_s = HOP / SAMPLE_RATE
    cuts = set(cuts)
    notes, start = [], 0
    for i in range(1, len(midi) + 1):
        if i == len(midi) or midi[i] != midi[start] or (i in cuts and i - start > 6):
            if midi[start] >= 0 and (i - start) * frame_s >= MIN_NOTE_S:
                notes.append((start * frame_s, i * frame_s, int(midi[start])))
            start = i
    return notes


def estimate_tatum(onsets: list[float]) -> float:
    """Seconds per tatum: the most common inter-onset interval (on a log scale, 5% bins), refined by the
    mean of the intervals near it."""
    iois = np.diff(np.asarray(onsets))
    iois = iois[(iois > 0.06) & (iois < 1.5)]
    if not len(iois):
        return 0.25
    bins = np.exp(np.arange(np.log(0.06), np.log(1.5), 0.05))
    counts = np.histogram(iois, bins)[0].astype(float)
    counts = np.convolve(counts, [0.5, 1.0, 0.5], mode="same")  # neighbours share a slightly drifting value
    mode = bins[int(np.argmax(counts))] * np.exp(0.025)
    near = iois[np.abs(np.log(iois / mode)) < 0.2]
    return float(near.mean()) if len(near) else float(mode)


def place_on_grid(onsets: list[float], step: float) -> tuple[list[int], list[float]]:
    """Each onset's index on a grid of `step` seconds (the first at 0), and the step in force there, which
    follows slow drift."""
    positions, steps = [0], [step]
    for a, b in zip(onsets, onsets[1:], strict=False):
        n = max(1, round((b - a) / step))
        if n <= 8:  # a long note or a rest says little about the pulse
            step += FOLLOW * ((b - a) / n - step)
        positions.append(positions[-1] + n)
        steps.append(step)
    return positions, steps


def choose_meter(positions: list[int], ends: list[int], meter: str | None) -> tuple[str, int]:
    """(meter, the grid index of the first bar line): where long notes fall most often is where the beats
    and bar lines are. Longer notes weigh more; a meter's score is its downbeats' and beats' mean weight
    over the mean weight of all grid steps."""
    length = max(ends) + 1
    weight = np.zeros(length)
    for p, e in zip(positions, ends, strict=True):
        weight[p] += 1.0 + min(e - p, 12)
    overall = weight.mean() + 1e-9
    best = (-np.inf, "4/4", 0)
    for name, (per_beat, beats) in METER_SHAPES.items():
        if meter is not None and name != meter:
            continue
        bar = per_beat * beats
        for phase in range(bar):
            downbeats = weight[phase::bar].mean() / overall
            on_beats = weight[phase % per_beat::per_beat].mean() / overall
            score = downbeats + 2.0 * on_beats - 0.02 * bar  # the shorter of two equally good bars
            if score > best[0]:
                best = (score, name, phase)
    return best[1], best[2]


def to_melody(positions: list[int], ends: list[int], pitches: list[int], meter: str, phase: int) -> Melody:
    """The notes on the grid as a `Melody`: a leading rest pads the first bar (a pickup), each note lasts to
    the next onset unless it ended earlier (then a rest), keyed by `estimate_key`."""
    bar = bar_ticks(meter) // GRID_TICKS
    lead = (-phase) % bar if positions[0] < phase else (positions[0] - phase) % bar
    quarters = GRID_TICKS / TICKS_PER_QUARTER
    events: list[tuple[int | None, float]] = [(None, lead * quarters)] if lead else []
    for i, (p, e, pitch) in enumerate(zip(positions, ends, pitches, strict=True)):
        stop = min(e, positions[i + 1]) if i + 1 < len(positions) else e
        events.append((pitch, (stop - p) * quarters))
        if i + 1 < len(positions) and positions[i + 1] > stop:
            events.append((None, (positions[i + 1] - stop) * quarters))
    tonic, mode = estimate_key(pitches, [e - p for p, e in zip(positions, ends, strict=True)])
    return transpose(Melody(meter, tonic, mode, tuple(events)), 0)  # folds pitches into the encoding's range


def estimate_key(pitches: list[int], durations: list[int]) -> tuple[int, str]:
    """(tonic pitch class, "major" | "minor") by Krumhansl-Kessler correlation."""
    histogram = np.zeros(12)
    for pitch, d in zip(pitches, durations, strict=True):
        histogram[pitch % 12] += d
    best = max(((np.corrcoef(histogram, np.roll(profile, tonic))[0, 1], tonic, mode)
                for mode, profile in (("major", MAJOR), ("minor", MINOR)) for tonic in range(12)))
    return best[1], best[2]


assert all(m in METERS for m in METER_SHAPES)
