"""Evaluation of the caption-conditioned image models (`dcgan`, `vae`) against a classifier of real images.

    python -m benchmarks.image_eval --checkpoint zoo/pretrained/dcgan [--samples 10000] [--per-class 1000]
                                    [--diversity 200] [--iwae-k 1000 --iwae-images 1000] [--seed 0]
                                    [--temperature T] [--variant NAME] [--json [PATH]]

Prints Markdown tables; `--json PATH` also writes every figure (`--json` alone: the committed result's
name, benchmarks/results/eval_MODEL_DEVICE.json, MODEL `dcgan` or `vae`, or e.g. `vae-mnist` for an export
of another dataset). The judge is the small CNN that
`python -m benchmarks.image_classifier --data DATA` trained on the real training split of the export's
data (`benchmarks/classifiers/DATA.npz`); the real images are that dataset's test split
(zoo.data.images.load_images). Samples are drawn with `ImageSampler.sample_cond` conditioned on
`class_condition(c)`, the embedding of the first caption of class c ("a t-shirt", "a pair of trousers", ...:
a class-named prompt), at `--temperature` (default: what `sample.py` uses, the export's
`sample_temperature`, else 1), in fixed chunks whose seeds derive from `--seed`: the same command gives the
same figures. A VAE export with latent mixtures draws its latents from class c's mixture, as `sample.py`
does; without, from the model's prior. DCGAN images (32x32, the 28x28 data zero-padded by 2 px a side at
training) are centre-cropped back to 28x28 before they are judged; VAE images are its Bernoulli means.

Figures
-------
* Conditional accuracy (the bar each class must pass): for each class, the share of `--per-class` samples the
  classifier assigns to the prompted class, next to the classifier's own accuracy on the real test images of
  that class (its recall); ratio = samples / real; PASS when ratio >= 0.90 for the class. "Top other" is
  the class the samples are most often mistaken for.
* Classifier-feature Frechet distance (an FID-like figure, NOT FID: the features are the 128-d penultimate
  layer of our small CNN, not Inception's 2048-d pool layer, so the values are not comparable with
  published FIDs): ||mu_g - mu_r||^2 + tr(S_g + S_r - 2 (S_g S_r)^(1/2)) between the Gaussians fit to the
  features of `--samples` generated images (balanced: samples / classes per class) and of the whole test
  set. Floor: the same distance from the test set to as many real TRAINING images, as many of each class
  (a fixed random subset; all of a class's training images when it has fewer, as the mnist source's 450),
  i.e. what a perfect generator would score with the same sample size (the estimate is biased upwards for
  finite sets, and equally so for both). The matrix square root is taken by symmetric
  eigendecompositions, tr (S_g S_r)^(1/2) = sum sqrt(eig(S_r^(1/2) S_g S_r^(1/2))), exact for covariance
  (positive semi-definite) matrices, real by construction; tests check it against scipy.linalg.sqrtm.
* Diversity (the mode-collapse check): per class, the mean pairwise L2 distance between images (28x28
  pixels in [0, 1], so at most 28) among the first `--diversity` samples, next to the same among as many
  real test images of that class (a fixed random subset; all of them when the class has fewer). A ratio
  far below 1 says the samples of a class look alike (collapse); a VAE's Bernoulli means are smoother than
  real images and sit somewhat below 1 even without collapse.
* VAE only (an export whose images.json gives a `likelihood`): the test negative
  log-likelihood bound in nats per image, `zoo.objectives.vae.iwae_nll` with K = `--iwae-k` importance
  samples (Burda et al.), on a SUBSET of `--iwae-images` test images: the first ones in training's eval
  order, in the likelihood's pixels: for "bernoulli" binarised exactly as training's eval binarises them
  (one Bernoulli(pixel / 255) draw per pixel with the fixed seed zoo.data.image_batches.EVAL_SEED: dynamic
  binarisation frozen by a fixed key), for "logistic" the 8-bit grey levels as they are (bits/dim
  comparable with other 8-bit likelihoods, not with binarised figures), each
  conditioned on the caption training's eval gives it. Beside it the negative ELBO on the same images
  (the K = 1 bound: one posterior sample per image, an unbiased estimate of the negative ELBO). A
  standard error over images is given for both.
* Timing: wall time of each part and of the whole run; sampling speed in images/s.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from benchmarks.image_classifier import IMAGE_SHAPE, load_classifier
from zoo import allocator
from zoo.critics.images import centre_crop
from zoo.data import image_batches
from zoo.data import images as image_data
from zoo.errors import UsageError

ACCURACY_RATIO = 0.90  # the bar: per class, samples' accuracy >= 90% of the real images'
SAMPLE_CHUNK = 500  # images per sampler call (one compilation)
FLOOR_SEED, DIVERSITY_SEED = 1, 2


# --------------------------------------------------------------------------------------------- metrics


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], covariance [D, D]) of features [N, D], float64, covariance with the N - 1 divisor."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need features [N >= 2, D], got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (negative round-off
    eigenvalues clipped to 0)."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The Frechet (2-Wasserstein squared) distance between N(mu1, sigma1) and N(mu2, sigma2):
    ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2)), where
    tr((sigma1 sigma2)^(1/2)) = sum of the square roots of the eigenvalues of sigma2^(1/2) sigma1 sigma2^(1/2),
    a symmetric PSD matrix (similar to sigma1 sigma2), so the result is real without discarding anything."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    root2 = _psd_sqrt(sigma2)
    inner = root2 @ sigma1 @ root2
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_cross = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_cross, 0.0))


def features_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """`frechet_distance` between the Gaussians fit to two feature sets [N, D] and [M, D]."""
    return frechet_distance(*feature_stats(a), *feature_stats(b))


def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean Euclidean distance over all unordered pairs of rows of x [N, ...] (flattened), float64."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    n = len(x)
    if n < 2:
        return float("nan")
    sq = (x * x).sum(axis=1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0, None)
    iu = np.triu_indices(n, k=1)
    return float(np.sqrt(d2[iu]).mean())


# ------------------------------------------------------------------------------------------- sampling


def class_samples(sampler: Any, class_index: int, n: int, seed: int, temperature: float,
                  source_shape: Sequence[int], model_prior: bool = False) -> np.ndarray:
    """n uint8 samples [n, 28, 28, 1] conditioned on `class_condition(class_index)`, drawn SAMPLE_CHUNK at a
    time (the last call padded: one compiled shape), call i of class c seeded by (seed, c, i)."""
    cond = np.tile(np.asarray(sampler.class_condition(class_index), np.float32)[None], (SAMPLE_CHUNK, 1))
    out = []
    for i in range(math.ceil(n / SAMPLE_CHUNK)):
        call_seed = (seed * 1_000_003 + class_index * 1_009 + i) % (2 ** 31)
        classes = None if model_prior else np.full(SAMPLE_CHUNK, class_index)
        out.append(np.stack(sampler.sample_cond(cond, call_seed, temperature, classes=classes)))
    return centre_crop(np.concatenate(out)[:n], source_shape)


# ---------------------------------------------------------------------------------------------- the run


def _is_vae(sampler: Any) -> bool:
    return sampler.info.get("likelihood") in ("bernoulli", "logistic") or sampler.info.get("family") == "vae"


def _iwae(sampler: Any, ds: image_data.ImageDataset, n_images: int, k: int, seed: int) -> dict:
    """The IWAE bound (K = k) and the K = 1 bound (negative ELBO) on the first n_images test images in
    training's eval order, in the pixels of the export's likelihood (for "bernoulli" training eval's fixed
    binarisation) and with training eval's captions."""
    from zoo.objectives.vae import SCALES, iwae_nll  # deferred: only VAE exports need it

    classes = np.asarray(sampler.caption_classes)
    if np.any(np.diff(classes) < 0):
        raise UsageError("the export's captions are not grouped by class; cannot rebuild training's eval captions")
    captions_per_class = [[c for c, k_ in zip(sampler.captions, classes, strict=True) if k_ == i]
                          for i in range(len(sampler.class_names))]
    n_images = min(n_images, len(ds.test_labels))
    batches = image_batches.ImageBatches(ds.test_images, ds.test_labels, captions_per_class, n_images, 0,
                                      scale=SCALES[sampler.info.get("likelihood", "bernoulli")])
    batch = next(batches.eval_batches(1))
    x, cond = batch["image"], sampler.table[batch["caption_id"]].astype(np.float32)
    key = jax.random.PRNGKey(seed)
    t0 = time.perf_counter()
    nll = iwae_nll(sampler.graphdef, sampler.params, x, cond, key, k)
    t1 = time.perf_counter()
    elbo = iwae_nll(sampler.graphdef, sampler.params, x, cond, jax.random.fold_in(key, 1), 1)
    t2 = time.perf_counter()
    sem = lambda v: float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")  # noqa: E731
    return {"k": k, "images": int(n_images), "test_images": len(ds.test_labels),
            "binarisation": (f"fixed Bernoulli draw, seed zoo.data.image_batches.EVAL_SEED={image_batches.EVAL_SEED}"
                             if sampler.info.get("likelihood", "bernoulli") == "bernoulli"
                             else "none: 8-bit grey levels, discretised logistic"),
            "iwae_nll": float(nll.mean()), "iwae_nll_sem": sem(nll), "neg_elbo": float(elbo.mean()),
            "neg_elbo_sem": sem(elbo), "bits_per_dim": float(nll.mean() / (x[0].size * math.log(2))),
            "iwae_s": t1 - t0, "elbo_s": t2 - t1}


def run(checkpoint: Path, samples: int, per_class: int, diversity: int, iwae_k: int, iwae_images: int,
        seed: int, temperature: float | None, model_prior: bool = False) -> dict:
    """Every figure of the module docstring for an export directory, as one JSON-able dict (temperature
    None: the sampler's default)."""
    from zoo import export, registry  # deferred: imports the text stack

    start = time.perf_counter()
    entry = registry.get(export.load_config(checkpoint).get("model_name", ""))
    sampler = registry.load_sampler(entry)(checkpoint)
    temperature = sampler.default_temperature if temperature is None else temperature
    return evaluate(sampler, str(checkpoint), samples, per_class, diversity, iwae_k, iwae_images, seed, temperature,
                    start, model_prior)


def evaluate(sampler: Any, name: str, samples: int, per_class: int, diversity: int, iwae_k: int, iwae_images: int,
             seed: int, temperature: float, start: float | None = None, model_prior: bool = False) -> dict:
    """The figures for anything with ImageSampler's evaluation surface: `info` (images.json: data,
    image_shape, source_shape, likelihood), `class_names`, `class_condition(c)`, `sample_cond(cond, seed,
    temperature)` (and, for a VAE, `graphdef`, `params`, `captions`, `caption_classes`, `table`)."""
    start = time.perf_counter() if start is None else start
    info = sampler.info
    data = info.get("data") or info.get("dataset")
    source_shape = info.get("source_shape") or info.get("image_shape")
    if tuple(int(s) for s in source_shape) != IMAGE_SHAPE:
        raise UsageError(f"the classifier judges 28x28x1 images; {name} models {source_shape} ({data})")
    ds = image_data.load_images(data)
    logits_fn, features_fn = load_classifier(data)
    names, k_classes = list(ds.class_names), ds.num_classes
    if names != list(sampler.class_names):
        raise UsageError(f"{name}'s classes {sampler.class_names} are not {data}'s {names}")
    timing: dict[str, float] = {"load_s": time.perf_counter() - start}

    # Real images: the classifier's own accuracy and the test set's features.
    t0 = time.perf_counter()
    real_pred = logits_fn(ds.test_images).argmax(-1)
    real_features = features_fn(ds.test_images)
    # The floor: as many training images per class as the Frechet distance takes samples of each class.
    fd_per_class = samples // k_classes
    floor_rng = np.random.default_rng(FLOOR_SEED)
    floor_idx = np.zeros(0, np.int64)
    for c in range(k_classes):
        members = np.flatnonzero(ds.train_labels == c)
        floor_idx = np.concatenate([floor_idx, floor_rng.choice(members, min(fd_per_class, len(members)), False)])
    floor_features = features_fn(ds.train_images[np.sort(floor_idx)]) if fd_per_class else None
    timing["real_features_s"] = time.perf_counter() - t0

    # Samples, per class: accuracy on the first per_class, diversity on the first `diversity`, Frechet on the
    # first samples // classes (balanced).
    n_class = max(per_class, diversity, fd_per_class)
    gen_features, per_class_rows, sample_s, judge_s = [], [], 0.0, 0.0
    rng = np.random.default_rng(DIVERSITY_SEED)
    for c, class_name in enumerate(names):
        t0 = time.perf_counter()
        images = class_samples(sampler, c, n_class, seed, temperature, source_shape, model_prior)
        t1 = time.perf_counter()
        pred = logits_fn(images[:per_class]).argmax(-1)
        if fd_per_class:
            gen_features.append(features_fn(images[:fd_per_class]))
        judge_s += time.perf_counter() - t1
        sample_s += t1 - t0
        real = ds.test_labels == c
        gen_acc, real_acc = float((pred == c).mean()), float((real_pred[real] == c).mean())
        others = np.bincount(pred[pred != c], minlength=k_classes)
        real_members = np.flatnonzero(real)
        chosen = np.sort(rng.choice(real_members, min(diversity, len(real_members)), replace=False))
        gen_div = mean_pairwise_distance(images[:diversity].astype(np.float64) / 255.0)
        real_div = mean_pairwise_distance(ds.test_images[chosen].astype(np.float64) / 255.0)
        ratio = gen_acc / real_acc if real_acc > 0 else float("nan")
        per_class_rows.append({
            "class": class_name, "samples": per_class, "sample_accuracy": gen_acc, "real_accuracy": real_acc,
            "real_images": int(real.sum()), "ratio": ratio, "pass": bool(ratio >= ACCURACY_RATIO),
            "top_other": names[int(others.argmax())] if others.sum() else None,
            "top_other_share": float(others.max() / len(pred)) if len(pred) else 0.0,
            "diversity_samples": min(diversity, len(images)), "diversity": gen_div,
            "diversity_real_images": len(chosen), "diversity_real": real_div,
            "diversity_ratio": gen_div / real_div if real_div > 0 else float("nan")})
    timing["sampling_s"], timing["judging_s"] = sample_s, judge_s

    out: dict[str, Any] = {
        "checkpoint": name, "data": data, "family": "vae" if _is_vae(sampler) else "dcgan",
        "image_shape": list(info.get("image_shape", [])), "judged_shape": list(source_shape), "seed": seed,
        "temperature": temperature, "latents": "model prior" if model_prior or getattr(sampler, "mixture", None) is None
        else "latent mixtures", "classifier_test_accuracy": float((real_pred == ds.test_labels).mean()),
        "per_class": per_class_rows}
    acc = [r["sample_accuracy"] for r in per_class_rows]
    out["conditional_accuracy"] = {"mean_sample_accuracy": float(np.mean(acc)),
                                   "min_ratio": float(min(r["ratio"] for r in per_class_rows)),
                                   "classes_passing": sum(r["pass"] for r in per_class_rows),
                                   "classes": k_classes, "pass": all(r["pass"] for r in per_class_rows)}

    t0 = time.perf_counter()
    if gen_features:
        gen = np.concatenate(gen_features)
        out["frechet"] = {"samples": len(gen), "test_images": len(real_features), "floor_train_images": len(floor_idx),
                          "model_vs_test": features_frechet(gen, real_features),
                          "train_vs_test_floor": features_frechet(floor_features, real_features)}
    timing["frechet_s"] = time.perf_counter() - t0
    out["sampling"] = {"images": n_class * k_classes, "images_per_s": n_class * k_classes / sample_s}

    if _is_vae(sampler) and iwae_images > 0:
        out["nll"] = _iwae(sampler, ds, iwae_images, iwae_k, seed)
        timing["nll_s"] = out["nll"]["iwae_s"] + out["nll"]["elbo_s"]
    out["timing"] = timing
    out["seconds"] = time.perf_counter() - start
    return out


# --------------------------------------------------------------------------------------------- report


def _pct(x: float | None) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f}%"


def report(out: dict) -> str:
    """The figures as Markdown tables, in the order of the module docstring."""
    ca = out["conditional_accuracy"]
    lines = [f"# {out['checkpoint']} ({out['family']}, {out['data']}, samples {'x'.join(map(str, out['image_shape']))}"
             f" judged at {'x'.join(map(str, out['judged_shape']))}, temperature {out['temperature']}, "
             f"seed {out['seed']}{', latents from the ' + out['latents'] if out['family'] == 'vae' else ''})", "",
             f"## Conditional accuracy ({out['per_class'][0]['samples']} samples per class-named prompt; "
             f"classifier accuracy on the real test set {_pct(out['classifier_test_accuracy'])})", "",
             "| class | samples classified as the class | real test images classified as the class | ratio "
             "| >= 0.90 | top other class (share) |", "|---|---|---|---|---|---|"]
    for r in out["per_class"]:
        other = f"{r['top_other']} ({_pct(r['top_other_share'])})" if r["top_other"] else "-"
        lines.append(f"| {r['class']} | {_pct(r['sample_accuracy'])} | {_pct(r['real_accuracy'])} "
                     f"(of {r['real_images']}) | {r['ratio']:.3f} | {'PASS' if r['pass'] else 'FAIL'} | {other} |")
    lines += ["", f"Mean sample accuracy {_pct(ca['mean_sample_accuracy'])}; {ca['classes_passing']}/{ca['classes']}"
                  f" classes pass (lowest ratio {ca['min_ratio']:.3f}): **{'PASS' if ca['pass'] else 'FAIL'}**."]
    if "frechet" in out:
        f = out["frechet"]
        lines += ["", "## Classifier-feature Frechet distance (128-d features of the judge CNN; FID-like, not FID)",
                  "", "| set | images | vs the test set |", "|---|---|---|",
                  f"| model samples (balanced over classes) | {f['samples']} | {f['model_vs_test']:.3f} |",
                  f"| real training images (floor) | {f['floor_train_images']} | {f['train_vs_test_floor']:.3f} |",
                  "", f"Test set: {f['test_images']} images."]
    lines += ["", "## Diversity: mean pairwise L2 distance per class (28x28 pixels in [0, 1])", "",
              "| class | samples | real test images | ratio |", "|---|---|---|---|"]
    for r in out["per_class"]:
        lines.append(f"| {r['class']} | {r['diversity']:.2f} (n={r['diversity_samples']}) | {r['diversity_real']:.2f}"
                     f" (n={r['diversity_real_images']}) | {r['diversity_ratio']:.2f} |")
    if "nll" in out:
        n = out["nll"]
        lines += ["", f"## Test negative log-likelihood (nats per image; a subset: {n['images']} of "
                      f"{n['test_images']} test images, {n['binarisation']})", "",
                  "| bound | nats (+- s.e.) |", "|---|---|",
                  f"| IWAE, K = {n['k']} | {n['iwae_nll']:.2f} +- {n['iwae_nll_sem']:.2f} |",
                  f"| negative ELBO (K = 1) | {n['neg_elbo']:.2f} +- {n['neg_elbo_sem']:.2f} |", "",
                  f"IWAE bound = {n['bits_per_dim']:.4f} bits/dim."]
    t = out["timing"]
    parts = ", ".join(f"{k[:-2].replace('_', ' ')} {v:.1f} s" for k, v in t.items())
    lines += ["", f"Wall time {out['seconds']:.1f} s ({parts}); sampling {out['sampling']['images_per_s']:.0f} "
                  f"images/s ({out['sampling']['images']} images)."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("zoo/pretrained/dcgan"), help="an export dir")
    parser.add_argument("--samples", type=int, default=10000, help="samples for the Frechet distance "
                                                                  "(balanced over the classes)")
    parser.add_argument("--per-class", type=int, default=1000, help="samples per class for conditional accuracy")
    parser.add_argument("--diversity", type=int, default=200, help="images per class for mean pairwise distance")
    parser.add_argument("--iwae-k", type=int, default=1000, help="importance samples for the VAE's NLL bound")
    parser.add_argument("--iwae-images", type=int, default=1000, help="test images for the VAE's NLL (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=None,
                        help="the latent noise's spread (default: the export's sample_temperature, else 1)")
    parser.add_argument("--model-prior", action="store_true",
                        help="a VAE with latent mixtures: draw from the model's own prior p(z | c) instead")
    parser.add_argument("--variant", default="", help="names a variant of the model (an ablation, another "
                        "temperature) in the default --json file name: eval_MODEL-VARIANT_DEVICE.json")
    parser.add_argument("--json", type=Path, nargs="?", const=True,
                        help="also write every figure here (no PATH: benchmarks/results/eval_MODEL_DEVICE.json)")
    args = parser.parse_args(argv)
    try:
        if args.temperature is not None and not (math.isfinite(args.temperature) and args.temperature >= 0):
            raise UsageError("--temperature must be a finite number >= 0")
        if args.per_class < 1 or args.diversity < 2 or args.samples < 0 or args.iwae_k < 1 or args.iwae_images < 0:
            raise UsageError("need --per-class >= 1, --diversity >= 2, --samples >= 0, --iwae-k >= 1, "
                             "--iwae-images >= 0")
        if not args.checkpoint.is_dir():
            raise UsageError(f"no export at {args.checkpoint}")
        out = run(args.checkpoint, args.samples, args.per_class, args.diversity, args.iwae_k, args.iwae_images,
                  args.seed, args.temperature, args.model_prior)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(report(out))
    if args.json is True:  # --json alone: the name docs/benchmarks.md quotes
        model = out["family"] + ("" if out["data"] == "fashion_mnist" else f"-{out['data']}")
        model += f"-{args.variant}" if args.variant else ""
        args.json = Path(__file__).resolve().parent / "results" / f"eval_{model}_{jax.default_backend()}.json"
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    allocator.restart_with_fast_malloc()  # as train.py runs
    main()
