"""Poems from the text GAN's generator: fixed-form quatrains (or verse lines) opened by the prompt.

The prompt's characters that are in the model's vocabulary begin the poem, in order; each character
the vocabulary lacks is left out with a note on stderr (the Tang corpus is in traditional characters, so a
simplified one such as 风 for 風 is usually among them), and a prompt with none left gives unprompted
poems, with a note. A quatrain prompt may fill at most its first line (5 characters); longer prompts are
refused (exit 2). The rest is drawn from the generator with a KV cache (zoo.sample.decoding.generate) at
temperature 1 by default, the distribution benchmarks/textgan_eval.py measures, with the tokens the form
never has masked (zoo.text.forms.logit_bias). A quatrain prints as its four lines.
"""

from __future__ import annotations

import json
import logging
import pathlib

import jax
import numpy as np
from flax import nnx

from zoo import export
from zoo.errors import UsageError
from zoo.models.textgan import TextGAN
from zoo.sample.decoding import generate
from zoo.text import forms
from zoo.text import tokenizer as tokenizer_lib

log = logging.getLogger(__name__)


class TextGANSampler:
    extension = "txt"
    options = ("temperature", "top_k", "top_p")

    def __init__(self, export_dir: pathlib.Path):
        export_dir = pathlib.Path(export_dir)
        self.config = export.load_config(export_dir)
        export.require(export_dir, "textgan")
        try:
            self.info = json.loads((export_dir / export.TEXTGAN).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UsageError(f"{export_dir} is not a textgan export ({export.TEXTGAN}: {e})") from None
        self.tokenizer = tokenizer_lib.load_tokenizer(export_dir / export.TOKENIZER)
        graphdef, params = export.load_model(export_dir, self.config, TextGAN, part="generator",
                                             vocab_size=len(self.tokenizer))
        self.graphdef, self.params = nnx.split(nnx.merge(graphdef, params).generator)
        self.form, self.length = self.info["form"], int(self.info["length"])
        self.bias = forms.logit_bias(self.tokenizer, self.form)
        # The characters a prompt may open a poem with: in the vocabulary and never masked.
        self.allowed = {t for t, i in self.tokenizer.get_vocab().items() if self.bias[i] == 0}

    def read_prompt(self, prompt: str) -> tuple[str, list[str]]:
        """(the opening the poems get, the prompt characters left out because the vocabulary lacks them)."""
        quatrain = self.form == "quatrains"
        # A quatrain opens with Han characters: spaces, punctuation and Latin letters are not kept.
        chars = [c for c in prompt if not c.isspace()] if quatrain else list(prompt.strip())
        usable = [c in self.allowed and (not quatrain or bool(forms.words(c, self.form))) for c in chars]
        kept = "".join(c for c, ok in zip(chars, usable, strict=True) if ok)
        missing = [c for c, ok in zip(chars, usable, strict=True) if not ok]
        limit = forms.CHARS_PER_LINE if self.form == "quatrains" else self.length - 1
        if len(kept) > limit:
            raise UsageError(f"the prompt opens the poem and may fill its first line: at most {limit} characters "
                             f"of the vocabulary, got {len(kept)}")
        return kept, missing

    def sample(self, prompt: str, num: int, seed: int, temperature: float | None = None,
               top_k: int | None = None, top_p: float | None = None) -> list[str]:
        opening, missing = self.read_prompt(prompt)
        if missing:
            what = "its characters" if not opening else "".join(dict.fromkeys(missing))
            log.warning("note: the model's %d-character vocabulary lacks %s%s", len(self.allowed), what,
                        ": the poems start freely" if not opening else f"; the poems open with {opening}")
        rows = self.generate_rows(opening, num, seed, temperature, top_k, top_p)
        return [forms.layout(text, self.form) for text in self.texts(rows)]

    def generate_rows(self, opening: str, num: int, seed: int, temperature: float | None = None,
                      top_k: int | None = None, top_p: float | None = None) -> np.ndarray:
        """int32 [num, length]: the opening's tokens followed by sampled ones."""
        defaults = self.config.sample
        eos = self.tokenizer.eos_token_id
        ids = self.tokenizer.encode(opening, add_special_tokens=False)
        prompt = np.tile(np.asarray([eos, *ids], np.int32), (num, 1))
        new = generate(self.graphdef, self.params, prompt, max_new_tokens=self.length - len(ids),
                       key=jax.random.PRNGKey(seed), logit_bias=self.bias,
                       temperature=defaults.temperature if temperature is None else temperature,
                       top_k=defaults.top_k if top_k is None else top_k,
                       top_p=defaults.top_p if top_p is None else top_p,
                       eos_id=None if self.form == "quatrains" else eos)
        return np.concatenate([prompt[:, 1:], new], axis=1)

    def texts(self, rows: np.ndarray) -> list[str]:
        """Token rows -> texts (up to the first end token: verse lines end there)."""
        eos = self.tokenizer.eos_token_id
        out = []
        for row in np.asarray(rows):
            ended = np.nonzero(row == eos)[0]
            out.append(self.tokenizer.decode(row[: ended[0]] if len(ended) else row, skip_special_tokens=True))
        return out
