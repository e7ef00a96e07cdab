"""The judge of the emoji models' pictures: a small CNN that maps a picture to the sentence embedding of its
concept's words, trained contrastively on real pictures only (benchmarks.emoji_eval).

    python -m benchmarks.emoji_judge [--steps 3000] [--seed 0]

It never trained a generator and no generator trained it: it learns from the emoji corpus's training
pictures (zoo.data.emoji) and is scored on the held-out ones (one picture of ~950 concepts, in a style it
saw for other concepts but never for that one). Retrieval: a picture's embedding is compared with every
concept's text embedding (the normalised mean of the sentence embeddings of its captions, the text encoder
the models are conditioned with), and the concept is found if it ranks first (top-1) or among the first
five (top-5) of all 1,940.

Model (Flax NNX), on uint8 [N, 64, 64, 3] pictures scaled to [0, 1] and averaged down to 32x32:
    4 x (Conv 3x3 -> ReLU -> max-pool 2), widths 32, 64, 128, 128 -> [mean-pool ; max-pool] (256)
    -> Dense 256 -> ReLU  (the "features": Frechet distance and diversity are measured in them)
    -> Dense 384 -> L2 normalisation; logits = exp(scale) x cosine with every concept, cross-entropy to its own
Training: the full softmax over all concepts (every other concept is a negative, the contrastive loss with a
fixed text tower), Adam 1e-3 with cosine decay, batch 128, random shifts of up to 4 pixels (white filled).
Writes `benchmarks/classifiers/emoji_judge.npz` (float16 weights) and `.json` (held-out top-1/top-5 overall
and per style, the command, the training time).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from benchmarks.image_classifier import BATCH, CLASSIFIER_DIR, LEARNING_RATE, _flat, _nest, fit, shifted
from zoo import allocator
from zoo.data.image_captions import caption_table, class_captions
from zoo.data.images import ImageDataset, load_images
from zoo.errors import UsageError
from zoo.text.captions import embed_captions

WEIGHTS = CLASSIFIER_DIR / "emoji_judge.npz"
DATA = "emoji"
FEATURES, EMBED = 256, 384
DEFAULT_STEPS, MAX_SHIFT = 3000, 4  # batch and learning rate: image_classifier.fit's
CHUNK = 256


class Judge(nnx.Module):
    """Picture -> unit vector in the text encoder's space, through 256 image features."""

    def __init__(self, *, rngs: nnx.Rngs):
        widths = (3, 32, 64, 128, 128)
        self.convs = nnx.List([nnx.Conv(a, b, (3, 3), rngs=rngs) for a, b in zip(widths, widths[1:], strict=False)])
        self.dense = nnx.Linear(2 * widths[-1], FEATURES, rngs=rngs)
        self.project = nnx.Linear(FEATURES, EMBED, rngs=rngs)
        self.log_scale = nnx.Param(jnp.asarray(np.log(10.0), jnp.float32))

    def features(self, x: jax.Array) -> jax.Array:
        """uint8 pictures [N, 64, 64, 3] -> float32 features [N, 256] (after the ReLU)."""
        h = jnp.asarray(x, jnp.float32) / 255.0
        h = nnx.avg_pool(h, (2, 2), strides=(2, 2))  # 32x32: a quarter of the cost, the concept still legible
        for conv in self.convs:
            h = nnx.max_pool(nnx.relu(conv(h)), (2, 2), strides=(2, 2))
        return nnx.relu(self.dense(jnp.concatenate([h.mean(axis=(1, 2)), h.max(axis=(1, 2))], axis=-1)))

    def __call__(self, x: jax.Array) -> jax.Array:
        """Unit vectors [N, 384]."""
        v = self.project(self.features(x))
        return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-6)


def concept_table(ds: ImageDataset) -> np.ndarray:
    """float32 [num_concepts, 384]: each concept's captions' embeddings, averaged and normalised."""
    captions, classes = caption_table(class_captions(ds))
    emb = np.asarray(embed_captions(captions), np.float32)
    table = np.zeros((ds.num_classes, emb.shape[1]), np.float32)
    np.add.at(table, classes, emb)
    return table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-6)


def train(ds: ImageDataset, table: np.ndarray, steps: int, seed: int = 0, log_every: int = 250) -> Judge:
    concepts = jnp.asarray(table)

    def loss_fn(judge: Judge, x: jax.Array, y: jax.Array) -> jax.Array:
        logits = jnp.exp(jnp.minimum(judge.log_scale[...], np.log(100.0))) * judge(x) @ concepts.T
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return shifted(x, rng, MAX_SHIFT, fill=255)  # the corpus's white background

    return fit(Judge(rngs=nnx.Rngs(seed)), loss_fn, ds, steps, seed, augment, log_every)


def save(model: Judge, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = {k: v.astype(np.float16) for k, v in _flat(nnx.to_pure_dict(nnx.state(model, nnx.Param))).items()}
    with open(path, "wb") as f:
        np.savez(f, **flat)


def load_judge(path: Path = WEIGHTS) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """(embed_fn, features_fn): uint8 pictures [N, 64, 64, 3] -> float32 unit vectors [N, 384] and features
    [N, 256], in fixed-size jitted chunks. UsageError names the command if the judge is not trained."""
    if not path.is_file():
        raise UsageError(f"no emoji judge at {path}; train it: python -m benchmarks.emoji_judge")
    with np.load(path) as f:
        flat = {k: np.asarray(f[k], np.float32) for k in f.files}
    model = nnx.eval_shape(lambda: Judge(rngs=nnx.Rngs(0)))
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, _nest(flat))
    graphdef, _ = nnx.split(model)
    params = jax.tree.map(jnp.asarray, state)
    embed = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))
    features = jax.jit(lambda p, x: nnx.merge(graphdef, p).features(x))

    def chunked(fn: Callable) -> Callable[[np.ndarray], np.ndarray]:
        def apply(images: np.ndarray) -> np.ndarray:
            images = np.asarray(images, np.uint8)
            outs = []
            for start in range(0, len(images), CHUNK):
                part = images[start:start + CHUNK]
                out = fn(params, np.pad(part, ((0, CHUNK - len(part)), (0, 0), (0, 0), (0, 0))))
                outs.append(np.asarray(out, np.float32)[:len(part)])
            return np.concatenate(outs)

        return apply

    return chunked(embed), chunked(features)


def ranks(embeddings: np.ndarray, table: np.ndarray, targets: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """The best rank (0 = first) among all concepts of any of each picture's target concepts."""
    scores = embeddings @ table.T
    out = np.empty(len(scores), np.int64)
    for i, row in enumerate(scores):
        wanted = np.atleast_1d(targets[i])
        out[i] = int((row > row[wanted].max()).sum())
    return out


def held_out_table(embed_fn: Callable[[np.ndarray], np.ndarray], ds: ImageDataset, table: np.ndarray) -> dict:
    """Top-1 and top-5 retrieval of the held-out real pictures, overall and per style."""
    r = ranks(embed_fn(ds.test_images), table, ds.test_labels)
    per_style = {name: {"pictures": int((ds.test_styles == s).sum()),
                        "top1": float((r[ds.test_styles == s] < 1).mean()),
                        "top5": float((r[ds.test_styles == s] < 5).mean())}
                 for s, name in enumerate(ds.style_names)}
    return {"pictures": len(r), "top1": float((r < 1).mean()), "top5": float((r < 5).mean()),
            "per_style": per_style}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="Adam steps of batch 128")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args(argv)
    try:
        if args.steps < 1:
            raise UsageError(f"--steps must be >= 1, got {args.steps}")
        ds = load_images(DATA)
        table = concept_table(ds)
        start = time.perf_counter()
        model = train(ds, table, args.steps, args.seed)
        seconds = time.perf_counter() - start
        save(model, args.out)
        embed_fn, _ = load_judge(args.out)  # the rates of what was saved (float16 weights)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    result = {"held_out": held_out_table(embed_fn, ds, table), "concepts": ds.num_classes,
              "train_pictures": len(ds.train_labels), "steps": args.steps, "batch_size": BATCH,
              "learning_rate": LEARNING_RATE, "max_shift": MAX_SHIFT, "seed": args.seed,
              "train_seconds": round(seconds, 1), "weights_bytes": args.out.stat().st_size,
              "command": f"python -m benchmarks.emoji_judge --steps {args.steps} --seed {args.seed}"}
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    h = result["held_out"]
    print(f"held-out real pictures ({h['pictures']}, {ds.num_classes} concepts): top-1 {100 * h['top1']:.1f}%, "
          f"top-5 {100 * h['top5']:.1f}%")
    for name, row in h["per_style"].items():
        print(f"  {name:<14} {row['pictures']:>4} pictures  top-1 {100 * row['top1']:.1f}%  "
              f"top-5 {100 * row['top5']:.1f}%")


if __name__ == "__main__":
    allocator.restart_with_fast_malloc()  # as train.py runs
    main()
