"""The folk-tune corpus, the melody event encoding and its grammar, batches, and MIDI files (zoo.data.music,
zoo.data.music_parse, zoo.data.music_batches, zoo.melody).

Only a handful of tunes are parsed (music21 reads ~30 tunes/s), never the whole corpus.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("music21")
mido = pytest.importorskip("mido")

from zoo.data import music as M  # noqa: E402
from zoo.data import music_parse as P  # noqa: E402
from zoo.data.music_batches import MelodyBatches  # noqa: E402
from zoo.errors import UsageError  # noqa: E402
from zoo.melody import encoding as E  # noqa: E402
from zoo.melody import grammar as G  # noqa: E402
from zoo.melody import midi as W  # noqa: E402


def corpus_file(collection: str, name: str) -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus" / collection / name


@pytest.fixture(scope="module")
def airs() -> M.TuneCorpus:
    """The first 50 tunes of O'Neill's (airs, with a dorian and a mixolydian tune among them)."""
    return M.load_tunes(["oneills1850"], limit=50, workers=1, cache=False, progress=False)


@pytest.fixture(scope="module")
def jigs() -> M.TuneCorpus:
    return M.load_tunes(files=[corpus_file("oneills1850", "0900-0950.abc")], limit=6, workers=1, cache=False,
                        progress=False)


def by_title(corpus: M.TuneCorpus, title: str) -> M.Tune:
    return next(t for t in corpus.tunes if t.title == title)


# ---------------------------------------------------------------------------------------------- metadata


def test_metadata_of_known_tunes(airs, jigs):
    cravat = by_title(jigs, "Jackson's Cravat")  # X:900, R:Jig, M:6/8, K:G
    assert (cravat.genre, cravat.meter, cravat.tonic, cravat.mode) == ("jig", "6/8", 7, "major")
    lament = by_title(airs, "Rory Dall's Sister's Lament")  # M:3/4, K:Ador
    assert (lament.genre, lament.meter, lament.key_name) == ("air", "3/4", "A dorian")
    glen = by_title(airs, "John O'Dwyer of the Glen")  # M:C, K:Amix
    assert (glen.meter, glen.key_name) == ("4/4", "A mixolydian")
    enchanted = airs.tunes[0]  # M:2/4, L:1/16 (which music21 misreads as a 1/16 time signature), K:Gm
    assert (enchanted.title, enchanted.meter, enchanted.key_name) == ("The Enchanted Valley", "2/4", "G minor")
    assert all(t.collection == "oneills1850" for t in airs.tunes)
    assert {t.genre for t in airs.tunes} == {"air"}  # O'Neill's 1-625 are airs when nothing else says


def test_key_meter_genre_and_title_parsing():
    assert E.parse_key("Ador") == (9, "dorian")
    assert E.parse_key("E Minor") == (4, "minor")
    assert E.parse_key("F#m") == (6, "minor")
    assert E.parse_key("Bb") == (10, "major")
    assert E.parse_key("G Mixolydian") == (7, "mixolydian")
    assert E.parse_key("HP") == (9, "mixolydian")
    assert E.parse_key("Bn") is None
    assert P._parse_meter("C|") == "2/2" and P._parse_meter("C") == "4/4" and P._parse_meter("none") is None
    assert P.genre_of("double jig", "") == "jig"
    assert P.genre_of("slipjig", "") == "slip jig"
    assert P.genre_of("", "Colonel McLean's March.") == "march"
    assert P.genre_of("", "Quick Step. 25th Regt.") == "march"
    assert P.genre_of("", "The Lark", "oneills1850", 1300) == "reel"
    assert P.genre_of("", "The Lark") == "unknown"
    assert P.clean_title("Ace and Deuce of Pipering, The") == "The Ace and Deuce of Pipering"
    assert P.clean_title("BONAPARTE'S DEFEAT") == "Bonaparte's Defeat"
    assert P.clean_title('"All the Go" -- Reel') == "All the Go"


def test_captions(airs, jigs):
    assert M.caption(by_title(jigs, "Jackson's Cravat")) == "Jackson's Cravat. A jig in G major, 6/8."
    lament = by_title(airs, "Rory Dall's Sister's Lament")
    assert M.caption(lament) == "Rory Dall's Sister's Lament. An air in A dorian, 3/4."
    assert M.caption(lament, 3) == "Rory Dall's Sister's Lament. An air in C dorian, 3/4."
    untitled = M.Tune("", "unknown", "9/8", 2, "minor", np.array([62], np.int16), np.array([72], np.int32))
    assert M.caption(untitled) == "A tune in D minor, 9/8."
    for tune in airs.tunes + jigs.tunes:
        text = M.caption(tune)
        assert "None" not in text and ".." not in text and text.endswith(".")
    captions, index = M.caption_table(airs.tunes[:3])
    assert index.shape == (3, 12) and len(captions) == index.max() + 1
    assert captions[index[1, 5]] == M.caption(airs.tunes[1], 5)


def test_malformed_tunes_are_skipped_and_counted(tmp_path):
    good = "X:1\nT:Good\nM:6/8\nL:1/8\nR:jig\nK:D\n|:A|dfa agf|e2d B2A:|\n\n"
    bad = "X:2\nT:Bad\nM:4/4\nL:1/8\nK:D\nABC}}}{{{ [[[ (3 ]]]] ^^^^^^\n\n"
    no_meter = "X:3\nT:No Meter\nM:none\nL:1/8\nK:D\nABcd|\n\n"
    empty = "X:4\nT:Empty\nM:4/4\nL:1/8\nK:G\nx8|\n\n"
    path = tmp_path / "mixed.abc"
    path.write_text(good + bad + no_meter + empty)
    corpus = M.load_tunes(files=[path], workers=1, cache=False, progress=False)
    assert [t.title for t in corpus.tunes] == ["Good"]
    assert corpus.skipped == {"malformed": 1, "meter": 1, "empty": 1}
    tune = corpus.tunes[0]  # the pickup A is padded with a rest to a full 6/8 bar
    assert tune.melody.notes[:2] == ((None, 2.5), (69, 0.5))
    with pytest.raises(UsageError, match="unknown music collection"):
        M.load_tunes(["nosuch"])
    with pytest.raises(UsageError, match="no such music file"):
        M.load_tunes(files=[tmp_path / "missing.abc"])


def test_missing_music21_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "music21" else real(name, *a))
    with pytest.raises(UsageError, match="pip install music21"):
        M.load_tunes(limit=1)


def test_parallel_parse_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    files = [corpus_file("oneills1850", "1136-1175.abc")]
    serial = M.load_tunes(files=files, limit=4, workers=1, cache=False, progress=False)
    parallel = M.load_tunes(files=files, limit=4, workers=2, cache=True, progress=False)
    assert parallel.cache_path is not None and parallel.cache_path.parent == tmp_path / "cache"
    assert [M.tune_hash(t) for t in parallel.tunes] == [M.tune_hash(t) for t in serial.tunes]
    monkeypatch.setattr(M, "_run_tasks", lambda *a: pytest.fail("parsed again instead of reading the cache"))
    cached = M.load_tunes(files=files, limit=4)
    assert [M.tune_hash(t) for t in cached.tunes] == [M.tune_hash(t) for t in serial.tunes]
    assert [M.caption(t) for t in cached.tunes] == [M.caption(t) for t in serial.tunes]
    assert {t.genre for t in cached.tunes} == {"slip jig"} and {t.meter for t in cached.tunes} == {"9/8"}


# ---------------------------------------------------------------------------------------------- encoding


def test_vocabulary():
    assert len(E.TOKEN_NAMES) == E.VOCAB == len(set(E.TOKEN_NAMES))
    assert E.token_name(E.EOS) == "EOS" and E.token_name(E.key_token(9, "dorian")) == "KEY_A_dorian"
    for ticks in (1, 7, 24, 30, 96, 100, 192, 500):
        assert sum(E.DURATIONS[t - E.DUR_BASE] for t in E.duration_tokens(ticks)) == ticks


def test_encode_decode_round_trips_real_tunes(airs, jigs):
    for tune in airs.tunes + jigs.tunes:
        tokens = E.encode(tune)
        assert tokens.dtype == np.int32 and tokens[0] == E.BOS and tokens[-1] == E.EOS
        assert tokens[1] == E.meter_token(tune.meter) and tokens[2] == E.key_token(tune.tonic, tune.mode)
        assert E.decode(tokens) == tune.melody  # every pitch and duration exactly
        assert np.array_equal(E.encode(E.decode(tokens)), tokens)


def test_notes_fall_on_the_meter(airs, jigs):
    """BAR tokens follow the meter's bar lines: each note or rest comes after exactly as many BARs as the
    bar it starts in (a note held across a bar line comes before that BAR), and notes cross bar lines
    only rarely (held notes, repaired bars), so bars are filled by the notes written in them."""
    crossing = total = 0
    for tune in airs.tunes + jigs.tunes:
        bar = E.bar_ticks(tune.meter)
        now = bars = 0
        for tok in E.encode(tune).tolist():
            if tok == E.BAR:
                bars += 1
                assert (bars - 1) * bar <= now, (tune.title, now)
            elif tok == E.REST or E.PITCH_BASE <= tok < E.DUR_BASE:
                assert bars == now // bar + 1, (tune.title, now)
                total += 1
            elif E.DUR_BASE <= tok < E.VOCAB:
                before = now
                now += E.DURATIONS[tok - E.DUR_BASE]
                crossing += before // bar != (now - 1) // bar and before % bar != 0
        assert now == int(tune.ticks.sum())
    assert crossing < 0.01 * total


def held_over(tune: M.Tune) -> list[int]:
    """The positions in `encode(tune)` of the DUR tokens that run past the bar line their note started in,
    found from the tune's arrays and its meter alone."""
    bar, tokens = E.bar_ticks(tune.meter), E.encode(tune)
    starts = np.flatnonzero(G.IS_EVENT[tokens])  # the REST or PITCH token of each note, in order
    out, onset = [], 0
    for start, ticks in zip(starts.tolist(), tune.ticks.tolist(), strict=True):
        played = 0
        for position, tok in enumerate(E.duration_tokens(ticks), start + 1):
            played += E.DURATIONS[tok - E.DUR_BASE]
            if played > bar - onset % bar:
                out.append(position)
        onset += ticks
    return out


def test_grammar_accepts_real_tunes_but_notes_held_across_bar_lines(airs, jigs):
    held = 0
    for tune in airs.tunes + jigs.tunes:
        expected = held_over(tune)
        assert G.violations(E.encode(tune)) == expected, tune.title
        held += bool(expected)
    assert 0 < held < 0.2 * (len(airs.tunes) + len(jigs.tunes))  # the rejecting rule is met, but rarely
    assert G.violations(E.encode(by_title(jigs, "Jackson's Cravat"))) == []


def test_grammar_rejects_broken_tunes(jigs):
    tokens = E.encode(by_title(jigs, "Jackson's Cravat")).tolist()  # 6/8 (72-tick bars), G major, a pickup
    assert tokens[:4] == [E.BOS, E.meter_token("6/8"), E.key_token(7, "major"), E.BAR]
    bars = [i for i, t in enumerate(tokens) if t == E.BAR]
    durs = [i for i, t in enumerate(tokens) if G.IS_DUR[t]]
    inner = next(i for i in durs if G.IS_EVENT[tokens[i - 1]] and G.IS_EVENT[tokens[i + 1]])  # one DUR, mid-bar
    first_note = bars[0] + 1
    assert G.violations(tokens[:bars[3] + 2] + [E.DUR_BASE, E.EOS]) == []  # a tune may end after any note

    def first_violation(broken: list[int]) -> int:
        return (G.violations(broken) or [None])[0]

    assert first_violation([tokens[0], tokens[2], tokens[1], *tokens[3:]]) == 1  # KEY before METER
    assert first_violation(tokens[:3] + tokens[4:]) == 3  # a note before the first BAR
    assert first_violation(tokens[:bars[3]] + tokens[bars[3] + 1:]) == bars[3]  # a full bar without its BAR
    assert first_violation(tokens[:inner + 1] + [E.BAR] + tokens[inner + 1:]) == inner + 1  # BAR mid-bar
    assert first_violation(tokens[:first_note + 1] + E.duration_tokens(96) + tokens[first_note + 2:]) == (
        first_note + 1)  # a note longer than the bar
    assert first_violation(tokens[:inner] + tokens[inner + 1:]) == inner  # a note without a duration
    assert first_violation(tokens[:bars[2] + 1] + [E.EOS]) == bars[2] + 1  # EOS straight after a BAR
    prefix = [E.BOS, E.meter_token("6/8"), E.key_token(2, "major"), E.BAR, E.pitch_token(62)]
    assert G.allowed_next([E.BOS]).sum() == len(E.METERS)
    assert G.allowed_next(prefix[:2]).sum() == 12 * len(E.MODES)
    assert np.flatnonzero(G.allowed_next(prefix)).tolist() == [E.DUR_BASE + i for i, d in enumerate(E.DURATIONS)
                                                               if d <= 72]
    assert np.flatnonzero(G.allowed_next([*prefix, *E.duration_tokens(72)])).tolist() == [E.EOS, E.BAR]


def test_decode_is_tolerant():
    mel = E.decode([E.BOS, E.BAR, E.pitch_token(60), E.DUR_BASE + 11, E.DUR_BASE + 11, E.DUR_BASE, E.EOS, 5])
    assert (mel.meter, mel.key_name) == ("4/4", "C major")
    assert mel.notes == ((60, 25 / 24),)  # 12 + 12 + 1 ticks
    assert E.decode([E.BOS, E.pitch_token(60), E.REST, E.DUR_BASE + 5]).notes == ((None, 0.25),)


def test_transposition_moves_pitches_and_key_together(airs):
    tune = by_title(airs, "Rory Dall's Sister's Lament")
    for k in (-5, 3, 6):
        moved = E.transpose(tune, k)
        assert moved.key_name == E.transpose(tune.melody, k).key_name
        assert (moved.tonic - tune.tonic) % 12 == k % 12 and moved.mode == tune.mode
        assert np.array_equal(moved.ticks, tune.ticks)
        shift = moved.pitches[tune.pitches >= 0] - tune.pitches[tune.pitches >= 0]
        assert len(set(shift.tolist())) == 1 and shift[0] % 12 == k % 12
        assert np.array_equal(E.encode(moved), E.transpose_tokens(E.encode(tune), k))
    assert E.transpose(tune, 3).key_name == "C dorian"
    high = E.Melody("4/4", 0, "major", ((E.PITCH_MAX - 1, 1.0), (None, 1.0), (E.PITCH_MAX - 3, 2.0)))
    up = E.transpose(high, 5)  # would leave the range: folded down an octave, key still moves by 5
    assert up.notes == ((E.PITCH_MAX - 8, 1.0), (None, 1.0), (E.PITCH_MAX - 10, 2.0)) and up.tonic == 5
    E.encode(up)


def test_split_is_deterministic(airs):
    train, val = M.split_tunes(airs.tunes, 0.2)
    assert len(train) + len(val) == len(airs.tunes) and val and train
    train2, val2 = M.split_tunes(list(reversed(airs.tunes)), 0.2)
    assert {M.tune_hash(t) for t in val} == {M.tune_hash(t) for t in val2}


# ----------------------------------------------------------------------------------------------- batches


def test_batches_are_deterministic_and_split_across_processes(airs):
    tokens = [E.encode(t) for t in airs.tunes]
    captions, index = M.caption_table(airs.tunes)
    batches = MelodyBatches(tokens, index, max_len=64, global_batch=8, seed=3)
    b = batches.batch(5)
    assert b["tokens"].shape == (8, 65) and b["tokens"].dtype == np.int32
    assert b["mask"].shape == (8, 65) and b["caption_id"].shape == (8,)
    again = MelodyBatches(tokens, index, max_len=64, global_batch=8, seed=3).batch(5)
    for key in b:
        assert np.array_equal(b[key], again[key])
    assert not np.array_equal(b["tokens"], batches.batch(6)["tokens"])
    assert not np.array_equal(b["tokens"], MelodyBatches(tokens, index, 64, 8, seed=4).batch(5)["tokens"])
    halves = [batches.batch(5, p, 2) for p in range(2)]
    for key in b:
        assert np.array_equal(np.concatenate([h[key] for h in halves]), b[key])
    for row, mask, cap, shift in zip(b["tokens"], b["mask"], b["caption_id"], b["transpose"], strict=True):
        assert -5 <= shift <= 6
        real = row[mask > 0]
        assert real[0] == E.BOS and real[1] >= E.METER_BASE and (real[-1] == E.EOS or len(real) == 65)
        assert np.all(row[mask == 0] == E.EOS)
        mel = E.decode(real)
        assert captions[cap].split(" in ")[-1].startswith(mel.key_name)  # caption names the moved key
        assert any(is_window(real, E.transpose_tokens(t, int(shift))) for t in tokens)


def is_window(row: np.ndarray, tune: np.ndarray) -> bool:
    """Is `row` the whole tune, or its header followed by a stretch of it that starts at a BAR token?"""
    if np.array_equal(row, tune):
        return True
    body = row[E.HEADER:]
    return np.array_equal(row[:E.HEADER], tune[:E.HEADER]) and any(
        np.array_equal(tune[s:s + len(body)], body) for s in np.flatnonzero(tune == E.BAR))


def test_long_tunes_are_cropped_at_bar_lines(airs):
    tokens = [E.encode(t) for t in airs.tunes]
    batch = MelodyBatches(tokens, np.arange(len(tokens)), max_len=40, global_batch=16, seed=1).batch(0)
    assert batch["mask"].mean() > 0.9  # every tune is longer than 41 tokens: rows are full but at tune ends
    for row, mask, shift in zip(batch["tokens"], batch["mask"], batch["transpose"], strict=True):
        assert row[E.HEADER] == E.BAR
        assert any(is_window(row[mask > 0], E.transpose_tokens(t, int(shift))) for t in tokens)


def test_epochs_visit_every_tune(airs):
    tokens = [E.encode(t) for t in airs.tunes[:10]]
    batches = MelodyBatches(tokens, np.arange(10), max_len=400, global_batch=5, seed=0, transpose_range=(0, 0))
    rows = np.concatenate([batches.batch(s)["tokens"] for s in range(2)])
    firsts = {tuple(r[r > 0][:20]) for r in rows}
    assert len(firsts) == len({tuple(t[:20]) for t in tokens})
    evals = list(batches.eval_batches(10))
    assert len(evals) == 2 and all(e["mask"].any() for e in evals)


# ----------------------------------------------------------------------------------------------- MIDI


def test_midi_opens_in_three_readers(tmp_path, jigs):
    import music21
    import pretty_midi

    tune = by_title(jigs, "Jackson's Cravat")
    melody = E.transpose(tune.melody, -3)  # E major
    path = tmp_path / "jig.mid"
    data = W.write_midi(melody, path, tempo_bpm=110, program=40, title=tune.title)
    assert path.read_bytes() == data
    sounding = [(p, d) for p, d in melody.notes if p is not None]

    mid = mido.MidiFile(path)
    meta = {m.type: m for track in mid.tracks for m in track if m.is_meta}
    assert (meta["time_signature"].numerator, meta["time_signature"].denominator) == (6, 8)
    assert meta["key_signature"].key == "E"
    assert round(mido.tempo2bpm(meta["set_tempo"].tempo)) == 110
    assert [m.program for t in mid.tracks for m in t if m.type == "program_change"] == [40]

    pm = pretty_midi.PrettyMIDI(str(path))
    ts = pm.time_signature_changes[0]
    assert (ts.numerator, ts.denominator) == (6, 8)
    assert pretty_midi.key_number_to_key_name(pm.key_signature_changes[0].key_number) == "E Major"
    assert np.isclose(pm.get_tempo_changes()[1][0], 110)
    (inst,) = pm.instruments
    assert inst.program == 40 and inst.name == "Violin"
    assert [n.pitch for n in inst.notes] == [p for p, _ in sounding]
    assert np.allclose([n.end - n.start for n in inst.notes], [d * 60 / 110 for _, d in sounding])
    first = next(sum(d for _, d in melody.notes[:i]) for i, (p, _) in enumerate(melody.notes) if p is not None)
    assert np.isclose(inst.notes[0].start, first * 60 / 110)  # the pickup rest keeps the bar lines

    score = music21.converter.parse(str(path))
    assert score.recurse().getElementsByClass("TimeSignature")[0].ratioString == "6/8"
    assert score.recurse().getElementsByClass("KeySignature")[0].sharps == 4
    assert round(score.recurse().getElementsByClass("MetronomeMark")[0].number) == 110
    assert isinstance(score.recurse().getElementsByClass("Instrument")[0], music21.instrument.Violin)
    assert [n.pitch.midi for n in score.recurse().notes] == [p for p, _ in sounding]


def test_midi_is_deterministic_and_modes_survive(airs):
    lament = by_title(airs, "Rory Dall's Sister's Lament").melody
    assert W.write_midi(lament) == W.write_midi(lament)
    assert W.midi_key_name(9, "dorian") == "G" and W.midi_key_name(6, "minor") == "F#m"
    assert W.midi_key_name(5, "mixolydian") == "Bb"
    back = W.melody_from_midi(W.write_midi(lament))
    assert back == lament and back.key_name == "A dorian"


def test_primer_round_trip(tmp_path, airs, jigs):
    """tune -> events -> MIDI -> events gives the same events."""
    for tune in airs.tunes[:10] + jigs.tunes:
        tokens = E.encode(tune)
        path = tmp_path / "primer.mid"
        W.write_midi(E.decode(tokens), path)
        assert np.array_equal(E.encode(W.melody_from_midi(path)), tokens)


def test_primer_from_a_foreign_midi_file(tmp_path):
    """Chords (highest note wins), a drum track (ignored), no time/key signature (4/4, C major)."""
    mid = mido.MidiFile(ticks_per_beat=96)
    track = mido.MidiTrack()
    for notes, dur in (([60, 64, 67], 96), ([62], 48), ([65, 69], 48)):
        for n in notes:
            track.append(mido.Message("note_on", note=n, velocity=80, time=0))
        for i, n in enumerate(notes):
            track.append(mido.Message("note_off", note=n, velocity=0, time=dur if i == 0 else 0))
    track.append(mido.Message("note_on", channel=9, note=36, velocity=80, time=0))
    track.append(mido.Message("note_off", channel=9, note=36, velocity=0, time=96))
    mid.tracks.append(track)
    path = tmp_path / "foreign.mid"
    mid.save(path)
    mel = W.melody_from_midi(path)
    assert (mel.meter, mel.key_name) == ("4/4", "C major")
    assert mel.notes == ((67, 1.0), (62, 0.5), (69, 0.5), (None, 1.0))


def test_bad_primer_files(tmp_path):
    text = tmp_path / "notes.mid"
    text.write_text("this is not a MIDI file")
    with pytest.raises(UsageError, match="not a readable MIDI file"):
        W.melody_from_midi(text)
    empty = tmp_path / "empty.mid"
    mido.MidiFile(tracks=[mido.MidiTrack()]).save(empty)
    with pytest.raises(UsageError, match="no notes"):
        W.melody_from_midi(empty)
    with pytest.raises(UsageError, match="cannot read"):
        W.melody_from_midi(tmp_path / "missing.mid")
    with pytest.raises(UsageError, match="program"):
        W.write_midi(E.Melody(notes=((60, 1.0),)), program=200)
