"""--primer AUDIO: a held-out folk tune rendered as a plucked string (not the zoo's own renderer) is heard
note for note, written as MIDI that pretty_midi reads, and continued; bad recordings exit 2."""

from __future__ import annotations

import io
import pathlib
import subprocess
import sys
import wave

import numpy as np
import pretty_midi
import pytest

from benchmarks import transcription as bench
from tests.helpers import ROOT, assert_usage_error, env, run_sample
from zoo.melody import encoding, transcribe


@pytest.fixture(scope="module")
def tune() -> tuple[encoding.Melody, list[tuple[float, float, int]]]:
    """A validation tune of `music` (never trained on), its first 8 s at 100 quarter notes per minute."""
    from benchmarks.music_eval import held_out_split
    from configs import music

    _, val = held_out_split(music.get_config())
    melody = encoding.decode(encoding.encode(val[0]))
    if melody.notes[0][0] is None:
        melody = encoding.Melody(melody.meter, melody.tonic, melody.mode, melody.notes[1:])
    return melody, bench.reference_notes(melody, 100.0, 8.0, drift=False)


def _wav(path: pathlib.Path, audio: np.ndarray, rate: int = bench.RATE) -> pathlib.Path:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    path.write_bytes(buffer.getvalue())
    return path


def test_a_plucked_tune_is_heard_note_for_note(tune) -> None:
    melody, reference = tune
    heard = transcribe.transcribe_audio(bench._resample(bench.render(reference, "pluck", 0)))
    scores = bench.score(reference, heard)
    assert scores["f1"] >= 0.85, scores
    assert [p for _, _, p in heard.notes[:8]] == [p for _, _, p in reference[:8]]
    assert abs(heard.notes[0][0] - reference[0][0]) < 0.05
    assert encoding.encode(heard.melody)[0] == encoding.BOS  # on the grid: the sampler can continue it


def test_cli_writes_what_it_heard_then_continues_it(tune, tmp_path: pathlib.Path) -> None:
    melody, reference = tune
    recording = _wav(tmp_path / "tune.wav", bench.render(reference, "voice", 0))
    heard = run_sample("--model", "music", "--prompt", "a reel", "--primer", str(recording), "--primer_only",
                       "--out", str(tmp_path / "heard.mid"))
    assert heard.returncode == 0, heard.stderr
    assert f"{recording}: heard " in heard.stdout and "quarter = " in heard.stdout
    notes = pretty_midi.PrettyMIDI(str(tmp_path / "heard.mid")).instruments[0].notes
    assert abs(len(notes) - len(reference)) <= 0.15 * len(reference), (len(notes), len(reference))
    assert [n.pitch for n in notes[:6]] == [p for _, _, p in reference[:6]]
    continued = run_sample("--model", "music", "--prompt", "a reel", "--primer", str(recording), "--bars", "4",
                           "--out", str(tmp_path / "more.mid"))
    assert continued.returncode == 0, continued.stderr
    more = pretty_midi.PrettyMIDI(str(tmp_path / "more.mid")).instruments[0].notes
    assert [n.pitch for n in more[:len(notes)]] == [n.pitch for n in notes] and len(more) > len(notes)


def test_bad_recordings_exit_2_and_write_nothing(tmp_path: pathlib.Path) -> None:
    rate, seconds = bench.RATE, 3.0
    t = np.arange(int(rate * seconds)) / rate
    chord = sum(np.sin(2 * np.pi * 440 * 2 ** (k / 12) * t) for k in (0, 4, 7, 11)) / 4
    noise = np.random.default_rng(0).normal(0, 0.3, len(t))
    cases = {"silent.wav": (_wav(tmp_path / "silent.wav", 0 * t), "is silent"),
             "chord.wav": (_wav(tmp_path / "chord.wav", chord), "cannot follow one melodic line"),
             "noise.wav": (_wav(tmp_path / "noise.wav", noise), "cannot follow one melodic line")}
    (tmp_path / "words.wav").write_text("not audio at all\n")
    cases["words.wav"] = (tmp_path / "words.wav", "is neither a MIDI file nor audio")
    for name, (path, fragment) in cases.items():
        out = tmp_path / f"{name}.mid"
        assert_usage_error(run_sample("--model", "music", "--prompt", "x", "--primer", str(path), "--out", str(out)),
                           fragment)
        assert not out.exists()
    assert_usage_error(run_sample("--model", "music", "--prompt", "x", "--tempo", "90"), "apply to --primer AUDIO")


def test_librosa_stays_off_the_default_sampling_path(tmp_path: pathlib.Path) -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "sample.py"), "--model", "music",
                             "--prompt", "a jig", "--bars", "2", "--out", str(tmp_path / "a.mid")],
                            env=env(1), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "mido" in imported  # the listing is real
    assert not {m for m in imported if m.split(".")[0] in ("librosa", "numba", "jieba")}
