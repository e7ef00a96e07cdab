"""Tokenizers for the poem language models, trained offline with the `tokenizers` library.

Two kinds, both wrapped as `transformers.PreTrainedTokenizerFast` so that saving, loading and decoding
follow one well-known API:

- `char`: one token per Unicode character (code point) seen at least `min_count` times, plus `<unk>`.
  The Tang model's (configs/poem_zh.py): BPE cannot compress Tang verse, whose ~7k characters each stay a token.
- `bpe`:  byte-level BPE (GPT-2 style) of `vocab_size` tokens: no unknowns, any text round-trips. The English
  model's (configs/poem.py): each step sees more text than with characters.

Both have one special token `<|endoftext|>` (the `eos_token`) that ends every document in the training
stream, and neither adds BOS/EOS on encode: `encode_documents` places the end-of-text ids itself, and the
sampler primes with `[eos] + encode(prompt)`. Decoding joins tokens without inserting spaces, so
`decode(encode(text)) == text` exactly for text without unknown characters.
"""

from __future__ import annotations

import collections
import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# transformers without torch prints an advisory on import; on stderr it would break the CLIs' one-line errors.
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast  # noqa: E402

from zoo.errors import UsageError

EOS = "<|endoftext|>"
FILE = "tokenizer.json"  # the file that makes a directory a tokenizer (save_pretrained's name)
UNK = "<unk>"
KINDS = ("char", "bpe")
DEFAULT_MIN_COUNT = 2  # a character seen once is as likely a typo or lacuna as a real character
DEFAULT_BPE_VOCAB = 4096  # used when a config leaves vocab_size at 0


def train_tokenizer(
    docs: Sequence[str], kind: str, vocab_size: int = 0, *, min_count: int = DEFAULT_MIN_COUNT
) -> PreTrainedTokenizerFast:
    """A new tokenizer of `kind` ("char" or "bpe") for `docs`; deterministic for the same docs.

    `vocab_size`: for bpe the total vocabulary (0 -> DEFAULT_BPE_VOCAB); for char an optional cap that keeps
    the most frequent characters (0 -> every character seen at least `min_count` times).
    """
    if kind == "char":
        return _train_char(docs, vocab_size, min_count)
    if kind == "bpe":
        return _train_bpe(docs, vocab_size or DEFAULT_BPE_VOCAB)
    raise UsageError(f"unknown tokenizer {kind!r}; valid: {', '.join(KINDS)}")


def save_tokenizer(tok: PreTrainedTokenizerFast, directory: str | Path) -> None:
    """Write `tok` as tokenizer.json + tokenizer_config.json into `directory` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(directory))


def load_tokenizer(directory: str | Path) -> PreTrainedTokenizerFast:
    """The tokenizer `save_tokenizer` wrote into `directory`; reads local files only, never the network."""
    directory = Path(directory).expanduser()
    if not (directory / FILE).is_file():
        raise UsageError(f"no tokenizer in {directory} (expected tokenizer.json written by save_tokenizer)")
    try:
        tok = PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)
    except Exception as err:  # tokenizers reports a corrupt file as a bare Exception
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UsageError(f"cannot load the tokenizer in {directory}: {first}") from err
    if tok.eos_token_id is None or tok.convert_ids_to_tokens(tok.eos_token_id) != EOS:
        raise UsageError(f"the tokenizer in {directory} has no {EOS} token: not a zoo tokenizer")
    return tok


def encode_documents(tok: PreTrainedTokenizerFast, docs: Sequence[str]) -> np.ndarray:
    """All `docs` as one int32 token stream, each document followed by the end-of-text id.

    Same ids as `tok.encode(doc, add_special_tokens=False)` per document. A char tokenizer is applied as a
    vectorised code-point lookup in numpy (~0.1 s per 1M chars, ~10x faster than tokenizers' per-character
    pre-tokenizer); BPE is one parallel `encode_batch` in Rust (~1.5 s per 1M chars of Tang on 2 cores).
    """
    eos = tok.eos_token_id
    if eos is None:
        raise UsageError(f"tokenizer has no end-of-text token {EOS}")
    docs = list(docs)
    char_table = _char_table(tok, docs)
    if char_table is not None:
        ids = _lookup_chars(char_table, "".join(docs))
        lengths = [len(d) for d in docs]  # len() counts code points, as the lookup does
    else:
        backend = tok.backend_tokenizer
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)  # _fast: tokenizers >= 0.21
        encodings = encode(docs, add_special_tokens=False)
        lengths = [len(e.ids) for e in encodings]
        ids = np.fromiter(itertools.chain.from_iterable(e.ids for e in encodings), np.int32, sum(lengths))
    return np.insert(ids, np.cumsum(lengths, dtype=np.int64), np.int32(eos)).astype(np.int32, copy=False)


# ----------------------------------------------------------------------------------------------- helpers


def _train_char(docs: Sequence[str], vocab_size: int, min_count: int) -> PreTrainedTokenizerFast:
    counts: collections.Counter[str] = collections.Counter()
    for doc in docs:
        counts.update(doc)
    kept = [c for c, n in counts.items() if n >= min_count]
    if vocab_size:
        if vocab_size < 3:
            raise UsageError(f"char vocab_size must be 0 (no cap) or at least 3, got {vocab_size}")
        kept = sorted(kept, key=lambda c: (-counts[c], c))[: vocab_size - 2]
    if not kept:
        raise UsageError(f"no character occurs {min_count}+ times in the training documents")
    vocab = {EOS: 0, UNK: 1} | {c: i for i, c in enumerate(sorted(kept), start=2)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every code point
    tok.decoder = decoders.Fuse()  # concatenate: no spaces between characters
    tok.add_special_tokens([_special(EOS), _special(UNK)])
    return _wrap(tok, unk=UNK)


def _train_bpe(docs: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size <= len(alphabet) + 1:
        raise UsageError(f"bpe vocab_size must exceed {len(alphabet) + 1} (bytes + {EOS}), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # no invented leading space
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[_special(EOS)],
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer=trainer, length=len(docs))
    return _wrap(tok, unk=None)


def _special(token: str) -> AddedToken:
    return AddedToken(token, special=True, normalized=False)


def _wrap(tok: Tokenizer, unk: str | None) -> PreTrainedTokenizerFast:
    # clean_up_tokenization_spaces=False: transformers would otherwise "fix" spaces before punctuation.
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, unk_token=unk, clean_up_tokenization_spaces=False
    )


def _char_table(tok: PreTrainedTokenizerFast, docs: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(sorted code points, their ids, unk id) when `tok` is a plain char tokenizer and no document
    contains a special token's text (which the Rust tokenizer would match as that token); else None."""
    backend = tok.backend_tokenizer
    if not isinstance(backend.model, models.WordLevel) or backend.normalizer is not None:
        return None
    vocab = backend.get_vocab(with_added_tokens=False)
    specials = [t.content for t in backend.get_added_tokens_decoder().values()]
    if UNK not in vocab or any(len(t) != 1 for t in vocab if t not in specials):
        return None
    if any(s in doc for s in specials for doc in docs):
        return None
    chars = sorted((ord(t), i) for t, i in vocab.items() if len(t) == 1)
    codes = np.array([c for c, _ in chars], dtype=np.uint32)
    ids = np.array([i for _, i in chars], dtype=np.int32)
    return codes, ids, vocab[UNK]


def _lookup_chars(table: tuple[np.ndarray, np.ndarray, int], text: str) -> np.ndarray:
    codes, ids, unk = table
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    at = np.minimum(np.searchsorted(codes, points), len(codes) - 1)
    return np.where(codes[at] == points, ids[at], np.int32(unk)).astype(np.int32, copy=False)
