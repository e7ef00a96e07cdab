"""Poems from a language model: the prompt opens the poem (priming, like nanoGPT's --start).

The prompt is encoded after an end-of-text token, which is how every poem starts in training, so the
model continues it as the opening of a new poem. A prompt ending in a letter is read as whole words: the
first sampled token may not glue more letters onto its last word (a BPE model would otherwise happily turn
"summer beach" into "summer beachies", since " beach" is not where its tokens end). The output is the
prompt verbatim followed by the sampled continuation, up to the model's end-of-text token or, failing
that, the last complete line.
"""

from __future__ import annotations

import functools
import pathlib

import jax
import numpy as np

from zoo import export
from zoo.errors import UsageError
from zoo.models.lm import GPT
from zoo.sample.decoding import generate
from zoo.text import moods
from zoo.text import tokenizer as tokenizer_lib

LINE_TOKENS = 48  # enough for one line of verse in either tokenizer


class PoemSampler:
    extension = "txt"
    options = ("temperature", "top_k", "top_p", "max_new_tokens", "emotion")

    def __init__(self, export_dir: pathlib.Path):
        self.config = export.load_config(export_dir)
        export.require(export_dir, "lm")
        self.reads_moods = moods.is_tagged(str(self.config.get("data", "")))  # trained on emotion-tagged poems
        self.tokenizer = tokenizer_lib.load_tokenizer(pathlib.Path(export_dir) / export.TOKENIZER)
        self.graphdef, self.params = export.load_model(export_dir, self.config, GPT, vocab_size=len(self.tokenizer))
        self.context_length = self.config.model.context_length

    def sample(self, prompt: str, num: int, seed: int, temperature: float | None = None,
               top_k: int | None = None, top_p: float | None = None,
               max_new_tokens: int | None = None, emotion: str | None = None) -> list[str]:
        """`num` poems opening with `prompt`. `emotion`: a model trained on emotion-tagged poems is primed
        with that emotion's tag (zoo.text.moods), which the poems do not include; other models ignore it
        (sample.py then chooses among candidates by mood)."""
        defaults = self.config.sample
        eos = self.tokenizer.eos_token_id
        ids = self.prompt_ids(prompt, emotion)
        if len(ids) > self.context_length - 8:
            raise UsageError(f"prompt too long for this model: {len(ids) - 1} tokens, at most "
                             f"{self.context_length - 9} fit its context of {self.context_length}")
        options = dict(temperature=defaults.temperature if temperature is None else temperature,
                       top_k=defaults.top_k if top_k is None else top_k,
                       top_p=defaults.top_p if top_p is None else top_p, eos_id=eos)
        first_bias = self._word_boundary_bias if _ends_mid_word(prompt) else None
        rows = self._generate(np.tile(np.asarray(ids, np.int32), (num, 1)),
                              max_new_tokens or defaults.max_new_tokens, jax.random.PRNGKey(seed), options,
                              first_bias)
        return [prompt + self._continuation(row, eos) for row in rows]

    def next_lines(self, lines: list[str], num: int, seed: int, **options) -> list[str]:
        """`num` proposals for the line after `lines` (zoo.sample.interactive), each drawn after the poem so
        far, or its last lines that fit the context; "" where the model ends the poem instead."""
        options = {**options, "max_new_tokens": options.get("max_new_tokens") or LINE_TOKENS}
        keep = list(lines)
        while len(keep) > 1 and len(self.prompt_ids("\n".join(keep) + "\n")) + 8 > self.context_length // 2:
            keep = keep[1:]
        prompt = "\n".join(keep) + "\n"
        return [next((line.strip() for line in poem[len(prompt):].split("\n") if line.strip()), "")
                for poem in self.sample(prompt, num, seed, **options)]

    def prompt_ids(self, prompt: str, emotion: str | None = None) -> list[int]:
        """What a poem is drawn after: end-of-text (a document starts), the emotion's tag where this model
        reads tags, then the prompt."""
        tag = moods.tag(emotion) if emotion is not None and self.reads_moods else ""
        return [self.tokenizer.eos_token_id] + self.tokenizer.encode(tag + prompt, add_special_tokens=False)

    @functools.cached_property
    def _word_boundary_bias(self) -> np.ndarray:
        """-inf for every token whose text starts with a letter or digit, 0 for the rest."""
        vocab = len(self.tokenizer)
        starts = [self.tokenizer.decode([i])[:1] for i in range(vocab)]
        return np.where([_is_word_char(c) for c in starts], -np.inf, 0.0).astype(np.float32)

    def _generate(self, prompt: np.ndarray, total: int, key: jax.Array, options: dict,
                  first_bias: np.ndarray | None) -> np.ndarray:
        """KV-cached sampling that slides the context window: once a chunk fills the model's context,
        the next chunk is primed with the newest half of it, so a poem may outgrow the context."""
        new = np.zeros((prompt.shape[0], 0), np.int32)
        window, chunk = prompt, 0
        while new.shape[1] < total and not (new == options["eos_id"]).any(axis=1).all():
            room = min(self.context_length - window.shape[1], total - new.shape[1])
            out = generate(self.graphdef, self.params, window, max_new_tokens=room,
                           key=jax.random.fold_in(key, chunk), first_token_bias=first_bias if chunk == 0 else None,
                           **options)
            new = np.concatenate([new, np.asarray(out)], axis=1)
            window = np.concatenate([prompt, new], axis=1)[:, -(self.context_length // 2):]
            chunk += 1
        return new

    def _continuation(self, row: np.ndarray, eos: int) -> str:
        ended = np.nonzero(row == eos)[0]
        text = self.tokenizer.decode(row[: ended[0]] if len(ended) else row, skip_special_tokens=True)
        if not len(ended) and "\n" in text:  # ran out of room: end on the last whole line
            text = text[: text.rindex("\n")]
        return text.rstrip()


def _is_word_char(char: str) -> bool:
    """A letter or digit of a script that separates words with spaces (not Han, kana, hangul ...)."""
    return char.isalnum() and ord(char) < 0x2E80


def _ends_mid_word(prompt: str) -> bool:
    return _is_word_char(prompt.rstrip("\n")[-1:] or " ") and not prompt.endswith((" ", "\n"))
