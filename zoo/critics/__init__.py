"""Critics: named, explained scores of samples, so that `sample.py --candidates N` can keep the best.

One module per modality: text (poems in either language), music (melodies). Each critic scores a list of samples for the
prompt that asked for them and returns one float per sample per score, NaN where it cannot say. The scores'
names, directions and meanings are `Score`s, printed with the table of what was kept. How scores combine,
and how the kept samples stay different from each other, is zoo/critics/selection.py.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Score:
    name: str
    higher_is_better: bool
    meaning: str  # one line: what the number is and how it is measured
    weight: float = 1.0  # its weight in the default ranking (0: reported, not ranked by)
