"""Critics: named, explained scores of samples, so that `sample.py --candidates N` can keep the best.

One module per modality: text (poems in either language, with emotion.py's mood), music (melodies), images.
Each critic scores a list of samples for the prompt that asked for them and returns one float per sample per
score, NaN where it cannot say. The scores'
names, directions and meanings are `Score`s, printed with the table of what was kept. How scores combine,
and how the kept samples stay different from each other, is zoo/critics/selection.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Score:
    name: str
    higher_is_better: bool
    meaning: str  # one line: what the number is and how it is measured
    weight: float = 1.0  # its weight in the default ranking (0: reported, not ranked by)


def critic_for(output: str, sampler: Any, writer: str | None, emotion: str | None = None) -> Any:
    """The critic of a sampler's outputs ("txt" poems, "mid" melodies, "png" images), set up from what the
    sampler loaded: its export's config (training data) and, for melodies, its training captions; an image
    critic reads the prompt as the sampler does. `writer` is the embedded model's name, or None for a
    user's checkpoint (a poem's fluency is then judged by an embedded model). `emotion`: poems are also
    scored by how likely they are in that emotion (zoo.critics.emotion)."""
    if output == "png":
        from zoo.critics.images import ImageCritic

        return ImageCritic(sampler)
    if output == "txt":
        from zoo.critics.text import PoemCritic

        return PoemCritic(writer, str(sampler.config.data), emotion)
    from zoo.critics.music import MelodyCritic

    return MelodyCritic(sampler.captions, str(sampler.config.data), int(sampler.config.get("max_tunes", 0)))
