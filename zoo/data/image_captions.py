"""Captions for the image classes: the text a model is conditioned on, and that a prompt is matched against.

Several wordings per class (the kind of thing a user types), and, for the look-alike Fashion-MNIST classes,
wordings that keep them apart; any other class gets generic captions made from its name. `caption_table`
flattens them into one list, embedded once, and says which class each caption belongs to.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from zoo.data.images import DIGIT_WORDS, ImageDataset

# Captions per class name. Several wordings each (the kind of thing a user would type), and, for the
# look-alike Fashion-MNIST classes (T-shirt/top, Shirt, Pullover, Coat), wordings that keep them apart.
FASHION_CAPTIONS: dict[str, tuple[str, ...]] = {
    "T-shirt/top": ("a t-shirt", "a plain t-shirt", "a short-sleeved t-shirt", "a photo of a t-shirt", "a tee",
                    "a sleeveless top", "a tank top"),
    "Trouser": ("a pair of trousers", "trousers", "a pair of pants", "a pair of jeans", "a photo of trousers",
                "long trousers"),
    "Pullover": ("a pullover", "a sweater", "a jumper", "a knitted pullover", "a wool sweater",
                 "a photo of a pullover"),
    "Dress": ("a dress", "a summer dress", "a long dress", "a photo of a dress", "an evening dress",
              "a sleeveless dress"),
    "Coat": ("a coat", "a winter coat", "a jacket", "a long coat", "a photo of a coat", "a warm coat with buttons"),
    "Sandal": ("a sandal", "a pair of sandals", "a summer sandal", "a photo of a sandal", "a flip-flop",
               "an open shoe with straps"),
    "Shirt": ("a shirt", "a button-up shirt", "a long-sleeved shirt", "a collared shirt", "a photo of a shirt",
              "a blouse"),
    "Sneaker": ("a sneaker", "a pair of sneakers", "a running shoe", "a trainer", "a photo of a sneaker",
                "a sports shoe"),
    "Bag": ("a bag", "a handbag", "a purse", "a photo of a bag", "a tote bag", "a leather bag"),
    "Ankle boot": ("an ankle boot", "a pair of ankle boots", "a photo of an ankle boot", "a leather ankle boot",
                   "a boot", "a short boot with a heel"),
}
DIGIT_CAPTIONS: dict[str, tuple[str, ...]] = {
    word: (f"the digit {word}", f"a handwritten {digit}", f"the number {word}", f"a handwritten {word}",
           f"the numeral {digit}", f"the digit {digit}, written by hand")
    for digit, word in enumerate(DIGIT_WORDS)
}
CAPTIONS: dict[str, tuple[str, ...]] = {**FASHION_CAPTIONS, **DIGIT_CAPTIONS}


def captions_for(class_name: str) -> tuple[str, ...]:
    """The captions of a class: from `CAPTIONS`, else generic ones made from its name ("a photo of a cat")."""
    if class_name in CAPTIONS:
        return CAPTIONS[class_name]
    noun = re.sub(r"[_\s]+", " ", class_name).strip().lower()
    article = "an" if noun[:1] in "aeiou" and noun else "a"
    return (f"{article} {noun}", f"a photo of {article} {noun}", f"a picture of {article} {noun}",
            f"an image of {article} {noun}")


def class_captions(dataset: ImageDataset | Sequence[str]) -> list[list[str]]:
    """For each class (of a dataset, or a list of class names), its captions: the dataset's own if it has
    words for its pictures, else `captions_for` each name."""
    if isinstance(dataset, ImageDataset) and dataset.captions is not None:
        return [list(c) for c in dataset.captions]
    names = dataset.class_names if isinstance(dataset, ImageDataset) else dataset
    return [list(captions_for(n)) for n in names]


def caption_table(captions_per_class: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray]:
    """The flat caption list (class by class, in order) and the class of each caption (int32). A batch's
    `caption_id` indexes this list (and so the rows of its embedding table)."""
    captions = [c for per_class in captions_per_class for c in per_class]
    classes = np.repeat(np.arange(len(captions_per_class), dtype=np.int32), [len(c) for c in captions_per_class])
    return captions, classes
