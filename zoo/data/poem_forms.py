"""Fixed-form poems for the text GAN: Tang five-character quatrains and English verse lines.

A GAN's discriminator compares whole sequences, so the `textgan` family trains on texts of one fixed
length in tokens (characters):

- `quatrains`: the five-character quatrains (五言絕句) of the Tang corpus (zoo.data.sources' `tang`, the
  npm package chinese-poetry): poems of exactly 4 lines x 5 Han characters, each line closed by a
  punctuation mark (，。？！；), 24 characters in all, kept without line breaks: "白日依山盡，黃河入海流。...".
  4,226 poems; the text-GAN literature's Chinese-poem benchmark (Yu et al.'s SeqGAN) uses this form.
- `verse-lines`: single lines of the English verse corpus (`verse-en`), 16 to `max_chars` characters,
  padded with the end token: the second, harder config (free length, a larger alphabet of words).

The split is zoo.data.sources.split_documents' stable hash with `test_fraction` (10%): fixed across runs,
machines and corpus order. Batches are rows `[end] + tokens (+ [end] padding)`, int32 [B, length + 1], so
the generator is a plain next-token model primed with the end token, like the poem LMs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from zoo.data import sources
from zoo.data.batching import EpochOrder, process_rows
from zoo.errors import UsageError
from zoo.text.forms import FORMS, QUATRAIN_LENGTH, is_quatrain


@dataclasses.dataclass(frozen=True)
class PoemSet:
    """The texts of a form, split; `length` is the number of tokens (characters) a sequence holds."""

    form: str
    train: list[str]
    test: list[str]
    length: int


def load_poem_set(form: str, test_fraction: float = 0.1, max_chars: int = 48) -> PoemSet:
    """The train/test texts of `form` (one of FORMS), from the installed corpora."""
    if form == "quatrains":
        texts, length = quatrains(sources.load_documents("tang")), QUATRAIN_LENGTH
    elif form == "verse-lines":
        texts, length = verse_lines(sources.load_documents("verse-en"), max_chars), max_chars
    else:
        raise UsageError(f"unknown text GAN data {form!r}; valid: {', '.join(FORMS)}")
    if len(texts) < 20:
        raise UsageError(f"{form}: only {len(texts)} texts found; the corpus looks incomplete")
    train, test = sources.split_documents(texts, test_fraction)
    return PoemSet(form, train, test, length)


def quatrains(docs: Sequence[str]) -> list[str]:
    """The five-character quatrains among Tang poems (lines joined by newlines), line breaks removed."""
    out = []
    for doc in docs:
        text = doc.replace("\n", "")
        if is_quatrain(text):
            out.append(text)
    return out


def verse_lines(docs: Sequence[str], max_chars: int, min_chars: int = 16) -> list[str]:
    """Distinct lines of English verse with min_chars..max_chars characters, first occurrence first."""
    seen: set[str] = set()
    out = []
    for doc in docs:
        for line in doc.split("\n"):
            line = " ".join(line.split())
            if min_chars <= len(line) <= max_chars and line not in seen and any(c.isalpha() for c in line):
                seen.add(line)
                out.append(line)
    return out


def encode_fixed(tokenizer, texts: Sequence[str], length: int) -> np.ndarray:
    """int32 [N, length + 1]: the end token, each text's tokens, then end-token padding (a text longer than
    `length` tokens is an error: the sets are built to fit)."""
    end = tokenizer.eos_token_id
    rows = np.full((len(texts), length + 1), end, np.int32)
    for i, text in enumerate(texts):
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) > length:
            raise ValueError(f"text of {len(ids)} tokens does not fit {length}: {text!r}")
        rows[i, 1:1 + len(ids)] = ids
    return rows


class SequenceBatches:
    """Global batches of fixed-length rows in per-epoch permutations (zoo.data.batching.EpochOrder), a pure
    function of (seed, step); eval batches cover every row once, the last one padded and masked."""

    def __init__(self, rows: np.ndarray, global_batch: int, seed: int, stream: int = 0):
        if len(rows) == 0:
            raise ValueError("no sequences")
        self.rows, self.global_batch = np.asarray(rows, np.int32), global_batch
        self.order = EpochOrder(len(rows), seed, stream)

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, step: int, process_index: int = 0, process_count: int = 1) -> dict[str, np.ndarray]:
        idx = self.order.indices(step, self.global_batch)[process_rows(self.global_batch, process_index,
                                                                       process_count)]
        return {"tokens": self.rows[idx]}

    def eval_batches(self, max_batches: int, process_index: int = 0,
                     process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
        rows = process_rows(self.global_batch, process_index, process_count)
        n_batches = min(max_batches, -(-len(self.rows) // self.global_batch)) if max_batches > 0 else 0
        for b in range(n_batches):
            idx = np.arange(b * self.global_batch, (b + 1) * self.global_batch)
            mask = idx < len(self.rows)
            idx = np.where(mask, idx, idx % len(self.rows))
            yield {"tokens": self.rows[idx][rows], "mask": mask[rows]}
