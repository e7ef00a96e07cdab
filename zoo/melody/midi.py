"""Standard MIDI files for melodies: writing samples, reading a user's primer tune.

`write_midi` writes a type-1 file that mido, pretty_midi and music21 all read: a conductor track (title,
time signature, key signature, tempo, and a `key: A dorian` text event, since a MIDI key signature only
knows major and minor) and one melody track (instrument name, program change, notes). It is written with
mido from the melody alone, with no dates or other state, so the same melody always gives the same bytes
(the CLI's promise: same --seed => byte-identical output). Rests are gaps; a leading rest (the pad of a pickup)
and a trailing one are kept, so the bars of the file line up with its time signature.

`melody_from_midi` reads any MIDI file as a monophonic `Melody` on the encoding's grid: the highest note
at each onset, held until the next onset (or its own end, then a rest), drums ignored.
"""

from __future__ import annotations

import importlib.util
import io
import re
from pathlib import Path
from typing import BinaryIO

from zoo.errors import UsageError
from zoo.melody.encoding import (
    METERS,
    MODES,
    TICKS_PER_QUARTER,
    Melody,
    bar_ticks,
    key_signature_sharps,
    parse_key,
    tonic_name,
    transpose,
)

MIDO_INSTALL = "pip install mido"
TICKS_PER_BEAT = 480  # divisible by TICKS_PER_QUARTER (24): every grid duration is a whole number of ticks
DEFAULT_PROGRAM = 73  # General MIDI flute: folk melodies, and it sounds right in any synthesizer

GM_PROGRAMS = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet", "Celesta", "Glockenspiel", "Music Box",
    "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer", "Drawbar Organ", "Percussive Organ",
    "Rock Organ", "Church Organ", "Reed Organ", "Accordion", "Harmonica", "Tango Accordion",
    "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)", "Electric Guitar (clean)",
    "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar", "Guitar Harmonics", "Acoustic Bass",
    "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass", "Slap Bass 1", "Slap Bass 2",
    "Synth Bass 1", "Synth Bass 2", "Violin", "Viola", "Cello", "Contrabass", "Tremolo Strings",
    "Pizzicato Strings", "Orchestral Harp", "Timpani", "String Ensemble 1", "String Ensemble 2",
    "Synth Strings 1", "Synth Strings 2", "Choir Aahs", "Voice Oohs", "Synth Choir", "Orchestra Hit",
    "Trumpet", "Trombone", "Tuba", "Muted Trumpet", "French Horn", "Brass Section", "Synth Brass 1",
    "Synth Brass 2", "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon",
    "Clarinet", "Piccolo", "Flute", "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)", "Lead 5 (charang)",
    "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)", "Pad 1 (new age)", "Pad 2 (warm)",
    "Pad 3 (polysynth)", "Pad 4 (choir)", "Pad 5 (bowed)", "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)",
    "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)", "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba",
    "Bagpipe", "Fiddle", "Shanai", "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock", "Taiko Drum",
    "Melodic Tom", "Synth Drum", "Reverse Cymbal", "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet",
    "Telephone Ring", "Helicopter", "Applause", "Gunshot",
)
_KEY_TEXT = re.compile(r"key:\s*([A-G][#b]?)\s+(\w+)")


def _mido():
    if importlib.util.find_spec("mido") is None:
        raise UsageError(f"MIDI files need mido: {MIDO_INSTALL}")
    import mido

    return mido


def midi_key_name(tonic: int, mode: str) -> str:
    """The MIDI/mido key signature name: the key itself for major and minor ('D', 'F#m'), the relative
    major for the other modes (A dorian -> 'G'), which has the same sharps and flats."""
    if mode == "minor":
        return tonic_name(tonic, "minor") + "m"
    sharps = key_signature_sharps(tonic, mode)
    return ("C", "G", "D", "A", "E", "B", "F#", "Db", "Ab", "Eb", "Bb", "F")[sharps if sharps >= 0 else 12 + sharps]


def _time_signature(meter: str) -> tuple[int, int, int]:
    """(numerator, denominator, MIDI clocks per metronome click): a dotted quarter in 6/8, 9/8, 12/8."""
    num, den = (int(x) for x in meter.split("/"))
    clocks = 96 // den
    if den == 8 and num % 3 == 0 and num > 3:
        clocks *= 3
    return num, den, clocks


def write_midi(melody: Melody, path: str | Path | BinaryIO | None = None, tempo_bpm: float = 120.0,
               program: int = DEFAULT_PROGRAM, *, title: str = "", velocity: int = 88) -> bytes:
    """The melody as standard MIDI bytes, also written to `path` (a file name or a binary file) if given.

    `tempo_bpm` counts quarter notes per minute. Notes on a bar's first beat are a little louder than the
    rest (velocity + 12), others on a beat + 6, so a plain synthesizer still phrases the meter.
    """
    mido = _mido()
    if not 0 <= program < 128:
        raise UsageError(f"MIDI program must be 0..127, got {program}")
    if not 1 <= tempo_bpm <= 1000:
        raise UsageError(f"tempo must be 1..1000 beats per minute, got {tempo_bpm}")
    num, den, clocks = _time_signature(melody.meter)
    conductor = mido.MidiTrack([
        mido.MetaMessage("track_name", name=title or melody.title or "zoo melody", time=0),
        mido.MetaMessage("time_signature", numerator=num, denominator=den, clocks_per_click=clocks,
                         notated_32nd_notes_per_beat=8, time=0),
        mido.MetaMessage("key_signature", key=midi_key_name(melody.tonic, melody.mode), time=0),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0),
        mido.MetaMessage("text", text=f"key: {melody.key_name}; meter: {melody.meter}", time=0),
    ])
    track = mido.MidiTrack([
        mido.MetaMessage("track_name", name=GM_PROGRAMS[program], time=0),
        mido.Message("program_change", channel=0, program=program, time=0),
    ])
    bar = bar_ticks(melody.meter) * TICKS_PER_BEAT // TICKS_PER_QUARTER
    beat = clocks * TICKS_PER_BEAT // 24
    onset_q = 0.0  # quarter notes; positions are rounded from the running sum, so nothing drifts
    last = 0  # tick of the last event written
    for pitch, quarters in melody.notes:
        start = round(onset_q * TICKS_PER_BEAT)
        onset_q += quarters
        end = round(onset_q * TICKS_PER_BEAT)
        if pitch is None or end <= start:
            continue
        if not 0 <= pitch < 128:
            raise ValueError(f"pitch {pitch} is not a MIDI note")
        accent = 12 if start % bar == 0 else 6 if start % beat == 0 else 0
        vel = max(1, min(127, velocity + accent))
        track.append(mido.Message("note_on", channel=0, note=pitch, velocity=vel, time=start - last))
        track.append(mido.Message("note_off", channel=0, note=pitch, velocity=0, time=end - start))
        last = end
    total = round(onset_q * TICKS_PER_BEAT)
    track.append(mido.MetaMessage("end_of_track", time=max(0, total - last)))
    conductor.append(mido.MetaMessage("end_of_track", time=total))
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT, tracks=[conductor, track], charset="utf-8")
    buffer = io.BytesIO()
    midi.save(file=buffer)
    data = buffer.getvalue()
    if isinstance(path, (str, Path)):
        from zoo.storage import write_atomic

        write_atomic(Path(path), data)
    elif path is not None:
        path.write(data)
    return data


def midi_title(path: str | Path) -> str:
    """The name a MIDI file gives itself (its first track's name; zoo's samples carry their prompt), or ""
    for none, an instrument's name or zoo's default."""
    mido = _mido()
    try:
        midi = mido.MidiFile(str(path), charset="utf-8")
    except Exception:  # unreadable files are reported by melody_from_midi
        return ""
    names = [m.name for m in (midi.tracks[0] if midi.tracks else []) if m.type == "track_name"]
    name = names[0].strip() if names else ""
    return "" if name in ("zoo melody", *GM_PROGRAMS) else name


def melody_from_midi(path: str | Path | bytes) -> Melody:
    """A monophonic melody from a MIDI file (a primer tune): its time signature and key (C major, 4/4 when
    it has none; the `key:` text of our own files gives the exact mode), the highest note at each onset
    quantised to 1/24 of a quarter note, gaps as rests, pitches folded into the encoding's range.

    Raises UsageError for a file that is not MIDI or has no notes.
    """
    mido = _mido()
    name = "the MIDI data" if isinstance(path, bytes) else str(path)
    try:
        data = path if isinstance(path, bytes) else Path(path).read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {name}: {err.strerror or err}") from err
    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
    except Exception as err:  # mido raises OSError, EOFError, ValueError, KeyError... on garbage
        raise UsageError(f"{name} is not a readable MIDI file ({type(err).__name__}: {err})") from err
    tpb = midi.ticks_per_beat or TICKS_PER_BEAT
    meter, key, key_text = None, None, None
    sounding: dict[tuple[int, int], list[int]] = {}
    notes: list[tuple[int, int, int]] = []  # onset, end, pitch (in file ticks)
    end_of_file = 0
    for track in midi.tracks:
        now = 0
        for msg in track:
            now += msg.time
            if msg.type == "time_signature" and meter is None:
                meter = f"{msg.numerator}/{msg.denominator}"
            elif msg.type == "key_signature" and key is None:
                key = msg.key
            elif msg.type == "text" and key_text is None and _KEY_TEXT.search(msg.text):
                key_text = _KEY_TEXT.search(msg.text)
            elif msg.type in ("note_on", "note_off") and msg.channel != 9:
                if msg.type == "note_on" and msg.velocity > 0:
                    sounding.setdefault((msg.channel, msg.note), []).append(now)
                elif sounding.get((msg.channel, msg.note)):
                    notes.append((sounding[(msg.channel, msg.note)].pop(0), now, msg.note))
        end_of_file = max(end_of_file, now)
    if not notes:
        raise UsageError(f"{name} has no notes")
    if meter is not None and meter not in METERS:
        raise UsageError(f"{name} is in {meter}; the melody encoding knows {', '.join(METERS)}")
    melody = _monophonic(notes, tpb, end_of_file, meter or "4/4")
    tonic, mode = 0, "major"
    if key_text and key_text.group(2) in MODES and parse_key(key_text.group(1)):
        tonic, mode = parse_key(key_text.group(1))[0], key_text.group(2)
    elif key:
        parsed = parse_key(key)
        tonic, mode = parsed if parsed else (0, "major")
    return transpose(Melody(melody.meter, tonic, mode, melody.notes), 0)  # folds pitches into range


def _monophonic(notes: list[tuple[int, int, int]], tpb: int, end_of_file: int, meter: str) -> Melody:
    def grid(tick: int) -> int:
        return round(tick * TICKS_PER_QUARTER / tpb)

    top: dict[int, tuple[int, int]] = {}  # grid onset -> (pitch, grid end) of its highest note
    for onset, end, pitch in notes:
        g = grid(onset)
        if g not in top or pitch > top[g][0]:
            top[g] = (pitch, grid(end))
    onsets = sorted(top)
    events: list[tuple[int | None, int]] = []
    now = 0
    for i, g in enumerate(onsets):
        if g > now:
            events.append((None, g - now))
        pitch, end = top[g]
        stop = min(end, onsets[i + 1]) if i + 1 < len(onsets) else end
        if stop > g:
            events.append((pitch, stop - g))
            now = stop
        else:
            now = g
    trailing = grid(end_of_file) - now
    if 0 < trailing <= bar_ticks(meter):
        events.append((None, trailing))
    return Melody(meter, 0, "major", tuple((p, t / TICKS_PER_QUARTER) for p, t in events))
