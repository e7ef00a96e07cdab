"""Emotion tags: the line an emotion-conditioned poem model reads before a poem of that mood.

Training (zoo.data.emotion.tagged_poems) writes the tag before each labelled poem, and the poem sampler
(zoo.sample.lm) primes with it under `--emotion`, so both must agree on it: it lives here, below both. Tang
poems are tagged with the traditional character of the lexicon's category, which the character model's
vocabulary holds (the lexicon's own simplified 乐 and 恶 are not Tang characters).
"""

from __future__ import annotations

TAGGED = "+emotion"  # the data spec suffix of a corpus whose poems carry tags: "tang+emotion"
TAG_CHARS = {"joy": "樂", "like": "好", "sadness": "哀", "disgust": "惡", "fear": "懼"}


def tag(emotion: str) -> str:
    """The line before a Tang poem in `emotion` (an English name of zoo.data.emotion's Chinese emotions)."""
    return f"{TAG_CHARS[emotion]}：\n"


def is_tagged(data: str) -> bool:
    """Whether a model trained on the corpus spec `data` reads emotion tags."""
    return data.endswith(TAGGED)
