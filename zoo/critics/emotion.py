"""The emotion critic: how likely a poem is in the asked emotion, by the embedded emotion classifiers.

`emotion-en` (MiniLM fine-tuned on NRC-labelled stanzas) reads English poems, `emotion-zh` (the Tang GPT
fine-tuned on DUTIR-labelled poems) Chinese ones; both were trained on the one loop (configs/emotion_*.py).
The score is the classifier's probability of the asked emotion. Judging whether choosing by it works is the
held-out half of the lexicons' job (zoo.data.emotion, benchmarks/emotion_gain.py), never this classifier's.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from zoo import export
from zoo.critics import Score
from zoo.data import emotion as lexicons
from zoo.errors import UsageError

CLASSIFIERS = {"en": "emotion-en", "zh": "emotion-zh"}
SCORE = Score("emotion", True, "the emotion classifier's probability of the asked emotion", weight=3.0)


def check(language: str, name: str) -> str:
    """The offered emotion `name` (its English name; for Chinese also its DUTIR character) in English, or the
    UsageError that lists the offered ones."""
    return list(lexicons.EMOTIONS[language])[lexicons.emotion_index(language, name)]


@functools.cache
def classifier(language: str) -> export.Classifier:
    """The embedded emotion classifier of `language`; its labels must be the emotions offered."""
    model = export.load_classifier(export.resolve(f"pretrained:{CLASSIFIERS[language]}"))
    if model.labels != list(lexicons.EMOTIONS[language]):
        raise UsageError(f"{CLASSIFIERS[language]} knows {', '.join(model.labels)}, not the emotions offered "
                         f"({', '.join(lexicons.EMOTIONS[language])}): retrain it with configs/emotion_{language}.py")
    return model


def probability(texts: Sequence[str], language: str, name: str) -> np.ndarray:
    """float32 [N]: the classifier's probability that each text is in emotion `name`."""
    model = classifier(language)
    return model.probabilities(texts)[:, model.labels.index(check(language, name))]
