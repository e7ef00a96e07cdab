"""Melodies from prompts (zoo.sample.music) with the embedded `music` model: the grammar, the files, the
seed, the primer, and bad input. The sampler is built once for the module; the CLI runs a few times."""

from __future__ import annotations

import io
import pathlib
import subprocess
import sys
import wave

import jax
import jax.numpy as jnp
import mido
import numpy as np
import pytest

from tests.helpers import ROOT, assert_usage_error, env, run_sample
from zoo import registry
from zoo.data import music as M
from zoo.melody import encoding as E
from zoo.melody import grammar as G
from zoo.melody import midi as W
from zoo.sample import music as S

music21 = pytest.importorskip("music21")
EXPORT = registry.get("music").pretrained_dir


@pytest.fixture(scope="module")
def sampler() -> S.MelodySampler:
    return S.MelodySampler(EXPORT)


@pytest.fixture(scope="module")
def tunes() -> list[M.Tune]:
    """Airs and jigs of O'Neill's: 4/4, 3/4, 6/8, pickups and notes held across bar lines among them."""
    corpus = M.load_tunes(["oneills1850"], limit=40, workers=1, cache=False, progress=False)
    jig_file = pathlib.Path(music21.__file__).parent / "corpus" / "oneills1850" / "0900-0950.abc"
    jigs = M.load_tunes(files=[jig_file], limit=6, workers=1, cache=False, progress=False)
    return corpus.tunes + jigs.tunes


def bars_of(melody: E.Melody) -> float:
    return melody.quarter_length * E.TICKS_PER_QUARTER / E.bar_ticks(melody.meter)


@jax.jit
def sampler_masks(tokens: jax.Array, target_bars: jax.Array) -> jax.Array:
    """bool [n, VOCAB]: row i is the sampler's mask after tokens[:i + 1], the grammar run on jnp as in
    `S._sample_jit`, with `target_bars` bars asked for."""
    rules = G.Grammar(jnp)

    def step(state, tok):
        state = rules.advance(state, tok)
        return state, rules.allowed(state, target_bars)

    return jax.lax.scan(step, {k: jnp.int32(v) for k, v in G.START.items()}, tokens)[1]


def test_sampler_mask_allows_exactly_the_legal_next_tokens(tunes):
    """After every prefix of real tunes (asking for the bars each tune has) the mask is exactly: METERs,
    then KEYs, then BAR; after a BAR, every note (or BAR again, if a held note filled that bar too); after a
    note, the DURs that fit its bar; after a DUR, notes and fitting DURs, or BAR once the bar is full, or
    EOS once the last bar is full."""
    meters, keys = np.flatnonzero(G.IS_METER).tolist(), np.flatnonzero(G.IS_KEY).tolist()
    notes = [E.REST, *range(E.PITCH_BASE, E.DUR_BASE)]
    fitting = lambda left: [E.DUR_BASE + i for i, d in enumerate(E.DURATIONS) if d <= left]  # noqa: E731
    checked = 0
    for tune in tunes[::3]:
        tokens = E.encode(tune)
        padded = np.full(1 << (len(tokens) - 1).bit_length(), E.EOS, np.int32)  # few shapes to compile
        padded[:len(tokens)] = tokens
        total_bars = int((tokens == E.BAR).sum())
        masks = np.asarray(sampler_masks(padded, np.int32(total_bars)))
        bar, played, bars = E.bar_ticks(tune.meter), 0, 0
        for i, tok in enumerate(tokens[:-1].tolist()):
            played += int(G.DUR_TICKS[tok])
            bars += tok == E.BAR
            left = bars * bar - played  # ticks left in the current bar
            if i < 3:
                expected = [meters, keys, [E.BAR]][i]
            elif tok == E.BAR:
                expected = notes if left > 0 else [E.BAR]
            elif G.IS_EVENT[tok]:
                expected = fitting(left)
            elif left > 0:
                expected = sorted(notes + fitting(left))
            else:
                expected = [E.BAR] if bars < total_bars else [E.EOS]
            assert np.flatnonzero(masks[i]).tolist() == expected, (tune.title, i, E.token_name(tok))
            checked += 1
    assert checked > 2000


def test_length_rule_ends_a_full_last_bar():
    prefix = np.asarray([E.BOS, E.meter_token("3/4"), E.key_token(2, "major"), E.BAR, E.pitch_token(62)]
                        + E.duration_tokens(48), np.int32)  # one bar, two thirds full
    assert G.state_after(prefix)["remaining"] == 24 and G.state_after(prefix)["bars"] == 1
    mask = np.asarray(sampler_masks(prefix, np.int32(1)))[-1]
    assert not mask[E.EOS] and not mask[E.BAR] and mask[E.REST]  # the bar must be filled first
    assert mask[E.duration_tokens(24)[0]] and not mask[E.duration_tokens(30)[0]]
    full = np.concatenate([prefix, E.duration_tokens(24)]).astype(np.int32)
    assert np.flatnonzero(np.asarray(sampler_masks(full, np.int32(1)))[-1]).tolist() == [E.EOS]
    assert np.flatnonzero(np.asarray(sampler_masks(full, np.int32(2)))[-1]).tolist() == [E.BAR]


def test_prompt_reading(sampler):
    reading = sampler.read_prompt("a jig in A minor")
    assert reading.cond.shape == (384,) and reading.cond.dtype == np.float32
    assert np.isclose(np.linalg.norm(reading.cond), 1.0, atol=1e-4)
    similarities = [s for _, s in reading.nearest]
    assert len(similarities) >= 5 and similarities == sorted(similarities, reverse=True)
    assert all(c in sampler.captions for c, _ in reading.nearest)
    assert any("jig" in c for c, _ in reading.nearest[:5])  # the captions of the full model's corpus
    neighbours = sampler.read_prompt("a jig in A minor", conditioning="neighbours")
    assert np.isclose(np.linalg.norm(neighbours.cond), 1.0, atol=1e-4)
    assert 0.3 < float(neighbours.cond @ reading.cond) < 0.999  # near the prompt, but not the prompt


def test_melodies_have_their_bars_and_a_seed_fixes_them(sampler):
    melodies = sampler.sample("a reel in D major", 4, seed=3, bars=8)
    assert len(melodies) == 4
    for melody in melodies:
        assert melody.meter in E.METERS and melody.mode in E.MODES
        assert np.isclose(bars_of(melody), 8), melody  # exactly the bars asked for, the last one full
        assert G.violations(E.encode(melody)) == []  # every event the sampler drew was allowed by the grammar
    again = sampler.sample("a reel in D major", 4, seed=3, bars=8)
    assert sampler.to_files(again, False) == sampler.to_files(melodies, False)
    other = sampler.sample("a reel in D major", 4, seed=4, bars=8)
    assert [m.notes for m in other] != [m.notes for m in melodies]
    assert len({m.notes for m in melodies}) == 4  # the rows of one batch differ


def test_primer_is_continued(sampler, tunes, tmp_path):
    jig = next(t for t in tunes if t.meter == "6/8" and t.mode == "major")
    tokens = E.encode(jig)
    bar_positions = np.flatnonzero(tokens == E.BAR)
    primer = E.decode(tokens[:bar_positions[4]])  # a pickup bar + 3 bars
    path = tmp_path / "primer.mid"
    W.write_midi(primer, path)
    (melody,) = sampler.sample("a jig", 1, seed=0, bars=4, primer=path)
    assert (melody.meter, melody.key_name) == (jig.meter, jig.key_name)
    assert melody.notes[:len(primer.notes)] == primer.notes
    assert np.isclose(bars_of(melody), bars_of(primer) + 4)


def test_primer_ending_in_a_note_held_across_bar_lines(sampler, tmp_path):
    """The encoding writes BAR BAR after a note held across two bar lines: the sampler must too, not stop."""
    primer = E.Melody("2/4", 0, "major", ((60, 1.0), (62, 1.0), (64, 5.0)))  # 3.5 bars, the last note 2.5
    path = tmp_path / "held.mid"
    W.write_midi(primer, path)
    (melody,) = sampler.sample("a reel", 1, seed=0, bars=3, primer=path)
    assert melody.notes[:3] == primer.notes and melody.quarter_length > primer.quarter_length
    assert np.isclose(bars_of(melody), round(bars_of(melody)))  # ends on a full bar
    tokens, primed = E.encode(melody), len(E.encode(primer)) - 1  # the primer's own held note breaks the rule
    assert [n for n in G.violations(tokens) if n >= primed] == []


def test_cli_writes_midi_wav_and_png(tmp_path):
    from PIL import Image

    result = run_sample("--model", "music", "--prompt", "a slow air in E minor", "--num", "2", "--bars", "4",
                        "--out", f"{tmp_path}/airs/", "--wav", "--png", "--seed", "5")
    assert result.returncode == 0, result.stderr
    assert "read the prompt" in result.stdout and "E minor" in result.stdout
    for i in range(2):
        midi = tmp_path / "airs" / f"{i:03d}.mid"
        melody = W.melody_from_midi(midi)
        assert np.isclose(bars_of(melody), 4)
        with wave.open(str(midi.with_suffix(".wav"))) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 22050)
            audio = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        seconds = melody.quarter_length * 0.5  # 120 quarter notes per minute
        assert abs(len(audio) / 22050 - seconds - 0.3) < 0.01
        assert np.abs(audio).max() > 10_000  # not silence
        image = Image.open(midi.with_suffix(".png"))
        assert image.format == "PNG" and image.width == int(np.ceil(melody.quarter_length * 24)) + 1
    assert (tmp_path / "airs" / "000.mid").read_bytes() != (tmp_path / "airs" / "001.mid").read_bytes()


def test_cli_default_file_never_replaces_one(tmp_path):
    """Without --out a melody goes to PROMPT.mid in the working directory, then PROMPT-2.mid ..."""
    cmd = [sys.executable, str(ROOT / "sample.py"), "--model", "music", "--prompt", "Summer beach!", "--bars", "2"]
    for _ in range(2):
        result = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    first, second = tmp_path / "summer-beach.mid", tmp_path / "summer-beach-2.mid"
    assert "wrote summer-beach-2.mid" in result.stdout
    assert first.read_bytes() == second.read_bytes()  # same seed => byte-identical MIDI
    assert len(mido.MidiFile(file=io.BytesIO(first.read_bytes())).tracks) == 2


@pytest.mark.parametrize("args, fragment", [
    (["--prompt", ""], "prompt is empty"),
    (["--prompt", "a jig", "--primer", "NOTES"], "is neither a MIDI file nor audio"),
    (["--prompt", "a jig", "--primer", "/nonexistent/tune.mid"], "cannot read"),
    (["--prompt", "a jig", "--bars", "0"], "--bars"),
    (["--prompt", "a jig", "--bars", "100000"], "--bars"),
    (["--prompt", "a jig", "--max_tokens", "20"], "--max_tokens does not apply to --model music"),
    (["--prompt", "a jig", "--out", "X.wav", "--wav"], "would be overwritten by the --wav file"),
    (["--prompt", "a jig", "--out", "NOTES/x.mid"], "not a directory"),
])
def test_bad_input(args: list[str], fragment: str, tmp_path: pathlib.Path) -> None:
    (tmp_path / "notes.txt").write_text("not music")
    args = [str(tmp_path / "notes.txt") if a == "NOTES" else a.replace("NOTES/", f"{tmp_path}/notes.txt/")
            .replace("X.wav", str(tmp_path / "x.wav")) for a in args]
    assert_usage_error(run_sample("--model", "music", "--out", str(tmp_path / "x.mid"), *args), fragment)
    assert not (tmp_path / "x.mid").exists()


def test_music_flags_are_refused_for_text_models():
    assert_usage_error(run_sample("--model", "poem", "--prompt", "hi", "--wav"), "--wav applies to music")
    assert_usage_error(run_sample("--model", "poem", "--prompt", "hi", "--bars", "4"),
                       "--bars does not apply to --model poem")
