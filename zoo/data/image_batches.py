"""Stateless batches of an image split: a pure function of (seed, step), so a resumed run sees exactly the
data an uninterrupted one would, and process p of n keeps its rows of every global batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np

from zoo.data.batching import EVAL_SEED, EpochOrder, process_rows

Scale = Literal["tanh", "unit", "binary"]
SCALES = ("tanh", "unit", "binary")


class ImageBatches:
    """Batches of one split of an image dataset, a pure function of (seed, step). A batch:

    - `image` float32 [B_local, H', W', C]: with `scale="tanh"` (default; a tanh generator's range, DCGAN)
      pixels map to [-1, 1] (black = -1); with `"unit"` to [0, 1] (black = 0; a VAE's Bernoulli mean); with
      `"binary"` to {0, 1}, each pixel drawn as Bernoulli(pixel / 255) afresh every step (dynamic
      binarisation: the data a Bernoulli likelihood is a true likelihood of, as in the VAE literature's MNIST
      NLLs; eval batches use one fixed draw). `pad_to=32` pads 28x28 to 32x32 (centred) with the background
      (black: -1 or 0), the size a DCGAN of stride-2 layers wants.
    - `label` int32 [B_local]: the class.
    - `caption_id` int32 [B_local]: an index into `caption_table(captions_per_class)[0]`, a caption of the
      example's class, uniformly at random (eval: cycling through the class's captions).
    - `style` int32 [B_local], only given `styles` [N]: each image's artwork style.

    Examples are drawn epoch by epoch: epoch e visits every image once, in the order of a permutation from
    `default_rng([seed, 1, e])`; per-step randomness (caption choice, binarisation) comes from
    `default_rng([seed, 2, step])`, drawn for the whole global batch, so rows do not depend on how many
    processes share it. Process p of n keeps rows [p*B/n, (p+1)*B/n).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, captions_per_class: Sequence[Sequence[str]],
                 global_batch: int, seed: int, scale: Scale = "tanh", pad_to: int | None = None,
                 styles: np.ndarray | None = None):
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        labels = np.asarray(labels).reshape(-1)
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [N, H, W, C], got {images.dtype} {images.shape}")
        if len(images) != len(labels) or not len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        counts = np.asarray([len(c) for c in captions_per_class], np.int32)
        if labels.min() < 0 or labels.max() >= len(counts):
            raise ValueError(f"labels outside [0, {len(counts)}): captions_per_class has {len(counts)} classes")
        if (counts[np.unique(labels)] == 0).any():
            raise ValueError("every class in the data needs at least one caption")
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        h, w = images.shape[1:3]
        if pad_to is not None and pad_to < max(h, w):
            raise ValueError(f"pad_to={pad_to} is smaller than the {h}x{w} images")
        if global_batch < 1:
            raise ValueError(f"global batch must be positive, got {global_batch}")
        if styles is not None and len(styles) != len(labels):
            raise ValueError(f"{len(styles)} styles for {len(labels)} images")
        self.images, self.labels = images, labels.astype(np.int32)
        self.styles = None if styles is None else np.asarray(styles, np.int32)
        self.caption_counts = counts
        self.caption_offsets = (np.cumsum(counts) - counts).astype(np.int32)
        self.global_batch, self.seed, self.scale, self.pad_to = global_batch, seed, scale, pad_to
        self._order = EpochOrder(len(self.labels), seed, stream=1)
        self._binary: np.ndarray | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of a batch's images (after padding)."""
        h, w, c = self.images.shape[1:]
        size = self.pad_to
        return (size, size, int(c)) if size else (int(h), int(w), int(c))

    def __len__(self) -> int:
        return len(self.labels)

    def _indices(self, step: int) -> np.ndarray:
        return self._order.indices(step, self.global_batch)

    def _eval_binary(self) -> np.ndarray:
        """The split binarised once (uint8 0/255) by `EVAL_SEED`: eval's fixed Bernoulli draw."""
        if self._binary is None:
            noise = np.random.default_rng([EVAL_SEED, 3]).random(self.images.shape, dtype=np.float32)
            self._binary = np.where(noise * 255 < self.images, 255, 0).astype(np.uint8)
        return self._binary

    def _pixels(self, raw: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """uint8 [B, H, W, C] -> float32 in the batch's scale, padded. With scale="binary", `rng` draws the
        binarisation (None: `raw` is binary already)."""
        if self.pad_to:
            h, w = raw.shape[1:3]
            top, left = (self.pad_to - h) // 2, (self.pad_to - w) // 2
            raw = np.pad(raw, ((0, 0), (top, self.pad_to - h - top), (left, self.pad_to - w - left), (0, 0)))
        if self.scale == "tanh":
            return raw.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
        unit = raw.astype(np.float32) / np.float32(255.0)
        if self.scale == "unit" or rng is None:
            return unit
        return (rng.random(unit.shape, dtype=np.float32) < unit).astype(np.float32)

    def batch(self, step: int, process_index: int = 0, process_count: int = 1) -> dict[str, np.ndarray]:
        rows = process_rows(self.global_batch, process_index, process_count)
        idx = self._indices(step)
        labels = self.labels[idx]
        rng = np.random.default_rng([self.seed, 2, step])
        pick = (rng.random(self.global_batch) * self.caption_counts[labels]).astype(np.int32)
        caption_id = self.caption_offsets[labels] + np.minimum(pick, self.caption_counts[labels] - 1)
        if self.scale == "binary":  # drawn for the whole global batch, so a row's draw is the same in any split
            images = self._pixels(self.images[idx], rng)[rows]
        else:
            images = self._pixels(self.images[idx[rows]], None)
        out = {"image": images, "label": labels[rows], "caption_id": caption_id[rows].astype(np.int32)}
        if self.styles is not None:
            out["style"] = self.styles[idx[rows]]
        return out

    def eval_batches(self, max_batches: int, process_index: int = 0,
                     process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
        """The split in a fixed order (a permutation by `EVAL_SEED`, so a few batches already span all the
        classes even when the data is sorted by class), up to `max_batches` global batches, the same for every
        run and seed. Batches keep their shape: rows past the end repeat the first images, with `mask`
        float32 [B_local] 0 on them (1 on real rows); the caller weights its means by `mask`."""
        n = len(self.labels)
        order = np.random.default_rng(EVAL_SEED).permutation(n)
        n_batches = max(1, min(max_batches, -(-n // self.global_batch)))
        rows = process_rows(self.global_batch, process_index, process_count)
        for b in range(n_batches):
            pos = np.arange(b * self.global_batch, (b + 1) * self.global_batch)
            idx = order[pos % n]
            labels = self.labels[idx]
            caption_id = self.caption_offsets[labels] + idx % self.caption_counts[labels]
            if self.scale == "binary":  # one fixed draw per image, whatever the batch size
                images = self._pixels(self._eval_binary()[idx], None)
            else:
                images = self._pixels(self.images[idx], None)
            out = {
                "image": images[rows],
                "label": labels[rows],
                "caption_id": caption_id[rows].astype(np.int32),
                "mask": (pos < n)[rows].astype(np.float32),
            }
            if self.styles is not None:
                out["style"] = self.styles[idx[rows]]
            yield out
