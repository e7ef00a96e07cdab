"""Critics of images drawn for a prompt: is it the asked class, and is it new?

- `confidence`: the probability that the embedded classifier `fashion-critic` (zoo.models.classify,
  trained on the one loop apart from every generator) gives the class the sampler read in the prompt,
  higher is better. Only for generators of the data that critic knows (Fashion-MNIST); otherwise not
  scored (a note says so) and the ranking uses novelty alone.
- `novelty`: the root-mean-square pixel distance (pixels in [0, 1]) to the nearest training image, higher
  is better. An image nearer than COPY_DISTANCE COPIES a training image: it is flagged and kept only when
  nothing else is left.
Diversity among the kept images is measured on their pixels (zoo.critics.selection's MMR on `features`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from zoo import export
from zoo.critics import Score
from zoo.errors import UsageError

log = logging.getLogger(__name__)

CRITICS = {"fashion_mnist": "fashion-critic"}  # data spec -> the embedded classifier that judges it
# Under this RMS distance an image is a near-copy: 1,000 Fashion-MNIST test images lie 0.055-0.24 from their
# nearest training image (1st-99th percentiles, median 0.125; the nearest 0.030, a duplicate in the data).
COPY_DISTANCE = 0.04
SCORES = {
    "confidence": Score("confidence", True, "fashion-critic's probability of the class read in the prompt"),
    "novelty": Score("novelty", True, "RMS pixel distance to the nearest training image", weight=0.5),
}


@functools.cache
def _classifier(name: str) -> export.Classifier:
    return export.load_classifier(export.resolve(f"pretrained:{name}"))


@functools.cache
def _training_images(data: str) -> np.ndarray:
    """float32 [N, H*W*C] in [0, 1], the training split of `data`."""
    from zoo.data.images import load_images

    images = load_images(data).train_images
    return images.reshape(len(images), -1).astype(np.float32) / 255


def nearest_distance(images: np.ndarray, training: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """float32 [N]: each uint8 image's RMS pixel distance to its nearest row of `training` (in [0, 1])."""
    x = images.reshape(len(images), -1).astype(np.float32) / 255
    best = np.full(len(x), np.inf, np.float32)
    x_sq = (x * x).sum(1)
    for start in range(0, len(training), chunk):
        t = training[start:start + chunk]
        d = x_sq[:, None] - 2 * x @ t.T + (t * t).sum(1)[None]
        best = np.minimum(best, d.min(1))
    return np.sqrt(np.maximum(best, 0) / x.shape[1])


def centre_crop(images: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """uint8 [N, H, W, C] cut to the central (h, w, ...) of `shape` the way the image batches padded them
    (top = (H - h) // 2, left = (W - w) // 2; a DCGAN pads 28x28 data to 32x32)."""
    h, w = int(shape[0]), int(shape[1])
    big_h, big_w = images.shape[1:3]
    if big_h < h or big_w < w:
        raise UsageError(f"samples are {big_h}x{big_w}, smaller than the {h}x{w} data")
    top, left = (big_h - h) // 2, (big_w - w) // 2
    return images[:, top:top + h, left:left + w]


class ImageCritic:
    """Scores images that `sampler` (zoo.sample.images) drew for a prompt, against its training data."""

    available_scores = tuple(SCORES.values())

    def __init__(self, sampler: Any):
        self.sampler = sampler
        self.data = str(sampler.info.get("data", sampler.config.get("data", "")))
        self.source_shape = sampler.info.get("source_shape") or sampler.info["image_shape"]

    def __call__(self, prompt: str, images: Sequence[np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """({score name: float [N]}, bool [N]: copies a training image)."""
        x = centre_crop(np.stack(images), self.source_shape)
        scores: dict[str, np.ndarray] = {}
        name = CRITICS.get(self.data)
        if name is None:
            log.warning("note: confidence is not scored: no embedded classifier knows %s", self.data)
        else:
            classifier = _classifier(name)
            asked = self.sampler.class_names[self.sampler.read_prompt(prompt).class_index]
            if asked not in classifier.labels:
                raise UsageError(f"{name} does not know the class {asked!r}")
            scores["confidence"] = classifier.probabilities(x)[:, classifier.labels.index(asked)]
        copies = np.zeros(len(x), bool)
        try:
            scores["novelty"] = nearest_distance(x, _training_images(self.data))
            copies = scores["novelty"] < COPY_DISTANCE
        except UsageError as e:
            log.warning("note: novelty is not scored: %s", e)
        return scores, copies

    @staticmethod
    def features(images: Sequence[np.ndarray]) -> np.ndarray:
        """float32 [N, pixels]: the vectors diversity compares."""
        return np.stack(images).reshape(len(images), -1).astype(np.float32) / 255
