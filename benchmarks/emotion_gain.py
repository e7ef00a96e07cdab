"""Poems in the asked mood: how often `sample.py --emotion NAME` keeps a poem in that emotion, against the base rate.

    python -m benchmarks.emotion_gain --model poem|poem-zh [--trials 16] [--json [PATH]]

For each trial t (seed t) and prompt, 64 poems are drawn once; for every offered emotion and N in (1, 16,
64), one poem of the first N is kept by each PICKER:

- `default`: what `sample.py --emotion NAME --candidates N` keeps: the emotion classifier's probability
  (weight 3) ranked with the poem critics (fluency, novelty, relevance, form);
- `classifier`: the emotion classifier alone (`--critic emotion`);
- `lexicon`: the labelling half of the lexicon itself, the rule the classifier learnt from: the most hits of
  the emotion's words over any other emotion's (no model at all).

With `--checkpoint` of a model trained on emotion-tagged poems (configs/poem_zh_emotion.py), each emotion's
64 poems are drawn after its tag: the base rate is then what conditioning alone gives, and the pickers show
conditioning and choosing together.

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
from zoo.critics import choose
from zoo.critics import emotion as emotion_critic
from zoo.critics.text import PoemCritic
from zoo.data import emotion as lexicons

NS = (1, 16, 64)
PROMPTS = {
    "poem": ("summer beach", "The sea", "Autumn leaves", "At night"),
    "poem-zh": ("夏天的海边", "春江", "明月", "秋风"),
}
LANGUAGE = {"poem": "en", "poem-zh": "zh"}
PICKERS = ("default", "classifier", "lexicon")


class _Scored:
    """A critic that has already scored the 64 poems: `choose.choose` then ranks the first N of them exactly
    as sample.py would, without scoring them again for every emotion and N."""

    def __init__(self, critic: PoemCritic, scores: dict[str, np.ndarray], copies: np.ndarray):
        self.critic, self.scores, self.copies = critic, scores, copies
        self.available_scores = (*critic.available_scores, emotion_critic.SCORE)

    def __call__(self, prompt: str, poems: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        return {k: v[:len(poems)] for k, v in self.scores.items()}, self.copies[:len(poems)]

    def features(self, poems: Sequence[str]) -> np.ndarray:
        return self.critic.features(poems)


def run(name: str, trials: int, checkpoint: str | None = None) -> dict:
    entry = registry.get(name)
    language = LANGUAGE[name]
    sampler = registry.load_sampler(entry)(export.find_export(checkpoint or entry.pretrained_dir))
    conditioned = getattr(sampler, "reads_moods", False)  # each emotion's poems drawn after its tag
    critic = PoemCritic(name, str(sampler.config.data))
    classifier = emotion_critic.classifier(language)
    emotions = classifier.labels
    label_half, judge_half = lexicons.lexicon(language, "label"), lexicons.lexicon(language, "judge")
    kept = {(e, p, n): [] for e in emotions for p in PICKERS for n in NS}  # judged-in-e flags of kept poems
    judged_all: list[dict[str, np.ndarray]] = []  # per prompt and trial: each emotion's pool, judged
    classify_seconds = []
    for t in range(trials):
        for prompt in PROMPTS[name]:
            pools = ({e: sampler.sample(prompt, max(NS), t, emotion=e) for e in emotions} if conditioned
                     else dict.fromkeys(emotions, sampler.sample(prompt, max(NS), t)))
            judged_pool = {}
            for e, emotion in enumerate(emotions):
                poems = pools[emotion]
                if e == 0 or conditioned:  # score each distinct pool once
                    scores, copies = critic(prompt, poems)
                    start = time.perf_counter()
                    probs = classifier.probabilities(poems)
                    classify_seconds.append((time.perf_counter() - start) / len(poems))
                    own = np.stack([label_half.counts(p) for p in poems])
                    judge = np.array([lexicons.top_emotion(judge_half.counts(p)) for p in poems])
                judged_pool[emotion] = judge
                scored = _Scored(critic, {**scores, "emotion": probs[:, e]}, copies)
                margin = own[:, e] - np.delete(own, e, axis=1).max(1)
                for n in NS:
                    picks = {
                        "default": choose.choose(scored, prompt, poems[:n], 1).kept[0],
                        "classifier": int(np.argmax(probs[:n, e])),
                        "lexicon": int(np.argmax(margin[:n])),
                    }
                    for picker, i in picks.items():
                        kept[(emotion, picker, n)].append(judge[i] == e)
            judged_all.append(judged_pool)
    rows = []
    for e, emotion in enumerate(emotions):
        judged = np.concatenate([pool[emotion] for pool in judged_all])
        row = {"emotion": emotion, "base_rate": float((judged == e).mean())}
        for picker in PICKERS:
            for n in NS:
                row[f"{picker}_{n}"] = float(np.mean(kept[(emotion, picker, n)]))
        rows.append(row)
    every = np.concatenate([pool[emotion] for pool in judged_all for emotion in emotions])
    return {"benchmark": "emotion", "model": name, "checkpoint": checkpoint, "conditioned": conditioned,
            "language": language, "trials": trials, "prompts": list(PROMPTS[name]),
            "poems": int(len(every) // (1 if conditioned else len(emotions))),
            "kept_per_cell": trials * len(PROMPTS[name]),
            "ns": list(NS), "pickers": list(PICKERS), "judged_none": float((every < 0).mean()),
            "classifier_ms_per_poem": 1000 * float(np.median(classify_seconds)),
            "default_weights": {s.name: s.weight for s in (*critic.available_scores, emotion_critic.SCORE)},
            "malloc": allocator.name(), "rows": rows}


def report(result: dict) -> str:
    ns = result["ns"]
    header = ["emotion", "base rate"] + [f"{p} N={n}" for p in result["pickers"] for n in ns if n > 1]
    lines = [f"{result['model']}: {result['poems']} poems ({result['trials']} trials x {len(result['prompts'])} "
             f"prompts x {max(ns)}); judged by the held-out lexicon half ({100 * result['judged_none']:.0f}% "
             f"of poems in no emotion); classifier {result['classifier_ms_per_poem']:.1f} ms per poem; each "
             f"share is over {result['kept_per_cell']} kept poems (standard error of a share p: "
             f"sqrt(p(1-p)/{result['kept_per_cell']}), {(0.09 / result['kept_per_cell']) ** 0.5:.2f} at p = 0.1)", "",
             "| " + " | ".join(header) + " |", "|---|" + "---|" * (len(header) - 1)]
    for r in result["rows"]:
        cells = [r["emotion"], f"{r['base_rate']:.3f}"] + [f"{r[f'{p}_{n}']:.3f}" for p in result["pickers"]
                                                          for n in ns if n > 1]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, choices=sorted(PROMPTS))
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--checkpoint", default=None, help="an export of the model instead of the embedded one "
                        "(an emotion-tagged model draws each emotion's poems after its tag)")
    parser.add_argument("--json", nargs="?", const="", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    result = run(args.model, args.trials, args.checkpoint)
    print(report(result))
    if args.json is not None:
        default = f"emotion_{args.model}{'_conditioned' if result['conditioned'] else ''}_cpu.json"
        record.write(Path(args.json) if args.json else record.RESULTS / default, result)


if __name__ == "__main__":
    cli.run(main)
