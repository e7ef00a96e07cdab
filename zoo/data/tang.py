"""The `tang` corpus: the Tang poems (全唐詩) of the npm package `chinese-poetry`, cleaned of editors' notes.

Poems with lacunae, markup or stray symbols are dropped rather than repaired, and so are poems longer than
MAX_TANG_CHARS (long ballads and prefaces), which keeps the regulated forms that make up most of the corpus.
"""

from __future__ import annotations

import json
import logging
import re
import tarfile
import unicodedata
from pathlib import Path

from zoo.data.sources import MIN_CHARS, cached, data_dir, finish, newest
from zoo.errors import UsageError

logger = logging.getLogger(__name__)

TANG_MEMBER = re.compile(r"package/dist/quantangshi/poet\.tang\.(\d+)\.json")
MAX_TANG_CHARS = 120  # keeps jueju and lüshi (the bulk of the corpus), drops long ballads and prefaces
_TANG_NOTE = re.compile(r"（[^（）]*）")  # editors' notes, mostly variant readings: （一作「…」）
_TANG_EMENDED = re.compile(r"\[([^\[\]\s])\]")  # an emended character: [爽] -> 爽
_TANG_CHARS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003134f，。？！；：、「」『』《》\n]+")
_IDEOGRAPH = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003134f]")


def load() -> list[str]:
    """The documents of `tang`, cached after the first parse."""
    tgz = newest("chinese-poetry-*.tgz")
    if tgz is None:
        raise UsageError(
            f"tang needs the npm package chinese-poetry in {data_dir()}: "
            f"npm pack chinese-poetry --pack-destination {data_dir()}"
        )
    docs = cached("tang", [tgz], lambda: _tang_docs(tgz), __file__)
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
    docs = finish(docs, MIN_CHARS["tang"])
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
