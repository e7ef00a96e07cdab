"""Parsing the corpus's source formats (music21's ABC and MusicXML files) into tunes on the encoding's grid.

ABC files hold many tunes; each `X:` block is parsed on its own (in a worker: `parse_task`), so one
malformed tune costs only itself: it is skipped and counted under a reason. The metadata comes from the ABC
header itself, not from music21's reading of it (which, e.g., turns `L:1/16` into a 1/16 time signature):
title (`T:`), meter (`M:`; `C` is 4/4 and `C|` 2/2), key tonic and mode (`K:`, e.g. `Ador`, `E Minor`,
`Gmix`), and a genre from the rhythm field (`R:`), else from words of the title ("... Hornpipe",
"Quick Step"), else, for O'Neill's, from the section of the book the tune number falls in (airs,
double jigs, slip jigs, reels, hornpipes, long dances, marches), else `unknown`. O'Neill's corpus holds
several tunes twice (two transcribers' files); the first copy of each tune number wins.

The melody is the top voice (the highest note of a chord), without grace notes or chord symbols, with
tied notes of the same pitch merged (O'Neill's transcriber also writes slurs as ties; those are kept as
separate notes). Repeats are not expanded: a tune is what is written, once through. Its bars follow the
meter's grid from the start (`_align`): a pickup is padded with a leading rest to a full bar, and a bar that
notation leaves out of phase with the meter (an uncompensated repeat half-bar, a miscounted bar) is
re-aligned with a rest, counted as a repair. A duration off the tick grid skips the tune (`off grid`).
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from zoo.errors import UsageError
from zoo.melody.encoding import MAX_SPAN, METERS, TICKS_PER_QUARTER, bar_ticks, fold, parse_key

MUSIC21_INSTALL = "pip install music21"

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


def corpus_dir() -> Path:
    if importlib.util.find_spec("music21") is None:
        raise UsageError(f"the music corpus needs music21: {MUSIC21_INSTALL}")
    import music21

    return Path(music21.__file__).parent / "corpus"


def music21_version() -> str:
    import music21

    return str(music21.__version__)


def tasks(collections: Sequence[str], files: Sequence[str | Path] | None, limit: int | None,
           skipped: Counter) -> list[tuple]:
    """What to parse: (collection, source, kind, payload, number) per tune, before any music21 work.

    O'Neill's duplicate tune numbers are dropped here (counted as `duplicate`)."""
    sources: list[tuple[str, Path]] = []
    if files is not None:
        sources = [("files", Path(f)) for f in files]
    else:
        root = corpus_dir()
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


def parse_task(task: tuple) -> dict:
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
    shift = fold(min(pitches), max(pitches), 0)
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

