"""How well `--primer AUDIO` hears a tune: zoo.melody.transcribe on held-out folk tunes rendered as audio.

    python -m benchmarks.transcription [--tunes 40] [--seconds 20] [--json [PATH]]

The tunes are `music`'s validation tunes (never trained on), their first `--seconds` seconds, each at a
tempo drawn between 80 and 140 quarter notes per minute. They are rendered with two timbres unlike the
zoo's own renderer (zoo.melody.render, additive harmonics under one envelope):

- `pluck`: a Karplus-Strong plucked string (a noise burst through a decaying delay line), detached notes;
- `voice`: a sung "ah": a band-limited sawtooth through three vowel formants, 5.5 Hz vibrato of +-30
  cents, soft attacks, legato (each note runs into the next), as a person hums or sings.

Each is scored clean, with white noise at 10 dB SNR, and with tempo drift (the tempo glides from 0.85x to
1.15x over the excerpt). `mir_eval.transcription` gives note precision, recall and F1 with onset (50 ms)
and pitch (50 cents) matching, offsets ignored: the notes as heard, in seconds. Then what the sampler is
told: the meter's beat grouping (simple or compound), its pulse (that and beats in twos or threes: 2/4 and
4/4 alike, 6/8 and 12/8 alike, which a doubled tempo also blurs) and the meter against the notated one
(2/2 counted as 4/4: the same bar, which only notation tells apart), the key
(tonic and major/minor against the notated key, modal tunes against their relative major or minor), and
the tempo within 5% (or within 5% of half or double it, an octave error). Seconds of computing per second
of audio are reported too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import record
from zoo import cli
from zoo.melody import encoding, transcribe

RATE = 22_050
TIMBRES = ("pluck", "voice")
CONDITIONS = ("clean", "noise", "drift")
COMPOUND = ("6/8", "9/8", "12/8")
SAME_BAR = {"2/2": "4/4"}  # the same bar and beats on the transcriber's grid: notation, not sound, tells them apart
# Beats in twos or threes, each of two or three parts: what is heard when the bar's length (2/4 or 4/4, 6/8
# or 12/8) is not, which a doubled or halved tempo also blurs.
PULSE = {"2/4": "duple simple", "4/4": "duple simple", "2/2": "duple simple", "3/4": "triple simple",
         "6/8": "duple compound", "12/8": "duple compound", "9/8": "triple compound"}
VOWEL_AH = ((700, 130, 1.0), (1220, 70, 0.5), (2600, 160, 0.25))  # formants: centre Hz, width Hz, gain
RELATIVE = {"major": ("major", 0), "minor": ("minor", 0), "dorian": ("minor", 0), "mixolydian": ("major", 0),
            "lydian": ("major", 0), "phrygian": ("minor", 0), "locrian": ("minor", 0)}


def reference_notes(melody: encoding.Melody, tempo: float, seconds: float, drift: bool
                    ) -> list[tuple[float, float, int]]:
    """(onset s, offset s, pitch) of the melody's notes that start within `seconds`, at `tempo` quarter
    notes per minute, gliding from 0.85x to 1.15x of it when `drift`."""
    total_q = melody.quarter_length

    def at(q: float) -> float:  # seconds at quarter position q; with drift the rate rises linearly
        if not drift:
            return q * 60.0 / tempo
        a, b = 0.85 * tempo / 60.0, 0.3 * tempo / 60.0 / max(total_q, 1.0)  # quarters per second: a + b q
        return float(np.log1p(b * q / a) / b)

    notes, q = [], 0.0
    for pitch, length in melody.notes:
        if pitch is not None and at(q) < seconds:
            notes.append((at(q), at(q + length), pitch))
        q += length
    return notes


def pluck(freq: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    period = max(2, round(RATE / freq))
    n = int(seconds * RATE)
    out = np.zeros(n + period + 1)  # out[0] stays 0: the sample before the burst
    out[1:period + 1] = rng.uniform(-1, 1, period)
    for start in range(period + 1, n + 1, period):  # y[i] = 0.996 * (y[i-N] + y[i-N-1]) / 2, a period at a time
        block = out[start - period - 1:start]
        stop = min(start + period, n + 1)
        out[start:stop] = (0.996 * 0.5 * (block[1:] + block[:-1]))[:stop - start]
    fade = np.minimum(1.0, (n - np.arange(n)) / (0.01 * RATE))
    return out[1:n + 1] * fade


def voice(freq: float, seconds: float) -> np.ndarray:
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    vibrato = freq * 2 ** (0.3 / 12 * np.sin(2 * np.pi * 5.5 * t) * np.minimum(1.0, t / 0.2))
    phase = 2 * np.pi * np.cumsum(vibrato) / RATE
    tone = np.zeros(n)
    for k in range(1, 30):  # sawtooth partials, each weighted by the vowel's formants (an "ah")
        f = k * freq
        if f >= RATE / 2:
            break
        formants = sum(a / (1 + ((f - c) / w) ** 2) for c, w, a in VOWEL_AH)
        tone += (1.0 / k) * (0.15 + formants) * np.sin(k * phase)
    envelope = np.minimum(1.0, t / 0.06) * np.minimum(1.0, (seconds - t) / 0.02)
    return tone * envelope


def render(notes: list[tuple[float, float, int]], timbre: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    end = max(off for _, off, _ in notes) + 0.5
    audio = np.zeros(int(end * RATE) + RATE)
    for i, (on, off, pitch) in enumerate(notes):
        freq = 440.0 * 2 ** ((pitch - 69) / 12)
        if timbre == "pluck":
            sound = pluck(freq, max(0.05, 0.9 * (off - on)), rng)
        else:  # legato: to the next onset, overlapping it by 20 ms
            until = notes[i + 1][0] if i + 1 < len(notes) else off
            sound = voice(freq, max(0.05, until - on + 0.02))
        start = int(on * RATE)
        audio[start:start + len(sound)] += sound
    return (0.5 * audio / np.abs(audio).max()).astype(np.float32)


def score(reference: list[tuple[float, float, int]], heard: transcribe.Transcription) -> dict[str, float]:
    import mir_eval

    def arrays(notes: Sequence[tuple[float, float, int]]) -> tuple[np.ndarray, np.ndarray]:
        intervals = np.array([[on, max(off, on + 0.01)] for on, off, _ in notes])
        return intervals, 440.0 * 2 ** ((np.array([p for _, _, p in notes]) - 69) / 12)

    (ri, rp), (ei, ep) = arrays(reference), arrays(heard.notes)
    p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(ri, rp, ei, ep, offset_ratio=None)
    return {"precision": float(p), "recall": float(r), "f1": float(f)}


def tempo_right(estimated: float, true: float) -> tuple[bool, bool]:
    """(within 5%, within 5% of the tempo or its half or double)."""
    close = lambda a: abs(a / true - 1) <= 0.05  # noqa: E731
    return close(estimated), close(estimated) or close(2 * estimated) or close(estimated / 2)


def run(tunes: int, seconds: float, seed: int) -> dict:
    from benchmarks.music_eval import held_out_split
    from configs import music

    _, val = held_out_split(music.get_config())
    rng = np.random.default_rng(seed)
    picked = [val[i] for i in rng.permutation(len(val))[:tunes]]
    rows: dict[str, list[dict]] = {f"{t}/{c}": [] for t in TIMBRES for c in CONDITIONS}
    audio_s = compute_s = 0.0
    for index, tune in enumerate(picked):
        melody = encoding.decode(encoding.encode(tune))
        if melody.notes and melody.notes[0][0] is None:  # the pickup's pad: the recording starts on a note
            melody = encoding.Melody(melody.meter, melody.tonic, melody.mode, melody.notes[1:])
        tempo = float(rng.uniform(80, 140))
        for condition in CONDITIONS:
            reference = reference_notes(melody, tempo, seconds, condition == "drift")
            for timbre in TIMBRES:
                audio = render(reference, timbre, seed + index)
                if condition == "noise":  # white noise 10 dB below the signal's power
                    power = float(np.mean(audio ** 2))
                    audio = audio + np.random.default_rng(index).normal(0, np.sqrt(power / 10), len(audio))
                resampled = _resample(audio)
                start = time.perf_counter()
                try:
                    heard = transcribe.transcribe_audio(resampled)
                except Exception as err:  # a refusal counts as hearing nothing
                    rows[f"{timbre}/{condition}"].append({"tune": tune.title, "refused": str(err)})
                    continue
                compute_s += time.perf_counter() - start
                audio_s += len(resampled) / transcribe.SAMPLE_RATE
                mode, _ = RELATIVE[melody.mode]
                exact, octave = tempo_right(heard.tempo, tempo)
                rows[f"{timbre}/{condition}"].append({
                    "tune": tune.title, **score(reference, heard),
                    "meter": heard.melody.meter, "true_meter": melody.meter,
                    "meter_right": SAME_BAR.get(heard.melody.meter, heard.melody.meter)
                    == SAME_BAR.get(melody.meter, melody.meter),
                    "grouping_right": (heard.melody.meter in COMPOUND) == (melody.meter in COMPOUND),
                    "pulse_right": PULSE.get(heard.melody.meter) == PULSE.get(melody.meter),
                    "key_right": (heard.melody.tonic, heard.melody.mode) == _relative_key(melody),
                    "mode_right": heard.melody.mode == mode, "tempo": heard.tempo, "true_tempo": tempo,
                    "tempo_right": exact, "tempo_octave_right": octave})
    summary = {}
    for name, scored in rows.items():
        ok = [r for r in scored if "f1" in r]
        summary[name] = {"tunes": len(scored), "refused": len(scored) - len(ok),
                         **{k: float(np.mean([r[k] for r in ok])) if ok else float("nan")
                            for k in ("precision", "recall", "f1", "meter_right", "grouping_right", "pulse_right",
                                      "key_right",
                                      "mode_right", "tempo_right", "tempo_octave_right")}}
    return {"tunes": len(picked), "seconds": seconds, "seed": seed, "summary": summary, "rows": rows,
            "compute_s_per_audio_s": compute_s / max(audio_s, 1e-9)}


def _relative_key(melody: encoding.Melody) -> tuple[int, str]:
    """The notated key as a major/minor key: a modal tune as the major or minor key with its tonic."""
    return melody.tonic, RELATIVE[melody.mode][0]


def _resample(audio: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.resample(audio, orig_sr=RATE, target_sr=transcribe.SAMPLE_RATE)


def report(result: dict) -> str:
    lines = [f"{result['tunes']} held-out tunes, first {result['seconds']:.0f} s each; note F1 with 50 ms onsets and "
             f"50-cent pitches (mir_eval), offsets ignored; {result['compute_s_per_audio_s']:.2f} s of computing per "
             "second of audio", "",
             "| timbre / condition | precision | recall | F1 | beat grouping | pulse | meter | key | mode | tempo | "
             "tempo (or x2, /2) | refused |", "|---" * 12 + "|"]
    for name, s in result["summary"].items():
        lines.append(f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | **{s['f1']:.3f}** | "
                     f"{s['grouping_right']:.2f} | {s['pulse_right']:.2f} | {s['meter_right']:.2f} | "
                     f"{s['key_right']:.2f} | "
                     f"{s['mode_right']:.2f} | {s['tempo_right']:.2f} | {s['tempo_octave_right']:.2f} | "
                     f"{s['refused']} |")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tunes", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", nargs="?", const="", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    result: Any = run(args.tunes, args.seconds, args.seed)
    print(report(result))
    if args.json is not None:
        record.write(Path(args.json) if args.json else record.RESULTS / "transcription_music_cpu.json", result)


if __name__ == "__main__":
    cli.run(main)
