"""Critics of poems, English or Chinese: fluency, form, novelty and (English) relevance to the prompt.

- `fluency`: nats per character of the poem under a JUDGE language model, lower is better. The judge is an
  embedded model other than the writer where one exists for the language: Chinese poems from `poem-zh` are
  judged by the text GAN's generator and the GAN's quatrains by `poem-zh` (a custom checkpoint by the GAN);
  English has one embedded model, `poem`, which then judges itself (its own likelihood favours its own
  habits). Per character, so that judges with other tokenizers give comparable figures. The judge reads
  at most its context; a longer poem is judged on its opening.
- `form`: in [0, 1], the share of the form's rules a poem keeps. Chinese (Tang jueju and lüshi): 4 or 8
  lines (a line is a clause closed by a punctuation mark); the lines all of the poem's most common length,
  which must be 5 or 7 characters (share of lines); the even lines rhyme (share of them whose rhyme, the
  last character's final in modern Mandarin as pypinyin gives it without its medial, is their most common
  one: an approximation of the Pingshui rhyme groups, tones ignored). English: 4-40 lines, and the share of
  lines of 3-14 words.
- `novelty`: 1 - the share of the poem's n-grams (4 words; 5 Han characters, a whole five-character line)
  found in the model's training corpus, higher is better.
- `copied`: the longest span (words or Han characters) the poem shares verbatim with one training poem;
  reported, not ranked by. A poem whose copied span is at least half of it and at least 8 words or 10
  characters COPIES training data: it is flagged and kept only when nothing else is left.
- `relevance` (English): cosine of the MiniLM sentence embeddings of the prompt and of the poem's
  continuation (the poem opens with the prompt verbatim, which would inflate every poem's score equally).
- `emotion` (with `sample.py --emotion NAME`): the emotion classifier's probability of NAME
  (zoo/critics/emotion.py), weighted 3 in the ranking: the asked mood first, the other critics break ties.
"""

from __future__ import annotations

import collections
import functools
import logging
import pathlib
import re
import zlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from zoo import export
from zoo.critics import Score
from zoo.critics import emotion as emotion_critic
from zoo.critics.novelty import NgramIndex
from zoo.errors import UsageError
from zoo.text import forms
from zoo.text import tokenizer as tokenizer_lib

log = logging.getLogger(__name__)

_WORD = re.compile(r"[A-Za-z0-9']+")
_CLAUSE_END = re.compile(r"[，。？！；、,.?!;\n]+")
NGRAM = {"en": 4, "zh": 5}
COPY_MIN = {"en": 8, "zh": 10}  # the shortest copied span that can flag a poem (with half of the poem)
JUDGES = {"en": ("poem",), "zh": ("textgan", "poem-zh")}  # embedded judges, first choice first
# training data spec -> corpus (the text GAN's forms come from these)
CORPUS = {"verse-en": "verse-en", "tang": "tang", "quatrains": "tang", "verse-lines": "verse-en",
          "tang+emotion": "tang"}

SCORES = {
    "fluency": Score("fluency", False, "nats per character under a judge LM (lower: more fluent)"),
    "form": Score("form", True, "share of the form's rules kept (lines, line lengths; Chinese: rhyme)"),
    "novelty": Score("novelty", True, "1 - share of its n-grams found in the training corpus"),
    "copied": Score("copied", False, "longest span copied verbatim from one training poem", weight=0.0),
    "relevance": Score("relevance", True, "cosine of prompt and poem in MiniLM's sentence space"),
}


def language(texts: Sequence[str]) -> str:
    """"zh" where most of the samples' letters are Han characters, else "en"."""
    joined = "".join(texts)
    han = len(forms.words(joined, "quatrains"))
    return "zh" if han >= 0.5 * max(1, sum(c.isalpha() for c in joined)) else "en"


def units(text: str, lang: str) -> list[str]:
    """What novelty counts: lowercase words, or Han characters."""
    return forms.words(text, "quatrains") if lang == "zh" else _WORD.findall(text.lower())


# ---------------------------------------------------------------------------------------------------- form


def _rime(char: str) -> str | None:
    """The rhyme of a Han character: its modern final without the medial (ian -> an, uang -> ang)."""
    from pypinyin import Style, lazy_pinyin

    final = lazy_pinyin(char, style=Style.FINALS, errors="ignore", strict=False)
    if not final or not final[0]:
        return None
    f = final[0].replace("ü", "v")
    f = {"iu": "ou", "ui": "ei", "un": "en", "vn": "en", "ve": "e", "ie": "e", "uo": "o"}.get(f, f)
    return f[1:] if len(f) > 1 and f[0] in "iuv" and f[1:] not in ("", "n", "ng") else f


def form_zh(text: str) -> float:
    lines = [forms.words(c, "quatrains") for c in _CLAUSE_END.split(text)]
    lines = [line for line in lines if line]
    if not lines:
        return 0.0
    count_ok = float(len(lines) in (4, 8))
    modal = collections.Counter(len(line) for line in lines).most_common(1)[0][0]
    length_ok = sum(len(line) == modal for line in lines) / len(lines) if modal in (5, 7) else 0.0
    rimes = [_rime(line[-1]) for line in lines[1::2]]
    known = [r for r in rimes if r]
    rhyme_ok = collections.Counter(known).most_common(1)[0][1] / len(rimes) if known else 0.0
    return (count_ok + length_ok + rhyme_ok) / 3


def form_en(text: str) -> float:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return 0.0
    count_ok = float(4 <= len(lines) <= 40)
    length_ok = sum(3 <= len(_WORD.findall(line)) <= 14 for line in lines) / len(lines)
    return (count_ok + length_ok) / 2


# ------------------------------------------------------------------------------------------------- fluency


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _token_nll(graphdef: nnx.GraphDef, params: nnx.State, tokens: jax.Array) -> jax.Array:
    """float32 [B, T]: -log p(tokens[:, t + 1] | tokens[:, :t + 1])."""
    logits = nnx.merge(graphdef, params)(tokens[:, :-1]).astype(jnp.float32)
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]


class Judge:
    """An embedded language model that scores text it did not write: nats per character."""

    def __init__(self, name: str):
        self.name = name
        directory = export.PRETRAINED_DIR / name
        config = export.load_config(directory)
        self.tokenizer = tokenizer_lib.load_tokenizer(pathlib.Path(directory) / export.TOKENIZER)
        vocab = len(self.tokenizer)
        if name == "textgan":  # the GAN's generator, trained on quatrains without line breaks
            from zoo.models.textgan import TextGAN

            graphdef, params = export.load_model(directory, config, TextGAN, part="generator", vocab_size=vocab)
            self.graphdef, self.params = nnx.split(nnx.merge(graphdef, params).generator)
            self.strip_breaks = True
        else:
            from zoo.models.lm import GPT

            self.graphdef, self.params = export.load_model(directory, config, GPT, vocab_size=vocab)
            self.strip_breaks = False
        self.context = int(nnx.merge(self.graphdef, self.params).context_length)

    def __call__(self, texts: Sequence[str], chunk: int = 256) -> np.ndarray:
        """float [N]: nats per character, judged `chunk` texts at a time (the logits are [chunk, T, V])."""
        if len(texts) > chunk:
            return np.concatenate([self(texts[i:i + chunk], chunk) for i in range(0, len(texts), chunk)])
        eos = self.tokenizer.eos_token_id
        rows, chars = [], []
        for text in texts:
            if self.strip_breaks:
                text = "".join(text.split())
            ids = [eos, *self.tokenizer.encode(text, add_special_tokens=False)][: self.context + 1]
            rows.append(ids)
            chars.append(len("".join(self.tokenizer.decode(ids[1:], skip_special_tokens=True).split())))
        width = max(len(r) for r in rows)
        tokens = np.full((len(rows), max(2, 1 << (width - 1).bit_length())), eos, np.int32)
        tokens = tokens[:, : self.context + 1]
        for i, r in enumerate(rows):
            tokens[i, : len(r)] = r
        nll = np.asarray(_token_nll(self.graphdef, self.params, tokens))
        mask = np.arange(tokens.shape[1] - 1)[None, :] < (np.array([len(r) for r in rows]) - 1)[:, None]
        total = (nll * mask).sum(axis=1)
        return np.where(np.array(chars) > 0, total / np.maximum(chars, 1), np.nan)


def judge_for(lang: str, writer: str | None) -> Judge:
    """The first embedded judge of the language that is not the writer (else the writer itself)."""
    names = [n for n in JUDGES[lang] if n != writer] or list(JUDGES[lang])
    return _judge(names[0])


@functools.cache
def _judge(name: str) -> Judge:
    return Judge(name)


# ------------------------------------------------------------------------------------------------- novelty


@functools.cache
def corpus_index(spec: str, lang: str) -> NgramIndex:
    from zoo.data.sources import load_documents

    return NgramIndex([units(doc, lang) for doc in load_documents(spec)], NGRAM[lang])


# -------------------------------------------------------------------------------------------------- critic


class PoemCritic:
    """Scores poems written for `prompt` by the model `writer` (an embedded model's name, or None for a
    custom checkpoint) trained on `data` (its config's data spec)."""

    def __init__(self, writer: str | None, data: str, emotion: str | None = None):
        self.writer = writer
        self.corpus = CORPUS.get(data)
        self.emotion = emotion  # an offered emotion's name: poems are also scored by the emotion critic
        # relevance: English only; novelty, copied: where the corpus is installed
        self.available_scores = tuple(SCORES.values()) + ((emotion_critic.SCORE,) if emotion else ())

    def __call__(self, prompt: str, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """({score name: float [N]}, bool [N]: copies training data)."""
        lang = language(texts)
        scores: dict[str, np.ndarray] = {
            "fluency": judge_for(lang, self.writer)(texts),
            "form": np.array([(form_zh if lang == "zh" else form_en)(t) for t in texts]),
        }
        if self.emotion is not None:
            scores["emotion"] = emotion_critic.probability(texts, lang, self.emotion)
        copies = np.zeros(len(texts), bool)
        index = self._index(lang)
        if index is not None:
            found = [index.overlap(units(t, lang)) for t in texts]
            scores["novelty"] = np.array([1.0 - share for share, _ in found])
            scores["copied"] = np.array([float(span) for _, span in found])
            sizes = np.array([len(units(t, lang)) for t in texts])
            copies = (scores["copied"] >= COPY_MIN[lang]) & (scores["copied"] >= 0.5 * sizes)
        if lang == "en":
            from zoo.text.encoder import shared_encoder

            rest = [(t[len(prompt):] if t.startswith(prompt) else t).strip() for t in texts]
            emb = shared_encoder().embed([prompt, *[r or prompt for r in rest]])
            scores["relevance"] = np.where([bool(r) for r in rest], emb[1:] @ emb[0], np.nan)  # nothing added
        return scores, copies

    def _index(self, lang: str) -> NgramIndex | None:
        if self.corpus is None:
            log.warning("note: novelty is not scored: the model's training data is not a corpus zoo knows")
            return None
        try:
            return corpus_index(self.corpus, lang)
        except UsageError as e:
            log.warning("note: novelty is not scored: %s", e)
            return None

    @staticmethod
    def features(texts: Sequence[str], dim: int = 2048) -> np.ndarray:
        """float32 [N, dim]: hashed character-bigram counts, the vectors diversity compares."""
        out = np.zeros((len(texts), dim), np.float32)
        for i, text in enumerate(texts):
            chars = "".join(text.split())
            for a, b in zip(chars, chars[1:], strict=False):
                out[i, hash_bigram(a + b) % dim] += 1.0
        return out


def hash_bigram(bigram: str) -> int:
    """A hash of the whole bigram, stable across processes (Python's `hash` of a str is salted per process)."""
    return zlib.crc32(bigram.encode("utf-8"))
