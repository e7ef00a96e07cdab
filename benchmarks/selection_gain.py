"""What choosing among candidates buys: judges' scores of the kept sample for N = 1, 4, 16, 64 candidates.

    python -m benchmarks.selection_gain --model poem|poem-zh|textgan|music|dcgan|vae [--trials 16] [--json [PATH]]

For each trial t (seed t) and each prompt, one batch of 64 candidates is drawn with the sampler's defaults.
For N in (1, 4, 16, 64) the first N are the candidate set and the PICKING critics keep one of them, as
`sample.py --candidates N --num 1` would (zoo.critics.choose). N = 1 keeps the only candidate: it is
also the baseline "keep --num of the N at random", since any one candidate is a plain draw. The kept
sample is then scored by JUDGES that took no part in picking it:

- poems: picked by fluency, novelty and (English) relevance, NOT by form. Judged by the form rate (share
  of kept poems that keep every rule of zoo.critics.text's form: form score 1), in English the dictionary-
  word share (share of the poem's words that are whole words of MiniLM's WordPiece vocabulary, 30,522
  entries of uncased English no zoo model trained on), and the copy flag.
- melodies: picked by key (music21's Krumhansl-Schmuckler analysis), in-key share, structure, range and
  novelty, NOT by meter. Judged by key accuracy as a DIFFERENT key-finding algorithm hears the notes
  (music21's Aarden-Essen: the asked tonic and mode; the asked mode), the meter rate (the melody's meter is
  one the prompt asked for, explicitly or by its genre) and the copy flag.
- images: picked by the embedded `fashion-critic`'s confidence in the asked class and by novelty. Judged
  by the benchmarks' own classifier (benchmarks/image_classifier.py: another architecture, trained apart):
  the class rate (its top class is the asked one) and its mean probability of the asked class, and the
  copy flag. Also: keeping 4 of the 64, how far apart they are (mean RMS pixel distance over pairs) with
  the diversity term (sample.py's default), without it, and for 4 at random.

Seconds: the wall time `sample.py` spends drawing and judging N candidates (the sampler warm, its
compilation excluded), the median over the prompts. Prints a Markdown table; --json writes every figure
(`--json` alone: benchmarks/results/selection_MODEL_cpu.json).
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import record
from zoo import allocator, cli, export, registry
from zoo.critics import choose, critic_for

NS = (1, 4, 16, 64)
PROMPTS = {
    "poem": ("summer beach", "The sea", "Autumn leaves"),
    "poem-zh": ("夏天的海边", "春江", "明月"),
    "textgan": ("春", "月", "山"),
    "music": ("a jig in D minor", "a reel in E minor", "an air in G major", "a hornpipe in A major"),
    # The generators' weakest classes (their cards' per-class judge rates) and one strong one.
    "dcgan": ("a shirt", "a pullover", "a coat", "an ankle boot"),
    "vae": ("a shirt", "a pullover", "a coat", "an ankle boot"),
}
PICK = {  # the picking critics' weights: the judged property's own critic is left out
    "txt": {"fluency": 1.0, "novelty": 1.0, "relevance": 1.0, "form": 0.0, "copied": 0.0},
    "mid": {"key": 1.0, "in_key": 1.0, "structure": 1.0, "range": 1.0, "novelty": 1.0, "meter": 0.0, "copied": 0.0},
    "png": {"confidence": 1.0, "novelty": 0.5},
}


def dictionary_words() -> set[str]:
    """Whole English words of MiniLM's WordPiece vocabulary (no "##" pieces, letters only)."""
    import json

    from zoo.text.encoder import find_encoder_dir

    vocab = json.loads((find_encoder_dir() / "tokenizer.json").read_text())["model"]["vocab"]
    return {w for w in vocab if w.isalpha() and w.isascii()}


def judge_poem(text: str, critic_scores: dict, copies: bool, dictionary: set[str] | None) -> dict[str, float]:
    out = {"form_rate": float(critic_scores["form"] == 1.0), "copies": float(copies)}
    if dictionary is not None:
        words = re.findall(r"[a-z]+", text.lower())
        out["dictionary_share"] = sum(w in dictionary for w in words) / len(words) if words else float("nan")
    return out


def judge_melody(melody: Any, prompt: str, critic: Any, copies: bool) -> dict[str, float]:
    from zoo.critics.music import analysed_key, asked

    tonic, mode, meters = asked(prompt, critic.genre_meters)
    heard = analysed_key(melody, "AardenEssen")
    out = {"copies": float(copies)}
    if mode is not None:
        out["mode_rate"] = float(heard is not None and heard[1] == mode)
    if tonic is not None:
        out["key_rate"] = float(heard is not None and heard == (tonic, mode))
    if meters is not None:
        out["meter_rate"] = float(melody.meter in meters)
    return out


def image_judge(sampler: Any) -> Any:
    """judge(image, prompt, copies) -> {class_rate, class_probability, copies} by the benchmarks' classifier."""
    from benchmarks.image_classifier import load_classifier
    from zoo.critics.images import centre_crop

    logits_fn, _ = load_classifier(str(sampler.info["data"]))

    def judge(image: np.ndarray, prompt: str, copies: bool) -> dict[str, float]:
        asked = sampler.read_prompt(prompt).class_index
        logits = logits_fn(centre_crop(image[None], sampler.info["source_shape"]))[0]
        probs = np.exp(logits - logits.max())
        return {"class_rate": float(np.argmax(logits) == asked), "class_probability": float(probs[asked] / probs.sum()),
                "copies": float(copies)}

    return judge


def _spread(images: Sequence[np.ndarray]) -> float:
    """Mean RMS pixel distance (pixels in [0, 1]) over the pairs of `images`."""
    from benchmarks.image_eval import mean_pairwise_distance

    x = np.stack(images).astype(np.float64) / 255
    return mean_pairwise_distance(x) / math.sqrt(x[0].size)


def run(name: str, trials: int) -> dict:
    entry = registry.get(name)
    sampler = registry.load_sampler(entry)(export.find_export(entry.pretrained_dir))
    critic = critic_for(entry.output, sampler, name)
    weights = PICK[entry.output]
    dictionary = dictionary_words() if name == "poem" else None
    judge_image = image_judge(sampler) if entry.output == "png" else None
    judged: dict[int, list[dict]] = {n: [] for n in NS}
    ranked_by: set[str] = set()  # the picking critics that could score these samples
    seconds: dict[int, list[float]] = {n: [] for n in NS}
    spread: dict[str, list[float]] = {"diverse": [], "top": [], "random": []}
    for n in NS:  # compile the sampler for every batch size, and load the critics' models, before timing
        choose.choose(critic, PROMPTS[name][0], sampler.sample(PROMPTS[name][0], n, 0), 1, weights=weights)
    for prompt in PROMPTS[name]:
        for n in NS:
            start = time.perf_counter()
            choose.choose(critic, prompt, sampler.sample(prompt, n, 0), 1, weights=weights)
            seconds[n].append(time.perf_counter() - start)
    for t in range(trials):
        for prompt in PROMPTS[name]:
            candidates = sampler.sample(prompt, max(NS), t)
            for n in NS:
                choice = choose.choose(critic, prompt, candidates[:n], 1, weights=weights)
                ranked_by.update(choice.ranked_by)
                kept = choice.kept[0]
                scores = {k: v[kept] for k, v in choice.scores.items()}
                if entry.output == "txt":
                    judged[n].append(judge_poem(candidates[kept], scores, bool(choice.copies[kept]), dictionary))
                elif entry.output == "png":
                    judged[n].append(judge_image(candidates[kept], prompt, bool(choice.copies[kept])))
                else:
                    judged[n].append(judge_melody(candidates[kept], prompt, critic, bool(choice.copies[kept])))
            if entry.output == "png":  # keeping 4 of the 64: how different they are from each other
                for label, diversity in (("diverse", choose.DIVERSITY), ("top", 0.0)):
                    four = choose.choose(critic, prompt, candidates, 4, weights=weights, diversity=diversity).kept
                    spread[label].append(_spread([candidates[i] for i in four]))
                spread["random"].append(_spread(candidates[:4]))
    rows = []
    for n in NS:
        keys = sorted({k for j in judged[n] for k in j})
        means = {k: float(np.nanmean([j[k] for j in judged[n] if k in j])) for k in keys}
        rows.append({"candidates": n, "kept": len(judged[n]), "seconds": statistics.median(seconds[n]), **means})
    extra = {"spread_of_4_kept_of_64": {k: float(np.mean(v)) for k, v in spread.items()}} if spread["top"] else {}
    return {**extra, "benchmark": "selection", "model": name, "trials": trials, "prompts": list(PROMPTS[name]),
            "picked_by": sorted(ranked_by), "malloc": allocator.name(), "rows": rows}


def report(result: dict) -> str:
    rows = result["rows"]
    keys = [k for k in rows[0] if k not in ("candidates", "kept", "seconds")]
    lines = [f"{result['model']}: picked by {', '.join(result['picked_by'])}; {result['trials']} trials x "
             f"{len(result['prompts'])} prompts", "",
             "| candidates | " + " | ".join(keys) + " | seconds (draw + judge) |",
             "|---|" + "---|" * (len(keys) + 1)]
    for r in rows:
        label = f"{r['candidates']}" + (" (= keep one at random)" if r["candidates"] == 1 else "")
        lines.append(f"| {label} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + f" | {r['seconds']:.2f} |")
    if "spread_of_4_kept_of_64" in result:
        s = result["spread_of_4_kept_of_64"]
        lines += ["", f"Keeping 4 of 64, mean RMS pixel distance between the kept: {s['diverse']:.3f} with the "
                  f"diversity term, {s['top']:.3f} for the top 4 by quality, {s['random']:.3f} for 4 at random"]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, choices=sorted(PROMPTS))
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--json", nargs="?", const="", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    result = run(args.model, args.trials)
    print(report(result))
    if args.json is not None:
        record.write(Path(args.json) if args.json else record.RESULTS / f"selection_{args.model}_cpu.json", result)


if __name__ == "__main__":
    cli.run(main)
