"""Poems in the asked mood: how often `sample.py --emotion NAME` keeps a poem in that emotion, against the base rate.

    python -m benchmarks.emotion_gain --model poem|poem-zh [--trials 8] [--json [PATH]]

For each trial t (seed t) and prompt, 64 poems are drawn once; for every offered emotion and N in (1, 16,
64), one poem of the first N is kept by each PICKER:

- `default`: what `sample.py --emotion NAME --candidates N` keeps: the emotion classifier's probability
  (weight 3) ranked with the poem critics (fluency, novelty, relevance, form);
- `classifier`: the emotion classifier alone (`--critic emotion`);
- `lexicon`: the labelling half of the lexicon itself, the rule the classifier learnt from: the most hits of
  the emotion's words over any other emotion's (no model at all).

The JUDGE is the other half of the lexicon (zoo.data.emotion, words neither the classifier's labels nor the
lexicon picker used): a poem is judged in emotion e when e's words have strictly the most hits. The base
rate is the share of all drawn poems judged e (what keeping one at random gives, N = 1). Prints a Markdown
table per model; --json writes every figure (`--json` alone: benchmarks/results/emotion_MODEL_cpu.json).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import record
from zoo import allocator, cli, export, registry
from zoo.critics import emotion as emotion_critic
from zoo.critics.selection import quality, select
from zoo.critics.text import SCORES, PoemCritic
from zoo.data import emotion as lexicons

NS = (1, 16, 64)
PROMPTS = {
    "poem": ("summer beach", "The sea", "Autumn leaves", "At night"),
    "poem-zh": ("夏天的海边", "春江", "明月", "秋风"),
}
LANGUAGE = {"poem": "en", "poem-zh": "zh"}
PICKERS = ("default", "classifier", "lexicon")


def run(name: str, trials: int) -> dict:
    entry = registry.get(name)
    language = LANGUAGE[name]
    sampler = registry.load_sampler(entry)(export.find_export(entry.pretrained_dir))
    critic = PoemCritic(name, str(sampler.config.data))
    emotions = list(lexicons.EMOTIONS[language])
    label_half, judge_half = lexicons.lexicon(language, "label"), lexicons.lexicon(language, "judge")
    weights = {s.name: s.weight for s in critic.available_scores} | {"emotion": emotion_critic.SCORE.weight}
    higher = {s.name: s.higher_is_better for s in critic.available_scores} | {"emotion": True}
    kept = {(e, p, n): [] for e in emotions for p in PICKERS for n in NS}  # judged-in-e flags of kept poems
    judged_all: list[np.ndarray] = []
    classify_seconds = []
    for t in range(trials):
        for prompt in PROMPTS[name]:
            poems = sampler.sample(prompt, max(NS), t)
            scores, copies = critic(prompt, poems)
            start = time.perf_counter()
            probs = emotion_critic.classifier(language).probabilities(poems)
            classify_seconds.append((time.perf_counter() - start) / len(poems))
            labels = emotion_critic.classifier(language).labels
            probs = probs[:, [labels.index(e) for e in emotions]]
            own = np.stack([label_half.counts(p) for p in poems])
            judge = np.array([lexicons.top_emotion(judge_half.counts(p)) for p in poems])
            judged_all.append(judge)
            for e, emotion in enumerate(emotions):
                margin = own[:, e] - np.delete(own, e, axis=1).max(1)
                for n in NS:
                    ranked = {k: v[:n] for k, v in scores.items() if weights.get(k, 0) > 0} | {"emotion": probs[:n, e]}
                    q = quality(ranked, higher, weights)
                    picks = {
                        "default": select(np.where(copies[:n], q - 10, q), critic.features(poems[:n]), 1)[0],
                        "classifier": int(np.argmax(probs[:n, e])),
                        "lexicon": int(np.argmax(margin[:n])),
                    }
                    for picker, i in picks.items():
                        kept[(emotion, picker, n)].append(judge[i] == e)
    judged = np.concatenate(judged_all)
    rows = []
    for e, emotion in enumerate(emotions):
        row = {"emotion": emotion, "base_rate": float((judged == e).mean())}
        for picker in PICKERS:
            for n in NS:
                row[f"{picker}_{n}"] = float(np.mean(kept[(emotion, picker, n)]))
        rows.append(row)
    return {"benchmark": "emotion", "model": name, "language": language, "trials": trials,
            "prompts": list(PROMPTS[name]), "poems": int(len(judged)), "ns": list(NS), "pickers": list(PICKERS),
            "judged_none": float((judged < 0).mean()),
            "classifier_ms_per_poem": 1000 * float(np.median(classify_seconds)),
            "default_weights": {k: w for k, w in weights.items() if k in SCORES or k == "emotion"},
            "malloc": allocator.name(), "rows": rows}


def report(result: dict) -> str:
    ns = result["ns"]
    header = ["emotion", "base rate"] + [f"{p} N={n}" for p in result["pickers"] for n in ns if n > 1]
    lines = [f"{result['model']}: {result['poems']} poems ({result['trials']} trials x {len(result['prompts'])} "
             f"prompts x {max(ns)}); judged by the held-out lexicon half ({100 * result['judged_none']:.0f}% "
             f"of poems in no emotion); classifier {result['classifier_ms_per_poem']:.1f} ms per poem", "",
             "| " + " | ".join(header) + " |", "|---|" + "---|" * (len(header) - 1)]
    for r in result["rows"]:
        cells = [r["emotion"], f"{r['base_rate']:.3f}"] + [f"{r[f'{p}_{n}']:.3f}" for p in result["pickers"]
                                                          for n in ns if n > 1]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, choices=sorted(PROMPTS))
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--json", nargs="?", const="", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    result = run(args.model, args.trials)
    print(report(result))
    if args.json is not None:
        record.write(Path(args.json) if args.json else record.RESULTS / f"emotion_{args.model}_cpu.json", result)


if __name__ == "__main__":
    cli.run(main)
