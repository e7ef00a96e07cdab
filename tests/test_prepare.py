"""`python -m zoo.prepare` and `--config.data=tokens:DIR` on real verse: the shards decode back to the
split's documents, a second preparation replaces the first atomically, training reads them and samples, and
a multi-GB token file trains in bounded memory with windows drawn from all of it."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from tests.helpers import ROOT, assert_usage_error, env, losses, run_sample, run_train, train_cmd
from zoo import cli, prepare
from zoo.data import provenance, sources, tokens
from zoo.data.lm import TokenWindows
from zoo.errors import UsageError
from zoo.text import tokenizer as tokenizer_lib

SHARD_FILES = {"meta.json", "train.bin", "val.bin", "tokenizer"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, list[str]]:
    """The first 300 English verse documents as a `text:` file, and those documents."""
    try:
        docs = sources.load_documents("verse-en")[:300]
    except UsageError as err:
        pytest.skip(str(err))
    path = tmp_path_factory.mktemp("corpus") / "verse.txt"
    path.write_text("\n%\n".join(docs) + "\n", "utf-8")
    assert sources.load_documents(f"text:{path}") == docs
    return path, docs


@pytest.fixture(scope="module")
def char_dir(corpus: tuple[pathlib.Path, list[str]], tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("char")
    prepare.prepare(f"text:{corpus[0]}", out, "char", workers=1)
    return out


@pytest.fixture(scope="module")
def bpe_run(corpus: tuple[pathlib.Path, list[str]], tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[pathlib.Path, subprocess.CompletedProcess]:
    """The real command line, with two tokenizing processes."""
    out = tmp_path_factory.mktemp("bpe")
    result = subprocess.run([sys.executable, "-m", "zoo.prepare", "--data", f"text:{corpus[0]}", "--tokenizer",
                             "bpe", "--vocab_size", "512", "--out", str(out), "--workers", "2"],
                            env=env(), capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return out, result


def _documents(directory: pathlib.Path, split: str) -> list[list[int]]:
    """A shard cut at its end-of-text ids: one id list per document."""
    ids = np.fromfile(directory / tokens.shard_file(split), dtype=json.loads((directory / "meta.json").read_text())
                      ["dtype"]).tolist()
    eos = tokenizer_lib.load_tokenizer(directory / "tokenizer").eos_token_id
    assert ids[-1] == eos
    cuts = [i for i, t in enumerate(ids) if t == eos]
    return [ids[a + 1:b] for a, b in zip([-1, *cuts], cuts, strict=False)]


def test_char_shards_decode_to_the_split(corpus: tuple[pathlib.Path, list[str]], char_dir: pathlib.Path) -> None:
    path, docs = corpus
    train_docs, val_docs = sources.split_documents(docs)
    meta = json.loads((char_dir / "meta.json").read_text())
    assert meta["format"] == "zoo-tokens/1" and meta["source"] == f"text:{path}" and meta["dtype"] == "uint16"
    assert meta["documents"] == {"train": 279, "val": 21} == {"train": len(train_docs), "val": len(val_docs)}
    assert meta["tokens"] == {"train": 79546, "val": 6939}  # a char per token, plus one end-of-text each
    assert meta["characters"] == {"train": sum(len(d) + 1 for d in train_docs),
                                  "val": sum(len(d) + 1 for d in val_docs)} == meta["tokens"]
    assert meta["tokenizer"] == {"kind": "char", "vocab_size": 88, "requested_vocab_size": 0,
                                 "trained_on": {"documents": 279, "characters": 79267}}
    assert meta["split"]["val_fraction"] == 0.05 and "split_documents" in meta["split"]["rule"]
    assert sorted(p.name for p in char_dir.iterdir()) == sorted(SHARD_FILES)
    assert (char_dir / "train.bin").stat().st_size == 2 * 79546
    tok = tokenizer_lib.load_tokenizer(char_dir / "tokenizer")
    vocab = tok.get_vocab()
    for split, split_docs in (("train", train_docs), ("val", val_docs)):
        decoded = [tok.decode(ids) for ids in _documents(char_dir, split)]
        # a character seen once in the training split is <unk> (min_count 2), as in an in-memory run
        assert decoded == ["".join(c if c in vocab else "<unk>" for c in d) for d in split_docs]
    assert decoded[0] == val_docs[0] and val_docs[0].startswith("Ah, my friends, from the prison, they ask unto me,\n")


def test_bpe_shards_from_the_command_line(corpus: tuple[pathlib.Path, list[str]],
                                          bpe_run: tuple[pathlib.Path, subprocess.CompletedProcess]) -> None:
    docs, (bpe_dir, result) = corpus[1], bpe_run
    train_docs, val_docs = sources.split_documents(docs)
    meta = json.loads((bpe_dir / "meta.json").read_text())
    assert meta["dtype"] == "uint16" and meta["tokenizer"]["kind"] == "bpe" and meta["tokenizer"]["vocab_size"] == 512
    assert meta["tokens"] == {"train": 40438, "val": 3507} and meta["eos_id"] == 0
    assert result.stdout.splitlines()[-1] == (f"wrote {bpe_dir}: 40438 train / 3507 val tokens (uint16, bpe vocab "
                                              f"512); train with --config.data=tokens:{bpe_dir}")
    assert result.stderr == ""  # no progress bar off a terminal
    tok = tokenizer_lib.load_tokenizer(bpe_dir / "tokenizer")
    for split, split_docs in (("train", train_docs), ("val", val_docs)):
        assert [tok.decode(ids) for ids in _documents(bpe_dir, split)] == split_docs  # byte-level: exact
        # two worker processes, chunk by chunk: the very ids of one in-memory encode
        shard = np.fromfile(bpe_dir / f"{split}.bin", np.uint16)
        np.testing.assert_array_equal(shard, tokenizer_lib.encode_documents(tok, split_docs))
    assert sorted(p.name for p in bpe_dir.iterdir()) == sorted(SHARD_FILES)


def test_uint32_when_the_vocabulary_outgrows_uint16(tmp_path: pathlib.Path) -> None:
    # 800 documents of 100 distinct private-use characters (which NFC leaves alone), each twice: a 76k-token vocab
    docs = ["".join(chr(0xF0000 + 100 * i + k) for k in range(100)) * 2 for i in range(800)]
    (tmp_path / "wide.txt").write_text("\n%\n".join(docs), "utf-8")
    meta = prepare.prepare(f"text:{tmp_path / 'wide.txt'}", tmp_path / "out", "char", workers=1)
    train_docs, _ = sources.split_documents(docs)
    assert meta["dtype"] == "uint32" and meta["tokenizer"]["vocab_size"] == 100 * len(train_docs) + 2 > 2**16
    shard = np.fromfile(tmp_path / "out" / "train.bin", np.uint32)
    assert shard.size == meta["tokens"]["train"] == 201 * len(train_docs) and shard.max() > 2**16
    tok = tokenizer_lib.load_tokenizer(tmp_path / "out" / "tokenizer")
    assert [tok.decode(ids) for ids in _documents(tmp_path / "out", "train")] == train_docs


def test_a_big_corpus_trains_its_tokenizer_on_a_sample(corpus: tuple[pathlib.Path, list[str]],
                                                       tmp_path: pathlib.Path) -> None:
    train_docs, _ = sources.split_documents(corpus[1], 0.0)
    sample = prepare.tokenizer_sample(train_docs, 20_000)
    assert sum(map(len, train_docs)) == 86_185  # so every 5th document, until 20,000 characters
    assert sample == train_docs[::5][:len(sample)] and 15_000 < sum(map(len, sample)) <= 20_000
    meta = prepare.prepare(f"text:{corpus[0]}", tmp_path, "bpe", vocab_size=300, val_fraction=0.0,
                           tokenizer_chars=20_000)
    assert meta["tokenizer"]["trained_on"] == {"documents": len(sample), "characters": sum(map(len, sample))}
    assert meta["documents"] == {"train": 300, "val": 0} and meta["tokens"]["val"] == 0
    tok = tokenizer_lib.load_tokenizer(tmp_path / "tokenizer")
    assert [tok.decode(ids) for ids in _documents(tmp_path, "train")] == train_docs  # all of it, not the sample
    assert len(tokens.open_shards(f"tokens:{tmp_path}").val) == 0


def test_a_second_prepare_replaces_the_first_atomically(corpus: tuple[pathlib.Path, list[str]],
                                                       tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    spec, out = f"text:{corpus[0]}", tmp_path / "shards"
    prepare.prepare(spec, out, "char", workers=1)
    reading = tokens.open_shards(f"tokens:{out}")  # a training run that mapped the first preparation
    before = np.array(reading.train[:1000])
    prepare.prepare(spec, out, "bpe", vocab_size=300, workers=1)
    first_bpe = {name: (out / name).read_bytes() for name in ("meta.json", "train.bin", "val.bin")}
    assert json.loads(first_bpe["meta.json"])["tokenizer"]["vocab_size"] == 300
    np.testing.assert_array_equal(reading.train[:1000], before)  # the old map still reads the old shard
    assert len(tokens.open_shards(f"tokens:{out}").train) == len(first_bpe["train.bin"]) // 2 < 79546

    def disk_full(*args: object) -> np.ndarray:  # a failure after the staging folder has the new tokenizer
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tokenizer_lib, "encode_documents", disk_full)
    with pytest.raises(OSError, match="No space left"):
        prepare.prepare(spec, out, "char", workers=1)
    monkeypatch.undo()
    assert sorted(p.name for p in out.iterdir()) == sorted(SHARD_FILES)  # the staging folder is gone
    assert {name: (out / name).read_bytes() for name in first_bpe} == first_bpe  # the failed run changed nothing
    prepare.prepare(spec, out, "bpe", vocab_size=300, workers=1)
    assert {name: (out / name).read_bytes() for name in first_bpe} == first_bpe  # deterministic


def test_windows_over_the_shards_are_the_in_memory_windows(corpus: tuple[pathlib.Path, list[str]],
                                                           char_dir: pathlib.Path) -> None:
    """So a tokens:DIR run sees the very batches (and resumes as exactly) as a run on the source itself."""
    shards = tokens.open_shards(f"tokens:{char_dir}")
    assert isinstance(shards.train, np.memmap) and shards.train.dtype == np.uint16
    train_docs, _ = sources.split_documents(corpus[1])
    in_memory = tokenizer_lib.encode_documents(tokenizer_lib.load_tokenizer(shards.tokenizer_dir), train_docs)
    mapped, held = TokenWindows(shards.train, 32, 8, seed=5), TokenWindows(in_memory, 32, 8, seed=5)
    assert mapped.tokens is shards.train  # not copied or widened into memory
    for step in (0, 1, 7, 1000):
        batch = mapped.batch(step)["tokens"]
        assert batch.dtype == np.int32 and batch.shape == (8, 33)
        np.testing.assert_array_equal(batch, held.batch(step)["tokens"])
        halves = [mapped.batch(step, p, 2)["tokens"] for p in (0, 1)]  # each process builds only its rows
        np.testing.assert_array_equal(np.concatenate(halves), batch)
    for a, b in zip(mapped.eval_batches(3), held.eval_batches(3), strict=True):
        np.testing.assert_array_equal(a["tokens"], b["tokens"])


def test_train_from_tokens_and_sample(char_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    workdir = tmp_path / "run"
    result = run_train(workdir, f"--config.data=tokens:{char_dir}", "--config.train_steps=30",
                       "--config.log_every=10", "--config.eval_every=30", "--config.checkpoint_every=30")
    assert "the config's tokenizer=char and vocab_size=0 are not used" in result.stdout
    curve = losses(workdir)
    assert sorted(curve) == [10, 20, 30] and curve[30] < curve[10] - 0.5, curve
    run_tok = (workdir / "tokenizer" / "tokenizer.json").read_text()
    assert run_tok == (char_dir / "tokenizer" / "tokenizer.json").read_text()
    card = (workdir / "export" / "README.md").read_text()
    assert f"token shards at {char_dir}, prepared from the user's own text at " in card
    sampled = run_sample("--model", "poem", "--prompt", "The moon", "--checkpoint", str(workdir), "--seed", "3")
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout.startswith("The moon") and len(sampled.stdout) > len("The moon") + 10


BIG_TOKENS = 5 * 2**30 // 2  # a 5 GiB uint16 shard: offsets past 2**31 tokens and 4 GiB bytes
PEAK_RSS = """import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print("peak_rss_kib", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)"""


def test_a_5gb_sparse_shard_trains_in_bounded_memory(char_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    shutil.copytree(char_dir / "tokenizer", big / "tokenizer")
    shutil.copy(char_dir / "val.bin", big / "val.bin")
    meta = json.loads((char_dir / "meta.json").read_text())
    meta["tokens"]["train"] = meta["characters"]["train"] = BIG_TOKENS
    (big / "meta.json").write_text(json.dumps(meta))
    real = np.fromfile(char_dir / "train.bin", np.uint16)
    with open(big / "train.bin", "wb") as f:
        f.truncate(2 * BIG_TOKENS)  # sparse: no disk blocks until written
        f.seek(2 * (BIG_TOKENS - 1000))
        f.write(real[:1000].tobytes())  # real text at the very end
    try:
        assert os.stat(big / "train.bin").st_blocks * 512 < 2**20
        windows = TokenWindows(tokens.open_shards(f"tokens:{big}").train, 32, 8, seed=0)
        starts = np.concatenate([windows.starts(step) for step in range(50)])
        assert starts.dtype == np.int64 and starts.min() < 0.05 * BIG_TOKENS and starts.max() > 0.95 * BIG_TOKENS
        assert (starts >= 2**31).sum() > 40  # ~20% of 400 windows lie beyond 4 GiB
        step, row = next((s, r) for s in range(50) for r, x in enumerate(windows.starts(s)) if x >= 2**31 + 10**8)
        with open(big / "train.bin", "r+b") as f:  # real text where that window falls
            f.seek(2 * int(windows.starts(step)[row]))
            f.write(real[5000:5033].tobytes())
        np.testing.assert_array_equal(windows.batch(step)["tokens"][row], real[5000:5033])
        last = list(windows.eval_batches(2))[-1]["tokens"][-1]
        np.testing.assert_array_equal(last, real[1000 - 33:1000])  # the fixed eval windows reach the end

        workdir = tmp_path / "run"
        result = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, *train_cmd(workdir, f"--config.data=tokens:{big}",
                                                       "--config.train_steps=10", "--config.log_every=5",
                                                       "--config.eval_every=10", "--config.checkpoint_every=10")],
            env=env(), capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        peak_kib = int(result.stdout.splitlines()[-1].split()[1])
        print(f"peak RSS of train.py on a {2 * BIG_TOKENS / 2**30:.0f} GiB shard: {peak_kib / 2**10:.0f} MiB")
        assert peak_kib < 2**20, peak_kib  # under 1 GiB: the 10 GiB an int32 copy would take never happens
        assert sorted(losses(workdir)) == [5, 10] and all(np.isfinite(list(losses(workdir).values())))
    finally:
        (big / "train.bin").unlink()


@pytest.fixture
def root_logging() -> Iterator[None]:
    """prepare.main sets up the CLI's logging on the root logger; the other tests keep pytest's."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        cli.run(prepare.main, list(argv))
    return exit_.value.code, capsys.readouterr().err


def test_prepare_bad_input(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture, root_logging: None) -> None:
    out = str(tmp_path / "out")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for argv, fragment in [
        (["--data", "nonsense", "--out", out], "unknown data source 'nonsense'; valid forms: verse-en"),
        (["--data", f"text:{tmp_path / 'nope.txt'}", "--out", out], "no such file or directory"),
        (["--data", "verse-en", "--out", str(a_file)], "is a file, not a directory"),
        (["--data", "verse-en", "--out", "gs://bucket/x"], "write a local directory"),
        (["--data", "verse-en", "--out", out, "--tokenizer", "wordpiece"], "invalid choice: 'wordpiece'"),
        (["--data", "verse-en"], "the following arguments are required: --out"),
    ]:
        code, err = _cli(capsys, *argv)
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and fragment in err, (argv, err)
    assert not (tmp_path / "out").exists()


def test_unusable_token_directories(char_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    missing = run_train(tmp_path / "run", f"--config.data=tokens:{tmp_path / 'nope'}", check=False)
    assert_usage_error(missing, f"tokens:{tmp_path / 'nope'}: no such directory", "python -m zoo.prepare")
    unfinished = tmp_path / "unfinished"
    shutil.copytree(char_dir, unfinished)
    (unfinished / "meta.json").unlink()
    with pytest.raises(UsageError, match="has no meta.json: not a finished zoo.prepare output"):
        tokens.open_shards(f"tokens:{unfinished}")
    shutil.copy(char_dir / "meta.json", unfinished / "meta.json")
    with open(unfinished / "train.bin", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(UsageError, match=r"train.bin holds 1000 bytes but meta.json says 79546 uint16 tokens"):
        tokens.open_shards(f"tokens:{unfinished}")
    for spec, message in [("tokens:", "needs the directory"), ("tokens:gs://b/x", "must be a local directory")]:
        with pytest.raises(UsageError, match=message):
            tokens.open_shards(spec)


def test_provenance_follows_the_source(char_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    source, licence = provenance.describe(f"tokens:{char_dir}")
    assert source.startswith(f"token shards at {char_dir}, prepared from the user's own text at ")
    assert licence == "the user's: check it before sharing the model"
    assert provenance.describe(f"tokens:{tmp_path}")[1].startswith("unknown")
