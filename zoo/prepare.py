"""Tokenize a corpus once into memory-mappable shards, for training on corpora bigger than memory.

    python -m zoo.prepare --data text:my_corpus/ --tokenizer bpe --vocab_size 8192 --out data/my_corpus
    python train.py --config configs/poem.py --workdir runs/mine --config.data=tokens:data/my_corpus

It splits the documents with the same stable hash as training does (`zoo.data.sources.split_documents`),
trains the tokenizer on the training split, tokenizes both splits in parallel worker processes, chunk by
chunk, and appends each chunk to `train.bin` / `val.bin` as it arrives, so the corpus's token ids are never
all in memory (the format: zoo/data/tokens.py). The documents themselves come from `zoo.data.sources`,
whose loaders return a corpus as one list of strings; what grows with the corpus beyond that text is only
on disk.

A large corpus trains its tokenizer on a bounded sample: evenly spaced training documents up to
`--tokenizer_chars` characters (the tokenizers' trainers hold their whole input and its counts in memory).
Below that size the sample is the whole training split, so the tokenizer is the one `train.py
--config.data=SOURCE` would train, and the shards hold exactly the ids it would tokenize in memory. With a
sample, a character tokenizer maps characters that the sample never shows twice to `<unk>`.

Everything is written into a hidden folder inside `--out` and moved into place when complete, meta.json last
(zoo.data.tokens.publish): an interrupted run leaves an older preparation in `--out` intact, and a directory
without meta.json is refused by training.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import os
import pathlib
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from zoo import cli
from zoo.data import sources, tokens
from zoo.errors import UsageError
from zoo.text import tokenizer as tokenizer_lib

log = logging.getLogger(__name__)

CHUNK_CHARS = 1_000_000  # text per worker task: big enough to amortise pickling, small next to memory
TOKENIZER_CHARS = 50_000_000  # the default sample the tokenizer trains on (a few GB of trainer memory for BPE)


def tokenizer_sample(docs: Sequence[str], max_chars: int) -> list[str]:
    """Evenly spaced documents of `docs`, at most `max_chars` characters in all; every document when they
    fit. Evenly spaced rather than the first ones, so a corpus sorted by source or date is represented."""
    total = sum(map(len, docs))
    if total <= max_chars:
        return list(docs)
    stride = -(-total // max_chars)
    sample, size = [], 0
    for doc in docs[::stride]:
        if size + len(doc) > max_chars:
            break
        sample.append(doc)
        size += len(doc)
    return sample


def chunks(docs: Iterable[str], max_chars: int = CHUNK_CHARS) -> Iterator[list[str]]:
    """Consecutive runs of documents of about `max_chars` characters each (a longer document is its own)."""
    chunk: list[str] = []
    size = 0
    for doc in docs:
        if chunk and size + len(doc) > max_chars:
            yield chunk
            chunk, size = [], 0
        chunk.append(doc)
        size += len(doc)
    if chunk:
        yield chunk


# One tokenizer per worker process, loaded once by the pool's initializer rather than pickled per task.
_worker_tokenizer: Any = None
_worker_dtype: np.dtype | None = None


def _init_worker(tokenizer_dir: str, dtype: str) -> None:
    global _worker_tokenizer, _worker_dtype
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the processes are the parallelism; threads would oversubscribe
    _worker_tokenizer = tokenizer_lib.load_tokenizer(tokenizer_dir)
    _worker_dtype = np.dtype(dtype)


def _encode(chunk: list[str]) -> np.ndarray:
    # the shard's dtype already here: half the bytes sent back for uint16
    return tokenizer_lib.encode_documents(_worker_tokenizer, chunk).astype(_worker_dtype)


def write_split(writer: tokens.ShardWriter, docs: Sequence[str],
                encode: Callable[[Iterable[list[str]]], Iterable[np.ndarray]], split: str) -> None:
    """Tokenizes `docs` chunk by chunk with `encode` (a map over chunks, in order) into `writer`."""
    total = sum(map(len, docs))
    # stderr only on a terminal: a log file gets the summary line instead of carriage-return redraws
    with tqdm(total=total, desc=split, unit="char", unit_scale=True, disable=None, file=sys.stderr) as bar:
        for chunk, ids in zip(chunks(docs), encode(chunks(docs)), strict=True):
            writer.write(ids)
            bar.update(sum(map(len, chunk)))
    writer.close()
    log.info("%s: %d documents, %d characters -> %d tokens (%s)", split, len(docs), total, writer.count,
             writer.dtype.name)


def prepare(data: str, out: pathlib.Path, kind: str, vocab_size: int = 0, val_fraction: float = 0.05,
            workers: int = 1, tokenizer_chars: int = TOKENIZER_CHARS) -> dict[str, Any]:
    """Writes the shards, tokenizer and meta.json of corpus `data` into `out`; returns the meta."""
    docs = sources.load_documents(data)
    train_docs, val_docs = sources.split_documents(docs, val_fraction)
    del docs  # the two splits hold the same strings
    sample = tokenizer_sample(train_docs, tokenizer_chars)
    if len(sample) < len(train_docs):
        log.info("training the %s tokenizer on %d of %d training documents (%d characters: --tokenizer_chars)",
                 kind, len(sample), len(train_docs), sum(map(len, sample)))
    tok = tokenizer_lib.train_tokenizer(sample, kind, vocab_size)
    dtype = tokens.dtype_for(len(tok))
    staging = tokens.staging_dir(out)
    try:
        tokenizer_lib.save_tokenizer(tok, staging / tokens.TOKENIZER)
        written = {}
        with contextlib.ExitStack() as stack:
            if workers > 1:
                context = multiprocessing.get_context("spawn")  # fork would copy the parent's Rust thread pools
                pool = stack.enter_context(
                    context.Pool(workers, _init_worker, (str(staging / tokens.TOKENIZER), dtype.name)))
                encode = functools.partial(pool.imap, _encode)  # imap: results in order, as they finish
            else:
                encode = functools.partial(map, functools.partial(tokenizer_lib.encode_documents, tok))
            for split, split_docs in (("train", train_docs), ("val", val_docs)):
                written[split] = tokens.ShardWriter(staging, split, dtype)
                write_split(written[split], split_docs, encode, split)
        splits = {"train": train_docs, "val": val_docs}
        meta = {
            "format": tokens.FORMAT,
            "source": data,
            "dtype": dtype.name,
            "eos_id": tok.eos_token_id,
            "tokens": {s: w.count for s, w in written.items()},
            "documents": {s: len(d) for s, d in splits.items()},
            # code points plus one end-of-text per document, as LMTask counts them for bits per character
            "characters": {s: sum(len(doc) + 1 for doc in d) for s, d in splits.items()},
            "tokenizer": {"kind": kind, "vocab_size": len(tok), "requested_vocab_size": vocab_size,
                          "trained_on": {"documents": len(sample), "characters": sum(map(len, sample))}},
            "split": {"rule": "zoo.data.sources.split_documents: a document goes to val when the 64-bit blake2b "
                              "hash of its text is below val_fraction * 2**64",
                      "val_fraction": val_fraction},
        }
        tokens.publish(staging, out, meta)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return meta


def main(argv: list[str]) -> int:
    parser = cli.ArgumentParser(prog="python -m zoo.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help=f"the corpus: {sources.VALID_SPECS}")
    parser.add_argument("--tokenizer", default="bpe", choices=tokenizer_lib.KINDS)
    parser.add_argument("--vocab_size", type=int, default=0,
                        help=f"bpe: number of tokens (0 = {tokenizer_lib.DEFAULT_BPE_VOCAB}); char: a cap (0 = none)")
    parser.add_argument("--out", required=True, help="the directory to write; train with --config.data=tokens:DIR")
    parser.add_argument("--val_fraction", type=float, default=0.05, help="as the config's val_fraction")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="tokenizing processes")
    parser.add_argument("--tokenizer_chars", type=int, default=TOKENIZER_CHARS,
                        help="train the tokenizer on at most this many characters of evenly spaced documents")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out).expanduser()
    if "://" in args.out:
        raise UsageError(f"--out {args.out}: shards are memory-mapped by training, so write a local directory")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out} is a file, not a directory")
    if args.workers < 1 or args.tokenizer_chars < 1:
        raise UsageError("--workers and --tokenizer_chars must be positive")
    cli.setup_logging()
    meta = prepare(args.data, out, args.tokenizer, args.vocab_size, args.val_fraction, args.workers,
                   args.tokenizer_chars)
    print(f"wrote {out}: {meta['tokens']['train']} train / {meta['tokens']['val']} val tokens "
          f"({meta['dtype']}, {meta['tokenizer']['kind']} vocab {meta['tokenizer']['vocab_size']}); "
          f"train with --config.data=tokens:{out}")
    return 0


if __name__ == "__main__":
    cli.run(main)
