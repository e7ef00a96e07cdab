"""From N candidates to the `keep` that are printed: score, rank, select, and the table of what was kept."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from zoo.critics.selection import DIVERSITY, quality, select
from zoo.errors import UsageError


@dataclasses.dataclass
class Choice:
    kept: list[int]  # candidate indices, best first
    scores: dict[str, np.ndarray]  # every score of every candidate
    quality: np.ndarray  # the ranking's combined value of every candidate
    copies: np.ndarray  # bool: flagged as copying training data
    ranked_by: list[str]  # the scores the ranking used


def choose(critic: Any, prompt: str, candidates: Sequence[Any], keep: int, critic_name: str | None = None,
           diversity: float = DIVERSITY, weights: dict[str, float] | None = None) -> Choice:
    """Score `candidates` with `critic` (zoo.critics.text.PoemCritic ...), rank them by the weighted mean of
    their score ranks (the scores' own weights, or `weights`; or by `critic_name` alone) and keep `keep` of
    them, different from each other. Candidates flagged as copies are kept only when nothing else is left."""
    scores, copies = critic(prompt, candidates)
    known = {s.name: s for s in critic.available_scores}
    if critic_name is not None:
        if critic_name not in known:
            raise UsageError(f"unknown critic {critic_name!r} for these samples; choose one of: {', '.join(known)}")
        if critic_name not in scores:
            raise UsageError(f"the {critic_name} critic cannot score these samples (see the note above)")
        ranked_by = [critic_name]
    else:
        weight = {n: (weights or {}).get(n, known[n].weight) for n in scores}
        ranked_by = [n for n in scores if weight[n] > 0]
    q = quality({n: scores[n] for n in ranked_by}, {n: known[n].higher_is_better for n in ranked_by},
                {n: (1.0 if critic_name else weight[n]) for n in ranked_by})
    kept = select(np.where(copies, q - 10.0, q), critic.features(candidates), keep, diversity)
    return Choice(kept, scores, q, copies, ranked_by)


def table(choice: Choice, seconds: float, count: int) -> str:
    """The kept candidates' scores, one row each, best first, with what the scores mean."""
    names = list(choice.scores)
    header = ["kept", "rank"] + names + ["copies?"]
    rows = [header]
    order = np.argsort(-choice.quality, kind="stable")
    rank_of = {int(c): r + 1 for r, c in enumerate(order)}
    for n, i in enumerate(choice.kept):
        rows.append([str(n + 1), f"{rank_of[i]}/{len(choice.quality)}"]
                    + [_fmt(choice.scores[name][i]) for name in names] + ["yes" if choice.copies[i] else "no"])
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(f"ranked by {', '.join(choice.ranked_by)}; {count} candidates drawn and judged in "
                 f"{seconds:.1f} s ({seconds / count * 1000:.0f} ms each)")
    return "\n".join(lines)


def scores_jsonl(candidates: Sequence[str], choice: Choice) -> bytes:
    """Every candidate as one JSON line: its index, text, scores, combined quality, copy flag and whether kept
    (its place among the kept, 0 = best; null if not kept)."""
    kept = {c: n for n, c in enumerate(choice.kept)}
    lines = []
    for i, text in enumerate(candidates):
        record = {"candidate": i, "kept": kept.get(i), "quality": float(choice.quality[i]),
                  "copies": bool(choice.copies[i]),
                  "scores": {n: _json_number(v[i]) for n, v in choice.scores.items()}, "text": text}
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return "".join(lines).encode("utf-8")


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3g}"


def _json_number(value: float) -> float | None:
    return None if math.isnan(float(value)) else float(value)
