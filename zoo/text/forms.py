"""The fixed poem forms of the text GAN: what a quatrain is, how one is laid out, and which tokens a form
never has after its start.

Training (zoo.data.poem_forms, zoo.objectives.textgan), sampling (zoo.sample.textgan) and evaluation
(benchmarks/textgan_eval.py) must agree on these, so they live here, below all three.

- `quatrains`: Tang five-character quatrains (五言絕句), 4 lines x 5 Han characters, each line closed by a
  punctuation mark, kept without line breaks (24 characters).
- `verse-lines`: single lines of English verse.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

FORMS = ("quatrains", "verse-lines")
PUNCTUATION = "，。？！；"
LINES, CHARS_PER_LINE = 4, 5
QUATRAIN_LENGTH = LINES * (CHARS_PER_LINE + 1)  # 24: each line's 5 characters and its punctuation mark
MASKED = -1e9  # a logit no token survives: exp(-1e9) is exactly 0 in float32
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003134f]")
_WORD = re.compile(r"[A-Za-z0-9']+|[^\sA-Za-z0-9']")


def is_quatrain(text: str) -> bool:
    """4 lines of 5 Han characters, each closed by one of PUNCTUATION: the form the GAN must keep."""
    if len(text) != QUATRAIN_LENGTH:
        return False
    return all((ch in PUNCTUATION) if i % (CHARS_PER_LINE + 1) == CHARS_PER_LINE else bool(_HAN.fullmatch(ch))
               for i, ch in enumerate(text))


def layout(text: str, form: str) -> str:
    """A text as a reader expects it: a quatrain on four lines, a verse line as it is."""
    if form != "quatrains":
        return text
    step = CHARS_PER_LINE + 1
    return "\n".join(text[i:i + step] for i in range(0, len(text), step)).rstrip("\n")


def words(text: str, form: str) -> list[str]:
    """The units BLEU counts: a quatrain's Han characters (punctuation left out: it would inflate every
    n-gram order with the fixed "，" and "。"), a verse line's words and punctuation marks."""
    if form == "quatrains":
        return _HAN.findall(text)
    return _WORD.findall(text.lower())


def logit_bias(tokenizer: Any, form: str) -> np.ndarray:
    """float32 [V]: MASKED for tokens no poem of `form` has after its start, 0 for the rest."""
    bias = np.zeros(len(tokenizer), np.float32)
    unk = tokenizer.unk_token_id
    if unk is not None:
        bias[unk] = MASKED
    if form == "quatrains":
        bias[tokenizer.eos_token_id] = MASKED
    return bias
