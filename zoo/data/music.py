"""The folk-tune corpus of the `music` model: loading (parsed once, cached), captions, the split.

The music21 corpus's ABC collections: O'Neill's Music of Ireland 1850 (`oneills1850`),
Ryan's Mammoth Collection (`ryansMammoth`), Aird's Airs (`airdsAirs`) and `miscFolk` by default; Bach
chorale soprano lines (`bach`) as an option; the Essen collection (`essenFolksong`) only when asked for
by name, because its licence is non-commercial. Parsing with music21 costs ~10-50 tunes/s, so
`load_tunes` parses once, in parallel, and caches plain arrays (one `.npz` under `data_dir()/cache`,
keyed by the music21 version, the parsing code and the collections asked for).

How a tune is read (metadata, top voice, bars on the meter's grid) is zoo.data.music_parse; how it is
encoded as tokens is zoo.melody.encoding; batches of encoded tunes are zoo.data.music_batches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.data import music_parse
from zoo.data.sources import data_dir
from zoo.errors import UsageError
from zoo.melody import encoding
from zoo.melody.encoding import TICKS_PER_QUARTER, Melody, tonic_name

logger = logging.getLogger(__name__)

DEFAULT_COLLECTIONS = ("oneills1850", "ryansMammoth", "airdsAirs", "miscFolk")
OPTIONAL_COLLECTIONS = ("bach", "essenFolksong")  # essenFolksong: non-commercial licence, never a default
COLLECTIONS = DEFAULT_COLLECTIONS + OPTIONAL_COLLECTIONS
# what decides a parsed tune: a change to any of them re-parses instead of reading a stale cache
PARSING_CODE = (Path(__file__), Path(music_parse.__file__), Path(encoding.__file__))

# ------------------------------------------------------------------------------------------ data types


@dataclass(frozen=True, eq=False)
class Tune:
    """One tune of the corpus: metadata and its melody as arrays (pitch -1 = rest, durations in ticks), which
    zoo.melody.encoding encodes and transposes as it does a `Melody`."""

    title: str
    genre: str
    meter: str
    tonic: int
    mode: str
    pitches: np.ndarray  # int16, -1 for a rest
    ticks: np.ndarray  # int32 durations, TICKS_PER_QUARTER per quarter note
    collection: str = ""
    source: str = ""  # file and ABC X: number, for finding the tune again

    @property
    def key_name(self) -> str:
        return f"{tonic_name(self.tonic, self.mode)} {self.mode}"

    @property
    def melody(self) -> Melody:
        notes = tuple(
            (None if p < 0 else int(p), t / TICKS_PER_QUARTER)
            for p, t in zip(self.pitches.tolist(), self.ticks.tolist(), strict=True)
        )
        return Melody(self.meter, self.tonic, self.mode, notes)


@dataclass
class TuneCorpus:
    """The parsed tunes and what parsing them cost and dropped."""

    tunes: list[Tune]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (malformed, off grid, ...)
    repairs: int = 0  # bars re-aligned to the meter with a rest (pickups not counted)
    parse_seconds: float = 0.0
    cache_path: Path | None = None

    def per_collection(self) -> dict[str, int]:
        return dict(Counter(t.collection for t in self.tunes))


# --------------------------------------------------------------------------------------------- captions

_ARTICLE_AN = re.compile(r"^[aeiou]", re.IGNORECASE)


def caption(tune: Tune, semitones: int = 0) -> str:
    """A one-sentence description from the tune's metadata, the text the model is conditioned on.

    `semitones` names the key the tune has after `zoo.melody.encoding.transpose(tune, semitones)`, so a
    transposed training example is described truthfully. E.g. "The Humours of Ennis. A jig in D major, 6/8."
    """
    genre = tune.genre if tune.genre and tune.genre != "unknown" else "tune"
    article = "An" if _ARTICLE_AN.match(genre) else "A"
    key = f"{tonic_name((tune.tonic + semitones) % 12, tune.mode)} {tune.mode}"
    body = f"{article} {genre} in {key}, {tune.meter}."
    title = tune.title.strip()
    if not title:
        return body
    return f"{title}{'' if title[-1] in '.?!' else '.'} {body}"


def caption_table(tunes: Sequence[Tune]) -> tuple[list[str], np.ndarray]:
    """(unique captions, index int32[n, 12]): index[i, s] is the caption of tune i moved up s semitones
    (mod 12), the form `zoo.data.music_batches.MelodyBatches` takes so that a transposed tune is
    conditioned on its real key."""
    captions: dict[str, int] = {}
    index = np.zeros((len(tunes), 12), np.int32)
    for i, tune in enumerate(tunes):
        for s in range(12):
            index[i, s] = captions.setdefault(caption(tune, s), len(captions))
    return list(captions), index


# ---------------------------------------------------------------------------------------------- split


def tune_hash(tune: Tune) -> int:
    """A stable 64-bit hash of a tune's title and notes: what decides its side of the split."""
    h = hashlib.blake2b(digest_size=8)
    h.update(tune.title.strip().lower().encode())
    h.update(np.asarray(tune.pitches, "<i2").tobytes())
    h.update(np.asarray(tune.ticks, "<i4").tobytes())
    return int.from_bytes(h.digest(), "big")


def split_tunes(tunes: Sequence[Tune], val_fraction: float = 0.05) -> tuple[list[Tune], list[Tune]]:
    """Deterministic (train, validation) split by `tune_hash`: independent of order, of the corpus
    growing, and of PYTHONHASHSEED, like `zoo.data.sources.split_documents`."""
    if not 0.0 <= val_fraction < 1.0:
        raise UsageError(f"val_fraction must be in [0, 1), got {val_fraction}")
    cut = int(val_fraction * 2**64)
    hashes = [tune_hash(t) for t in tunes]
    if val_fraction > 0 and len(set(hashes)) >= 2:  # a few kept tunes: still one held out, one trained on
        ranked = sorted(set(hashes))
        cut = min(max(cut, ranked[0] + 1), ranked[-1])
    train = [t for t, h in zip(tunes, hashes, strict=True) if h >= cut]
    val = [t for t, h in zip(tunes, hashes, strict=True) if h < cut]
    return train, val


# ----------------------------------------------------------------------------------------- load + cache


def _fingerprint(collections: Sequence[str], files: Sequence[str | Path] | None, limit: int | None) -> str:
    h = hashlib.blake2b(digest_size=8)
    for source in PARSING_CODE:
        h.update(source.read_bytes())
    h.update(f"{music_parse.music21_version()}|{sorted(collections)}|{limit}".encode())
    for f in files or ():
        st = Path(f).stat()
        h.update(f"{Path(f).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()


DATA_SPECS = {"folk": DEFAULT_COLLECTIONS}


def load_corpus(spec: str, limit: int | None = None, progress: bool = False) -> TuneCorpus:
    """The tunes of `config.data`: music21 collections ("folk", names joined by "," or "+"), or `midi:DIR`,
    a folder of your own MIDI files (zoo.data.kept)."""
    if spec.startswith("midi:"):
        from zoo.data.kept import load_midi_folder

        return load_midi_folder(spec)
    return load_tunes(collections_for(spec), limit=limit, progress=progress)


def collections_for(spec: str) -> tuple[str, ...]:
    """`config.data` -> music21 collections: "folk" (the default four), or names joined by "," or "+"."""
    if spec in DATA_SPECS:
        return DATA_SPECS[spec]
    names = tuple(n.strip() for n in spec.replace("+", ",").split(",") if n.strip())
    if not names:
        raise UsageError(f"empty music data spec {spec!r}; use 'folk' or collection names")
    return names  # load_tunes names the valid ones if any is unknown


def load_tunes(collections: Sequence[str] = DEFAULT_COLLECTIONS, *, files: Sequence[str | Path] | None = None,
               limit: int | None = None, workers: int | None = None, cache: bool = True,
               progress: bool = True) -> TuneCorpus:
    """The tunes of `collections` (or of your own ABC/MusicXML `files`), parsed once and cached.

    `limit` caps the tunes taken per collection (tests, quick looks); `workers` parallel parsers (default:
    all cores; 1 parses in this process). Unparseable tunes are skipped and counted in `.skipped`; exact
    duplicates (same title and notes) too. Raises UsageError for an unknown collection or missing music21.
    """
    collections = tuple(collections)
    if unknown := [c for c in collections if c not in COLLECTIONS]:
        raise UsageError(f"unknown music collection(s) {unknown}; valid: {', '.join(COLLECTIONS)}")
    music_parse.corpus_dir()  # fails first, with the install command, when music21 is missing
    if files is not None:
        for f in files:
            if not Path(f).is_file():
                raise UsageError(f"no such music file: {f}")
    key = _fingerprint(collections, files, limit)
    name = "music-" + ("files" if files is not None else "-".join(collections))
    path = data_dir() / "cache" / f"{name[:80]}-{key}.npz"
    if cache and path.is_file():
        try:
            corpus = _read_cache(path)
            corpus.cache_path = path
            return corpus
        except (OSError, ValueError, KeyError) as err:
            logger.warning("ignoring unreadable cache %s: %s", path, err)
    start = time.perf_counter()
    skipped: Counter = Counter()
    tasks = music_parse.tasks(collections, files, limit, skipped)
    results = _run_tasks(tasks, workers, progress)
    tunes: list[Tune] = []
    repairs = 0
    seen: set[int] = set()
    for res in results:
        if not res["ok"]:
            skipped[res["reason"]] += 1
            if res.get("error"):
                logger.debug("skipped %s: %s", res["source"], res["error"])
            continue
        tune = Tune(res["title"], res["genre"], res["meter"], res["tonic"], res["mode"],
                    np.asarray(res["pitches"], np.int16), np.asarray(res["ticks"], np.int32),
                    res["collection"], res["source"])
        h = tune_hash(tune)
        if h in seen:
            skipped["duplicate"] += 1
            continue
        seen.add(h)
        repairs += res["repairs"]
        tunes.append(tune)
    corpus = TuneCorpus(tunes, dict(sorted(skipped.items())), repairs, time.perf_counter() - start)
    if not tunes:
        raise UsageError(f"no tune could be parsed from {list(files) if files is not None else collections}")
    if cache:
        corpus.cache_path = _write_cache(path, corpus, name)
    return corpus


def _run_tasks(tasks: list[tuple], workers: int | None, progress: bool) -> list[dict]:
    """`music_parse.parse_task` over all tasks, in order, in a spawn pool (fork is unsafe once JAX has threads)."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks) or 1))
    bar = _progress(len(tasks), progress)
    results = []
    if workers == 1:
        for task in tasks:
            results.append(music_parse.parse_task(task))
            bar(1)
    else:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for res in pool.imap(music_parse.parse_task, tasks, chunksize=4):
                results.append(res)
                bar(1)
    bar(0, close=True)
    return results


def _progress(total: int, enabled: bool):
    """A tqdm bar on a terminal, else a plain line on stderr every 500 tunes (logs, CI)."""
    if not enabled:
        return lambda n, close=False: None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, desc="parsing tunes", unit="tune")

        def update(n: int, close: bool = False) -> None:
            bar.update(n)
            if close:
                bar.close()

        return update
    done = [0]
    start = time.perf_counter()

    def line(n: int, close: bool = False) -> None:
        done[0] += n
        if (n and done[0] % 500 == 0) or close:
            rate = done[0] / max(time.perf_counter() - start, 1e-9)
            print(f"parsing tunes: {done[0]}/{total} ({rate:.0f}/s)", file=sys.stderr, flush=True)

    return line


def _write_cache(path: Path, corpus: TuneCorpus, name: str) -> Path | None:
    """One .npz: concatenated pitches/ticks with offsets, and the metadata as a JSON string (no pickle)."""
    tunes = corpus.tunes
    meta = {
        "tunes": [[t.title, t.genre, t.meter, t.tonic, t.mode, t.collection, t.source] for t in tunes],
        "skipped": corpus.skipped, "repairs": corpus.repairs, "parse_seconds": corpus.parse_seconds,
    }
    offsets = np.cumsum([0] + [len(t.pitches) for t in tunes]).astype(np.int64)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name[:40]}-", suffix=".npz", dir=path.parent)
        with os.fdopen(fd, "wb") as out:
            np.savez_compressed(out, pitches=np.concatenate([t.pitches for t in tunes]).astype(np.int16),
                                ticks=np.concatenate([t.ticks for t in tunes]).astype(np.int32),
                                offsets=offsets, meta=np.asarray(json.dumps(meta, ensure_ascii=False)))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        for stale in path.parent.glob(f"{name[:80]}-{'?' * 16}.npz"):  # this spec's older caches only
            if stale != path:
                stale.unlink(missing_ok=True)
        return path
    except OSError as err:
        logger.info("not caching the music corpus: %s", err)
        return None


def _read_cache(path: Path) -> TuneCorpus:
    with np.load(path, allow_pickle=False) as z:
        pitches, ticks, offsets = z["pitches"], z["ticks"], z["offsets"]
        meta = json.loads(str(z["meta"]))
    tunes = [Tune(title, genre, meter, int(tonic), mode, pitches[offsets[i]:offsets[i + 1]].copy(),
                  ticks[offsets[i]:offsets[i + 1]].copy(), collection, source)
             for i, (title, genre, meter, tonic, mode, collection, source) in enumerate(meta["tunes"])]
    return TuneCorpus(tunes, meta["skipped"], meta["repairs"], meta["parse_seconds"])
