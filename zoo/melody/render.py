"""Listening to and looking at a melody without a synthesizer or a notation program.

`wav_bytes` renders a `Melody` as 16-bit mono PCM: additive synthesis of a soft wind-like tone (a few
harmonics under an attack/decay/release envelope), numpy only, so `--wav` works on any machine. The
notes on a bar's first beat are louder than the rest, so the meter stays audible.

`piano_roll_png` draws a piano roll with Pillow: time runs right (bar lines darker than beat lines),
pitch runs up, one rectangle per note, C rows shaded so an octave is easy to find.

Both are pure functions of the melody: the same melody gives the same bytes.
"""

from __future__ import annotations

import io
import wave

import numpy as np

from zoo.melody.encoding import TICKS_PER_QUARTER, Melody, bar_ticks

SAMPLE_RATE = 22_050
HARMONICS = (1.0, 0.45, 0.25, 0.12, 0.06)  # amplitudes of partials 1..5: a mellow, flute-like tone


def _notes_in_seconds(melody: Melody, tempo_bpm: float) -> list[tuple[int, float, float, bool]]:
    """(pitch, start s, duration s, accented) for each sounding note."""
    seconds_per_quarter = 60.0 / tempo_bpm
    bar_q = bar_ticks(melody.meter) / TICKS_PER_QUARTER
    notes, onset = [], 0.0
    for pitch, quarters in melody.notes:
        if pitch is not None and quarters > 0:
            on_bar = abs(onset / bar_q - round(onset / bar_q)) < 1e-6
            notes.append((pitch, onset * seconds_per_quarter, quarters * seconds_per_quarter, on_bar))
        onset += quarters
    return notes


def synthesize(melody: Melody, tempo_bpm: float = 120.0, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """float32 [n] samples in [-1, 1]: the melody played with `HARMONICS`, plus a short release tail."""
    notes = _notes_in_seconds(melody, tempo_bpm)
    total = melody.quarter_length * 60.0 / tempo_bpm + 0.3
    audio = np.zeros(int(total * sample_rate) + 1, np.float32)
    attack, release = 0.015, 0.08
    for pitch, start, duration, accented in notes:
        n = int((duration + release) * sample_rate)
        t = np.arange(n, dtype=np.float32) / sample_rate
        freq = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
        tone = sum(a * np.sin(2 * np.pi * freq * (k + 1) * t) for k, a in enumerate(HARMONICS)
                   if freq * (k + 1) < sample_rate / 2)
        envelope = np.minimum(t / attack, 1.0) * np.exp(-1.5 * t)  # attack, then a gentle decay
        envelope *= np.clip((duration + release - t) / release, 0.0, 1.0)  # release after the note ends
        begin = int(start * sample_rate)
        segment = audio[begin:begin + n]
        segment += (tone * envelope * (1.0 if accented else 0.8))[:len(segment)].astype(np.float32)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    return audio * (0.8 / peak) if peak > 0 else audio


def wav_bytes(melody: Melody, tempo_bpm: float = 120.0, sample_rate: int = SAMPLE_RATE) -> bytes:
    """The melody as a 16-bit mono WAV file."""
    pcm = (np.clip(synthesize(melody, tempo_bpm, sample_rate), -1, 1) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return buffer.getvalue()


def piano_roll_png(melody: Melody, pixels_per_quarter: int = 24, row_height: int = 6) -> bytes:
    """The melody as a piano-roll PNG (see the module docstring)."""
    from PIL import Image, ImageDraw

    pitches = [p for p, _ in melody.notes if p is not None] or [60]
    low, high = min(pitches) - 2, max(pitches) + 2
    width = max(1, int(np.ceil(melody.quarter_length * pixels_per_quarter))) + 1
    height = (high - low + 1) * row_height
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for pitch in range(low, high + 1):
        if pitch % 12 == 0:  # C rows
            y = (high - pitch) * row_height
            draw.rectangle([0, y, width - 1, y + row_height - 1], fill=(238, 238, 246))
    bar_q = bar_ticks(melody.meter) / TICKS_PER_QUARTER
    quarter = 0.0
    while quarter <= melody.quarter_length + 1e-9:
        x = int(round(quarter * pixels_per_quarter))
        on_bar = abs(quarter / bar_q - round(quarter / bar_q)) < 1e-6
        draw.line([x, 0, x, height - 1], fill=(90, 90, 90) if on_bar else (215, 215, 215))
        quarter += 0.5 if melody.meter.endswith("/8") else 1.0
    onset = 0.0
    for pitch, quarters in melody.notes:
        if pitch is not None:
            x0, x1 = int(round(onset * pixels_per_quarter)), int(round((onset + quarters) * pixels_per_quarter))
            y = (high - pitch) * row_height
            draw.rectangle([x0 + 1, y, max(x0 + 1, x1 - 1), y + row_height - 2], fill=(40, 90, 200),
                           outline=(20, 45, 110))
        onset += quarters
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
