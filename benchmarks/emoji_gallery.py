"""The gallery in an emoji model's card: one row per prompt, one picture per artwork style.

    python -m benchmarks.emoji_gallery --checkpoint zoo/pretrained/dcgan-emoji [--seed 0]

Writes CHECKPOINT/gallery.png (rows in the order of PROMPTS, columns google, twitter, openmoji, fluent-flat,
fluent-modern; each picture as sample.py draws it with `--seed`) and prints the Markdown table of the rows:
the prompt and the training captions nearest to it, i.e. how the model read it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zoo import allocator
from zoo.errors import UsageError

# Prompts a person would type; none is a caption the models were trained on.
PROMPTS = ("summer beach", "夏天的海边", "a rainy day", "birthday party", "a red apple", "a sleeping cat",
           "a rocket to the moon", "a snowy winter night", "a slice of pizza", "a happy face")


def gallery(sampler: object, prompts: Sequence[str], seed: int) -> tuple[np.ndarray, list[str]]:
    """(the grid as uint8 [H, W, 3], a Markdown row per prompt)."""
    from zoo.sample.images import grid

    n = len(sampler.styles)
    rows, lines = [], []
    for prompt in prompts:
        reading = sampler.read_prompt(prompt)
        cond = sampler.condition(np.tile(reading.cond[None], (n, 1)), np.arange(n))  # the styles, left to right
        rows += sampler.sample_cond(cond, seed)
        nearest = ", ".join(f"{caption} ({score:.2f})" for caption, score in reading.scores)
        lines.append(f"| {prompt} | {nearest} |")
    return grid(rows, cols=n), lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("zoo/pretrained/dcgan-emoji"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if not args.checkpoint.is_dir():
            raise UsageError(f"no export at {args.checkpoint}")
        from zoo import export, registry
        from zoo.sample.images import png_bytes

        sampler = registry.load_sampler(registry.get(export.load_config(args.checkpoint).model_name))(args.checkpoint)
        if not sampler.styles:
            raise UsageError(f"{args.checkpoint} is not an emoji model")
        image, lines = gallery(sampler, PROMPTS, args.seed)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    (args.checkpoint / "gallery.png").write_bytes(png_bytes(image))
    print(f"wrote {args.checkpoint / 'gallery.png'}: rows {', '.join(PROMPTS)}; columns {', '.join(sampler.styles)}")
    print("\n| prompt | nearest training captions (cosine) |\n|---|---|\n" + "\n".join(lines))


if __name__ == "__main__":
    allocator.restart_with_fast_malloc()  # as sample.py runs
    main()
