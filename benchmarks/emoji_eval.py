"""Evaluation of the emoji models (`dcgan-emoji`, `vae-emoji`) by a judge that never trained them.

    python -m benchmarks.emoji_eval --checkpoint zoo/pretrained/dcgan-emoji [--per-picture 2] [--phrasing-samples 10]
                                    [--diversity-concepts 100] [--seed 0] [--json [PATH]]

The judge is the contrastive CNN of benchmarks.emoji_judge (`python -m benchmarks.emoji_judge` trains it on the
corpus's real training pictures). It maps a picture into the text encoder's space; a picture "retrieves" its
concept when that concept's words rank first (top-1) or among the first five (top-5) of all 1,940.

Figures (every draw seeded from `--seed`: the same command gives the same figures)
* Seen concepts: for each of the ~950 held-out real pictures (concept c in style s), `--per-picture` samples
  conditioned on c's first caption (its CLDR name) in style s. Their top-1/top-5 retrieval, per style and
  overall, next to the judge's rate on the held-out real pictures themselves; ratio = samples / real.
* Two softer measures of the same samples, for models far from the judge's top five: the median rank of the
  concept among all (chance: about 970), and the share whose top-ranked concept is in the target's emoji
  group (smileys, people, animals, food, travel, activities, objects, symbols, flags).
* Frechet distance in the judge's 256-d features between those samples and the held-out real pictures, with
  a floor: the same distance from the held-out pictures to as many real TRAINING pictures.
* Diversity: for `--diversity-concepts` held-out concepts (a seeded draw), the mean pairwise feature distance
  of five samples of the concept's name, one per style (what sample.py draws by default), next to the same among the
  concept's real pictures (its styles); and of five samples in one style (only the noise differs), which
  has no real counterpart (one picture per style) and says whether the noise matters at all.
* Unseen phrasings (benchmarks/emoji_phrasings.tsv, written before any sample was drawn): each phrase read
  as sample.py reads it (a Chinese phrase glossed to English, then embedded directly, no snapping), then
  `--phrasing-samples` samples through the styles; hit = any concept a person would name in the judge's
  top-1/top-5. Beside it the same concepts drawn from their own names (the seen case).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from benchmarks.emoji_judge import concept_table, held_out_table, load_judge, ranks
from benchmarks.image_eval import features_frechet, mean_pairwise_distance
from zoo import allocator
from zoo.data import emoji
from zoo.data.images import ImageDataset, load_images
from zoo.errors import UsageError

PHRASINGS = Path(__file__).resolve().parent / "emoji_phrasings.tsv"
CHUNK = 128  # conditions per sampling call: one compiled shape


def read_phrasings(path: Path = PHRASINGS) -> list[tuple[str, list[str]]]:
    """(phrase, the concept names a person would give it) per line of the TSV, comments skipped."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            phrase, names = line.split("\t")
            rows.append((phrase, names.split("|")))
    return rows


def draw(sampler: Any, cond: np.ndarray, seed: int) -> np.ndarray:
    """uint8 samples for condition rows [N, cond_dim], CHUNK at a time (the last padded), call i seeded
    by (seed, i), at the sampler's `temperature` (what sample.py uses unless --temperature says otherwise)."""
    out = []
    for i, start in enumerate(range(0, len(cond), CHUNK)):
        part = cond[start:start + CHUNK]
        padded = np.concatenate([part, np.repeat(part[-1:], CHUNK - len(part), axis=0)])
        out.append(np.stack(sampler.sample_cond(padded, (seed * 1_000_003 + i) % 2**31,
                                                sampler.default_temperature))[:len(part)])
    return np.concatenate(out)


def rates(r: np.ndarray, group_hits: np.ndarray | None = None) -> dict[str, float]:
    """top-1 and top-5 rates and the median rank (1 = first; chance: half the concepts) of 0-based ranks `r`; with
    `group_hits`, the share whose top-ranked concept is in the target's emoji group (smileys, food, ...)."""
    out = {"top1": float((r < 1).mean()), "top5": float((r < 5).mean()), "median_rank": float(np.median(r)) + 1}
    if group_hits is not None:
        out["group"] = float(group_hits.mean())
    return out


def group_hits(embeddings: np.ndarray, table: np.ndarray, targets: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Whether each picture's top-ranked concept shares the emoji group of its target concept."""
    return groups[(embeddings @ table.T).argmax(axis=1)] == groups[np.asarray(targets)]


def evaluate(sampler: Any, ds: ImageDataset, per_picture: int, phrasing_samples: int, diversity_concepts: int,
             seed: int) -> dict:
    start = time.perf_counter()
    if list(sampler.class_names) != list(ds.class_names) or sampler.styles != list(ds.style_names):
        raise UsageError("the export's concepts or styles differ from the corpus's: retrain, or check the packages")
    embed_fn, features_fn = load_judge()
    table = concept_table(ds)
    real = held_out_table(embed_fn, ds, table)
    groups = np.asarray([c.group for c in emoji.load(ds.style_names).concepts])
    real_embeddings = embed_fn(ds.test_images)
    real.update({k: v for k, v in rates(ranks(real_embeddings, table, ds.test_labels),
                                        group_hits(real_embeddings, table, ds.test_labels, groups)).items()
                 if k in ("median_rank", "group")})

    # Seen concepts: every held-out picture's concept and style, per_picture samples each.
    concepts = np.repeat(ds.test_labels, per_picture)
    styles = np.repeat(ds.test_styles, per_picture)
    cond = np.stack([sampler.class_condition(int(c), int(s)) for c, s in zip(concepts, styles, strict=True)])
    t0 = time.perf_counter()
    samples = draw(sampler, cond, seed)
    sample_seconds = time.perf_counter() - t0
    sample_embeddings = embed_fn(samples)
    r = ranks(sample_embeddings, table, concepts)
    seen = {"samples": len(samples), **rates(r, group_hits(sample_embeddings, table, concepts, groups)),
            "per_style": {}}
    for s, name in enumerate(ds.style_names):
        row = rates(r[styles == s])
        row["ratio_top5"] = row["top5"] / max(real["per_style"][name]["top5"], 1e-9)
        seen["per_style"][name] = row
    seen["ratio_top5"] = seen["top5"] / max(real["top5"], 1e-9)
    seen["ratio_top1"] = seen["top1"] / max(real["top1"], 1e-9)

    # Frechet distance in the judge's features, with the floor of real training pictures.
    real_features = features_fn(ds.test_images)
    rng = np.random.default_rng([seed, 7])
    floor_rows = rng.choice(len(ds.train_images), len(ds.test_images), replace=False)
    frechet = {"samples_vs_held_out": features_frechet(features_fn(samples), real_features),
               "floor_train_vs_held_out": features_frechet(features_fn(ds.train_images[floor_rows]), real_features)}

    # Diversity: five samples of one name through the styles, five in one style, and the real pictures.
    held_out = np.unique(ds.test_labels)  # a seeded draw: the first ones by index would all be smileys
    chosen = np.sort(np.random.default_rng([seed, 8]).choice(held_out, min(diversity_concepts, len(held_out)),
                                                             replace=False))
    n_styles = len(ds.style_names)
    across_cond = np.stack([sampler.class_condition(int(c), s) for c in chosen for s in range(n_styles)])
    within_cond = np.stack([sampler.class_condition(int(c), 0) for c in chosen for _ in range(n_styles)])
    across = features_fn(draw(sampler, across_cond, seed + 1)).reshape(len(chosen), n_styles, -1)
    within = features_fn(draw(sampler, within_cond, seed + 2)).reshape(len(chosen), n_styles, -1)
    all_images = np.concatenate([ds.train_images, ds.test_images])
    all_labels = np.concatenate([ds.train_labels, ds.test_labels])
    real_div = [mean_pairwise_distance(features_fn(all_images[all_labels == c])) for c in chosen]
    diversity = {"concepts": len(chosen), "samples_across_styles": float(np.mean([mean_pairwise_distance(a)
                                                                                   for a in across])),
                 "samples_one_style": float(np.mean([mean_pairwise_distance(w) for w in within])),
                 "real_across_styles": float(np.nanmean(real_div))}
    diversity["ratio_across_styles"] = diversity["samples_across_styles"] / diversity["real_across_styles"]

    # Unseen phrasings, read as sample.py reads them; and the same concepts from their own names.
    index = {name: i for i, name in enumerate(ds.class_names)}
    phrasings = []
    for p, (phrase, names) in enumerate(read_phrasings()):
        wanted = [index[n] for n in names]
        reading = sampler.read_prompt(phrase)
        style_rows = np.arange(phrasing_samples) % n_styles
        free = draw(sampler, sampler.condition(np.tile(reading.cond[None], (phrasing_samples, 1)), style_rows),
                    seed + 100 + p)
        named = draw(sampler, np.stack([sampler.class_condition(wanted[0], int(s)) for s in style_rows]),
                     seed + 200 + p)
        e_free, e_named = embed_fn(free), embed_fn(named)
        targets = np.full(len(free), wanted[0])
        r_free = ranks(e_free, table, [wanted] * len(free))
        r_named = ranks(e_named, table, [wanted] * len(named))
        phrasings.append({"phrase": phrase, "concepts": names, "read_as": reading.caption,
                          "nearest_caption": reading.scores[0][0], "nearest_cosine": reading.scores[0][1],
                          "free": rates(r_free, group_hits(e_free, table, targets, groups)),
                          "named": rates(r_named, group_hits(e_named, table, targets[:len(named)], groups))})
    mean = lambda key: {k: float(np.mean([row[key][k] for row in phrasings]))  # noqa: E731
                        for k in ("top1", "top5", "median_rank", "group")}
    unseen = {"phrasings": len(phrasings), "samples_each": phrasing_samples, "free": mean("free"),
              "named": mean("named"), "rows": phrasings}
    unseen["ratio_top5"] = unseen["free"]["top5"] / max(unseen["named"]["top5"], 1e-9)
    return {"family": sampler.family, "data": sampler.info["data"], "concepts": ds.num_classes,
            "styles": list(ds.style_names), "real_held_out": real, "seen": seen, "frechet": frechet,
            "diversity": diversity, "unseen": unseen, "per_picture": per_picture, "seed": seed,
            "sampling_images_per_s": len(samples) / sample_seconds, "seconds": time.perf_counter() - start,
            "device": jax.default_backend()}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def report(out: dict) -> str:
    real, seen = out["real_held_out"], out["seen"]
    lines = [f"## {out['family']} on {out['data']}: {out['concepts']} concepts, judged by benchmarks.emoji_judge", "",
             "Seen concepts (held-out pictures' concept and style; top-5 ratio = samples / real):", "",
             "| style | real held-out top-1 | top-5 | samples top-1 | top-5 | top-5 ratio |",
             "|---|---|---|---|---|---|"]
    for name, row in seen["per_style"].items():
        r = real["per_style"][name]
        lines.append(f"| {name} | {_pct(r['top1'])} | {_pct(r['top5'])} | {_pct(row['top1'])} | {_pct(row['top5'])} "
                     f"| {row['ratio_top5']:.2f} |")
    lines.append(f"| **all** ({real['pictures']} real, {seen['samples']} samples) | {_pct(real['top1'])} | "
                 f"{_pct(real['top5'])} | {_pct(seen['top1'])} | {_pct(seen['top5'])} | {seen['ratio_top5']:.2f} |")
    lines += ["", f"Median rank of the concept among {out['concepts']} (chance ~{out['concepts'] // 2}): real "
              f"{real['median_rank']:.0f}, samples {seen['median_rank']:.0f}. The top-ranked concept in the right "
              f"emoji group (smileys, animals, food, ...): real {_pct(real['group'])}, samples {_pct(seen['group'])}."]
    f, d, u = out["frechet"], out["diversity"], out["unseen"]
    lines += ["", f"Frechet distance in the judge's features: samples {f['samples_vs_held_out']:.2f}, floor (real "
              f"training pictures) {f['floor_train_vs_held_out']:.2f}.",
              f"Diversity ({d['concepts']} concepts, mean pairwise feature distance): five samples through the "
              f"styles {d['samples_across_styles']:.2f} vs real pictures {d['real_across_styles']:.2f} (ratio "
              f"{d['ratio_across_styles']:.2f}); five samples in one style {d['samples_one_style']:.2f}.", "",
              f"Unseen phrasings ({u['phrasings']}, {u['samples_each']} samples each): "
              f"top-1 {_pct(u['free']['top1'])}, "
              f"top-5 {_pct(u['free']['top5'])}; the same concepts from their names: top-1 {_pct(u['named']['top1'])}, "
              f"top-5 {_pct(u['named']['top5'])} (ratio {u['ratio_top5']:.2f}); median rank "
              f"{u['free']['median_rank']:.0f} and {u['named']['median_rank']:.0f}; right group "
              f"{_pct(u['free']['group'])} and {_pct(u['named']['group'])}.", "",
              "| phrase | concept | nearest caption | top-5 (phrase) | top-5 (name) | median rank (phrase) |",
              "|---|---|---|---|---|---|"]
    for row in u["rows"]:
        lines.append(f"| {row['phrase']} | {' / '.join(row['concepts'])} | {row['nearest_caption']} "
                     f"({row['nearest_cosine']:.2f}) | {_pct(row['free']['top5'])} | {_pct(row['named']['top5'])} "
                     f"| {row['free']['median_rank']:.0f} |")
    lines += ["", f"Sampling {out['sampling_images_per_s']:.0f} images/s on {out['device']}; {out['seconds']:.0f} s "
              "in all."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("zoo/pretrained/dcgan-emoji"), help="an export dir")
    parser.add_argument("--per-picture", type=int, default=2, help="samples per held-out picture (seen concepts)")
    parser.add_argument("--phrasing-samples", type=int, default=10, help="samples per unseen phrasing")
    parser.add_argument("--diversity-concepts", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=None,
                        help="the latent noise's spread (default: the export's sample_temperature)")
    parser.add_argument("--json", type=Path, nargs="?", const=True,
                        help="also write every figure here (no PATH: benchmarks/results/emoji_eval_FAMILY_DEVICE.json)")
    args = parser.parse_args(argv)
    try:
        if min(args.per_picture, args.phrasing_samples) < 1 or args.diversity_concepts < 1:
            raise UsageError("--per-picture, --phrasing-samples and --diversity-concepts must be >= 1")
        if not args.checkpoint.is_dir():
            raise UsageError(f"no export at {args.checkpoint}")
        from zoo import export, registry  # deferred: imports the text stack

        sampler = registry.load_sampler(registry.get(export.load_config(args.checkpoint).model_name))(args.checkpoint)
        if not sampler.direct:
            raise UsageError(f"{args.checkpoint} is not an emoji model (its prompts pick one of a few classes)")
        if args.temperature is not None:
            sampler.default_temperature = args.temperature
        out = evaluate(sampler, load_images(sampler.info["data"]), args.per_picture, args.phrasing_samples,
                       args.diversity_concepts, args.seed)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    out["command"] = (f"python -m benchmarks.emoji_eval --checkpoint {args.checkpoint} --per-picture "
                      f"{args.per_picture} --phrasing-samples {args.phrasing_samples} --diversity-concepts "
                      f"{args.diversity_concepts} --seed {args.seed}"
                      + (f" --temperature {args.temperature}" if args.temperature is not None else ""))
    out["temperature"] = sampler.default_temperature
    print(report(out))
    if args.json is True:
        variant = "" if args.temperature is None else f"-t{args.temperature:g}"
        args.json = (Path(__file__).resolve().parent / "results"
                     / f"emoji_eval_{out['family']}{variant}_{out['device']}.json")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    allocator.restart_with_fast_malloc()  # as train.py runs
    main()
