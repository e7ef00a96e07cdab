"""Does `--init` keep what the picture shows? The VAE's variations of real pictures, judged by a classifier.

    python -m benchmarks.vae_init [--images 300] [--variations 8] [--json [PATH]]

Inputs are Fashion-MNIST *test* images (never trained on), `--images` of them spread over the classes, in
two forms, each written to a file and read back the way `sample.py --init FILE` reads it:

- `as is`: the 28x28 grey PNG, a light object on black (the model's own format);
- `photo-like`: the same picture as a person would give it: enlarged to 210x210 with bicubic filtering, a
  dark object on an off-white 320x260 RGB canvas, saved as JPEG (quality 90), so it is converted,
  inverted, cropped and resized on the way in.

For each input and each temperature, `--variations` variations are drawn (`VAESampler.variations`, no
prompt: the class is the one under which the model explains the picture best). The benchmarks' classifier
(benchmarks/image_classifier.py, trained apart) judges: the share of variations in the input's true class,
next to its accuracy on the inputs themselves, and the share of inputs the VAE reads as their true class.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import record
from zoo import cli, export, registry

TEMPERATURES = (0.0, 0.25, 0.5, 1.0, 1.5)
FORMS = ("as is", "photo-like")


def write_input(image: np.ndarray, form: str, path: Path) -> Path:
    """uint8 [28, 28, 1] -> a file in `form` (see the module docstring)."""
    from PIL import Image

    grey = Image.fromarray(image[..., 0])
    if form == "as is":
        path = path.with_suffix(".png")
        grey.save(path)
        return path
    dark = Image.fromarray(255 - image[..., 0]).resize((210, 210), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (320, 260), (250, 248, 240))
    canvas.paste(Image.merge("RGB", (dark, dark, dark)), (60, 30))
    path = path.with_suffix(".jpg")
    canvas.save(path, quality=90)
    return path


def run(images: int, variations: int, seed: int) -> dict:
    from benchmarks.image_classifier import load_classifier
    from zoo.critics.images import centre_crop
    from zoo.data.images import load_images

    entry = registry.get("vae")
    sampler = registry.load_sampler(entry)(export.find_export(entry.pretrained_dir))
    ds = load_images(str(sampler.info["data"]))
    logits_fn, _ = load_classifier(str(sampler.info["data"]))
    judge = lambda x: np.argmax(np.asarray(logits_fn(centre_crop(x, sampler.info["source_shape"]))), axis=1)  # noqa: E731
    per_class = max(1, images // len(ds.class_names))
    rng = np.random.default_rng(seed)
    picked = np.concatenate([rng.permutation(np.flatnonzero(ds.test_labels == c))[:per_class]
                             for c in range(len(ds.class_names))])
    labels = ds.test_labels[picked]
    out: dict = {"images": len(picked), "variations": variations, "temperatures": list(TEMPERATURES), "forms": {}}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for form in FORMS:
            read_right, kept = [], {t: [] for t in TEMPERATURES}
            inputs = []
            for i, index in enumerate(picked):
                path = write_input(ds.test_images[index], form, Path(tmp) / f"{i}")
                mu, cond, read_as = sampler.encode_image(str(path))
                read_right.append(read_as == labels[i])
                for t in TEMPERATURES:
                    drawn = np.stack(sampler.around(mu, cond, variations, seed + i, t))
                    kept[t].append(float(np.mean(judge(drawn) == labels[i])))
                inputs.append(ds.test_images[index])
            out["forms"][form] = {
                "judge_on_inputs": float(np.mean(judge(np.stack(inputs)) == labels)),
                "read_as_true_class": float(np.mean(read_right)),
                "kept_class": {str(t): float(np.mean(v)) for t, v in kept.items()}}
    out["seconds"] = time.perf_counter() - start
    return out


def report(result: dict) -> str:
    temps = result["temperatures"]
    lines = [f"{result['images']} Fashion-MNIST test images, {result['variations']} variations each per temperature; "
             "share of variations the benchmarks' classifier puts in the input's class:", "",
             "| input | judge on the inputs | VAE reads the class | " + " | ".join(f"T = {t:g}" for t in temps) + " |",
             "|---" * (3 + len(temps)) + "|"]
    for form, r in result["forms"].items():
        lines.append(f"| {form} | {r['judge_on_inputs']:.3f} | {r['read_as_true_class']:.3f} | "
                     + " | ".join(f"{r['kept_class'][str(t)]:.3f}" for t in temps) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--variations", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", nargs="?", const="", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    result = run(args.images, args.variations, args.seed)
    print(report(result))
    if args.json is not None:
        record.write(Path(args.json) if args.json else record.RESULTS / "vae_init_vae_cpu.json", result)


if __name__ == "__main__":
    cli.run(main)
