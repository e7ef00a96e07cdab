"""Token shards: a corpus tokenized once (`python -m zoo.prepare`) into flat files that training memory-maps.

The nanoGPT `train.bin` habit, for corpora bigger than memory. A prepared directory holds

- `train.bin`, `val.bin`  every document's token ids followed by the end-of-text id, as raw little-endian
                          `uint16` when the vocabulary fits, else `uint32` (no header: `np.memmap` reads it);
- `tokenizer/`            the tokenizer that made the ids (`zoo.text.tokenizer`), which training must use;
- `meta.json`             dtype, token, document and character counts per split (characters count one
                          end-of-text per document, as bits per character does), the tokenizer's kind and
                          size, the split rule and the source spec. Written last: it marks a complete directory.

Training reads it as `--config.data=tokens:DIR` (zoo/objectives/lm.py); windows come from
`zoo.data.lm.TokenWindows`, which reads only the rows a process needs, so a process's memory does not grow
with the corpus.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import tempfile
from typing import Any

import numpy as np

from zoo import storage
from zoo.errors import UsageError

PREFIX = "tokens:"
META = "meta.json"  # written last: a directory without it is unfinished
TOKENIZER = "tokenizer"
SPLITS = ("train", "val")
FORMAT = "zoo-tokens/1"
PREPARE_HINT = "python -m zoo.prepare --data SOURCE --out DIR"


def shard_file(split: str) -> str:
    return f"{split}.bin"


def dtype_for(vocab_size: int) -> np.dtype:
    """The narrowest unsigned type that holds ids [0, vocab_size): half the disk and page cache of uint32
    for every vocabulary up to 65,536 tokens."""
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def is_spec(spec: str) -> bool:
    return spec.strip().startswith(PREFIX)


def directory_of(spec: str) -> pathlib.Path:
    """The local directory of a `tokens:DIR` spec. A bucket URL is refused: np.memmap needs a local file."""
    arg = spec.strip()[len(PREFIX):]
    if not arg.strip():
        raise UsageError(f"tokens:DIR needs the directory that `{PREPARE_HINT}` wrote")
    if "://" in arg:
        raise UsageError(f"tokens:{arg}: token shards are memory-mapped, so DIR must be a local directory")
    return pathlib.Path(arg).expanduser()


def read_meta(directory: pathlib.Path) -> dict[str, Any]:
    """The meta.json of a prepared directory, checked enough that a half-written or foreign one is refused."""
    if not directory.is_dir():
        raise UsageError(f"tokens:{directory}: no such directory; write one with `{PREPARE_HINT}`")
    path = directory / META
    if not path.is_file():
        raise UsageError(f"tokens:{directory} has no {META}: not a finished zoo.prepare output "
                         f"(it writes {META} last); run `{PREPARE_HINT}` again")
    try:
        meta = json.loads(path.read_text("utf-8"))
        if meta["format"] != FORMAT:
            raise ValueError(f"format {meta['format']!r}, expected {FORMAT!r}")
        np.dtype(meta["dtype"])
        for key in ("tokens", "characters", "documents"):
            if not all(isinstance(meta[key][s], int) for s in SPLITS):
                raise ValueError(f"{key} must give an integer per split")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"{path} is not a zoo.prepare meta.json ({type(err).__name__}: {err})") from None
    return meta


@dataclasses.dataclass(frozen=True)
class TokenShards:
    """A prepared directory opened for reading: the splits are read-only memory maps, not arrays in memory."""

    directory: pathlib.Path
    meta: dict[str, Any]
    train: np.ndarray
    val: np.ndarray

    @property
    def tokenizer_dir(self) -> pathlib.Path:
        return self.directory / TOKENIZER


def open_shards(spec: str) -> TokenShards:
    """The shards of `tokens:DIR`; UsageError when the directory is missing, unfinished or inconsistent."""
    directory = directory_of(spec)
    meta = read_meta(directory)
    dtype = np.dtype(meta["dtype"]).newbyteorder("<")  # the files are little-endian whatever the machine
    splits = {}
    for split in SPLITS:
        path = directory / shard_file(split)
        count = meta["tokens"][split]
        size = path.stat().st_size if path.is_file() else None
        if size != count * dtype.itemsize:
            # a shard from another prepare run, or a truncated copy: its ids would be silently wrong
            raise UsageError(f"{path} holds {size} bytes but {META} says {count} {dtype.name} tokens; "
                             f"run `{PREPARE_HINT}` again")
        splits[split] = (np.memmap(path, dtype=dtype, mode="r", shape=(count,)) if count
                         else np.zeros(0, dtype))  # mmap cannot map an empty file
    return TokenShards(directory, meta, splits["train"], splits["val"])


class ShardWriter:
    """Appends token ids to `split`'s shard in a staging directory (see `publish`), one chunk at a time:
    only the chunk being written is ever in memory."""

    def __init__(self, staging: pathlib.Path, split: str, dtype: np.dtype):
        self.dtype, self.count = np.dtype(dtype).newbyteorder("<"), 0
        self.file = open(staging / shard_file(split), "wb")  # closed by close(); a failed run's is removed unclosed

    def write(self, ids: np.ndarray) -> None:
        if len(ids) and int(ids.max()) > np.iinfo(self.dtype).max:
            raise ValueError(f"token id {int(ids.max())} does not fit {self.dtype.name}")
        np.ascontiguousarray(ids, dtype=self.dtype).tofile(self.file)
        self.count += len(ids)

    def close(self) -> None:
        self.file.close()


def staging_dir(directory: pathlib.Path) -> pathlib.Path:
    """A fresh hidden folder inside `directory` to write a new preparation into: same filesystem, so
    `publish` moves it into place by renames."""
    directory.mkdir(parents=True, exist_ok=True)
    return pathlib.Path(tempfile.mkdtemp(dir=directory, prefix=".prepare-"))


def publish(staging: pathlib.Path, directory: pathlib.Path, meta: dict[str, Any]) -> None:
    """Moves a complete preparation from `staging` into `directory`, replacing an older one.

    The old meta.json goes first and the new one comes last, so a reader never pairs one run's meta with
    another's shards: between the two the directory reads as unfinished. A training run that already
    mapped the old shards keeps reading them (a rename leaves an open file intact)."""
    (directory / META).unlink(missing_ok=True)
    for split in SPLITS:
        os.chmod(staging / shard_file(split), 0o644)
        os.replace(staging / shard_file(split), directory / shard_file(split))
    old = directory / TOKENIZER
    if old.exists():
        trash = pathlib.Path(tempfile.mkdtemp(dir=directory, prefix=".old-tokenizer-"))
        os.replace(old, trash / TOKENIZER)
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(staging / TOKENIZER, old)
    storage.write_atomic(directory / META, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(staging, ignore_errors=True)
