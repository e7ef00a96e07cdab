"""`tfds:NAME` for text (zoo.data.sources) and images (zoo.data.images) on real tensorflow-datasets code, offline
and without TensorFlow (tensorflow-datasets is in the `dev` extra; TensorFlow is not: it would add ~1.4 GB).

Two ways, both through the zoo's own `tfds:NAME` path (tfds_gate, `tfds.data_source`, our split handling):

- `tfds.testing.mock_data`, as the Flax examples test their input pipelines, on the real `tiny_shakespeare`,
  `mnist` and `fashion_mnist` builders (their real features and class names, random examples). The pip wheel
  ships no metadata files, so we write each builder's own `dataset_info.json` (with the split names the real
  dataset has) into a temp $TFDS_DATA_DIR: mock_data's USE_FILES policy reads the split names from it, and the
  zoo's gate sees a prepared dataset there.
- tiny datasets that tfds's own builder machinery prepares as array_record into a temp $TFDS_DATA_DIR
  (`download_and_prepare`, no network, no TensorFlow) and that the zoo then reads unmocked, so that exact
  values can be checked. Their images are `Tensor` features: encoding an `Image` feature (PNG) needs TensorFlow.
"""

from __future__ import annotations

import pathlib
import re
import socket

import numpy as np
import pytest
import tensorflow_datasets as tfds

from zoo.data import images as I
from zoo.data import sources
from zoo.data.image_captions import class_captions
from zoo.errors import UsageError

MOCK_EXAMPLES = 6  # mock_data's examples per split (each split yields the same ones)


@pytest.fixture
def tfds_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> pathlib.Path:
    """An empty $TFDS_DATA_DIR, downloads not allowed, and no network: `tfds:NAME` must read only local files."""

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("tfds:NAME must not touch the network")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ZOO_TFDS_DOWNLOAD", raising=False)
    return tmp_path


def _mock_metadata(data_dir: pathlib.Path, name: str, splits: dict[str, int]) -> None:
    """Write the real builder's dataset_info.json (and features.json) for `name` under data_dir, with these
    splits: what a prepared copy has, minus the records, which mock_data then makes up."""
    builder = tfds.builder(name, data_dir=str(data_dir))
    builder.info.set_splits(tfds.core.SplitDict(
        [tfds.core.SplitInfo(name=split, shard_lengths=[n], num_bytes=0) for split, n in splits.items()]))
    pathlib.Path(builder.data_dir).mkdir(parents=True)
    builder.info.write_to_directory(builder.data_dir)


def _mocked(data_dir: pathlib.Path):
    return tfds.testing.mock_data(num_examples=MOCK_EXAMPLES, data_dir=str(data_dir),
                                  policy=tfds.testing.MockPolicy.USE_FILES)


# ------------------------------------------------------------------------------------ mock_data, real builders


def test_mock_tiny_shakespeare_documents(tfds_dir: pathlib.Path) -> None:
    _mock_metadata(tfds_dir, "tiny_shakespeare", {"train": 1, "validation": 1, "test": 1})
    with _mocked(tfds_dir):
        docs = sources.load_documents("tfds:tiny_shakespeare")
        raw = tfds.data_source("tiny_shakespeare", split="train", data_dir=str(tfds_dir))
        mock_texts = [raw[i]["text"] for i in range(len(raw))]
    assert len(mock_texts) == MOCK_EXAMPLES
    # The mock's texts: 10-19 characters of " abcdefghij". The three splits yield the same examples, so the
    # zoo's dedup leaves one copy of each, in order, minus those under MIN_CHARS once trailing spaces go.
    assert docs == sources.finish(mock_texts, sources.MIN_CHARS["tfds"])
    assert 1 <= len(docs) <= MOCK_EXAMPLES
    for doc in docs:
        assert isinstance(doc, str) and re.fullmatch(r"[ a-j]*[a-j]", doc), doc
        assert sources.MIN_CHARS["tfds"] <= len(doc) <= 19


@pytest.mark.parametrize(("name", "class_names"), [
    ("mnist", I.DIGIT_WORDS),  # tfds:mnist names its classes "0".."9": the zoo captions them as words
    ("fashion_mnist", I.FASHION_MNIST_CLASSES),
])
def test_mock_image_dataset(tfds_dir: pathlib.Path, name: str, class_names: tuple[str, ...]) -> None:
    _mock_metadata(tfds_dir, name, {"train": 60_000, "test": 10_000})
    with _mocked(tfds_dir):
        ds = I.load_images(f"tfds:{name}")
    assert ds.name == f"tfds:{name}"
    assert ds.train_images.shape == ds.test_images.shape == (MOCK_EXAMPLES, 28, 28, 1)
    assert ds.train_images.dtype == ds.test_images.dtype == np.uint8
    assert ds.train_labels.dtype == ds.test_labels.dtype == np.int32
    assert ds.train_labels.shape == ds.test_labels.shape == (MOCK_EXAMPLES,)
    assert ds.train_labels.min() >= 0 and ds.train_labels.max() < 10
    assert ds.train_images.std() > 0  # random pixels, not a blank placeholder
    assert ds.image_shape == (28, 28, 1) and ds.num_classes == 10
    assert ds.class_names == class_names
    captions = class_captions(ds)
    assert len(captions) == 10
    assert any(class_names[1].lower() in c.lower() for c in captions[1]), captions[1]


def test_mock_without_metadata_is_one_line(tfds_dir: pathlib.Path) -> None:
    """Installed tensorflow-datasets but nothing prepared in $TFDS_DATA_DIR: the install/prepare line, at once."""
    with _mocked(tfds_dir), pytest.raises(UsageError, match=r"tfds:mnist needs tensorflow-datasets") as err:
        I.load_images("tfds:mnist")
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------- datasets prepared by tfds, read unmocked

SHAPES = ("circle", "square", "triangle")


def _prepare(data_dir: pathlib.Path, name: str, features: dict, splits: dict[str, list[dict]]) -> None:
    """Prepare dataset `name` from these examples with tfds's own GeneratorBasedBuilder, as array_record under
    data_dir, offline. Not registered with tfds: the zoo finds it from its files, as it would a user's copy."""

    class Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self) -> tfds.core.DatasetInfo:
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

        def _split_generators(self, dl_manager: object) -> dict:
            return {split: self._generate_examples(examples) for split, examples in splits.items()}

        def _generate_examples(self, examples: list[dict]):
            yield from enumerate(examples)

    Builder.name = name
    Builder(data_dir=str(data_dir), file_format="array_record").download_and_prepare()


def _shape_features() -> dict:
    return {"image": tfds.features.Tensor(shape=(6, 5, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=SHAPES)}


def _shape(i: int) -> dict:
    """Example i: an image filled with 10*i, labelled i % 3 (so the label can be checked from the pixels)."""
    return {"image": np.full((6, 5, 1), 10 * i, np.uint8), "label": i % 3}


def _check_pairs(images: np.ndarray, labels: np.ndarray) -> list[int]:
    """The example numbers of these images, after checking each kept its own label."""
    ids = [int(v) // 10 for v in images[:, 0, 0, 0]]
    assert all((img == 10 * i).all() for img, i in zip(images, ids, strict=True))
    assert labels.tolist() == [i % 3 for i in ids]
    return ids


def test_prepared_images_with_validation_split(tfds_dir: pathlib.Path) -> None:
    _prepare(tfds_dir, "zoo_shapes", _shape_features(),
             {"train": [_shape(i) for i in range(9)], "validation": [_shape(i) for i in range(9, 12)]})
    ds = I.load_images("tfds:zoo_shapes")
    assert ds.train_images.shape == (9, 6, 5, 1) and ds.test_images.shape == (3, 6, 5, 1)
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
    assert sorted(_check_pairs(ds.train_images, ds.train_labels)) == list(range(9))
    assert sorted(_check_pairs(ds.test_images, ds.test_labels)) == [9, 10, 11]  # no test split: validation
    assert ds.class_names == SHAPES and ds.image_shape == (6, 5, 1)
    assert [any(s in c for c in caps) for s, caps in zip(SHAPES, class_captions(ds), strict=True)] == [True] * 3
    again = I.load_images("tfds:zoo_shapes")
    assert np.array_equal(again.train_images, ds.train_images) and np.array_equal(again.test_labels, ds.test_labels)


def test_prepared_images_train_only_is_hash_split(tfds_dir: pathlib.Path) -> None:
    _prepare(tfds_dir, "zoo_shapes_train", _shape_features(), {"train": [_shape(i) for i in range(25)]})
    ds = I.load_images("tfds:zoo_shapes_train")
    train, test = _check_pairs(ds.train_images, ds.train_labels), _check_pairs(ds.test_images, ds.test_labels)
    assert sorted(train + test) == list(range(25)) and len(test) >= 1 and len(train) > len(test)
    images = np.stack([_shape(i)["image"] for i in range(25)])
    mask = I.split_by_hash(images, np.arange(25) % 3, I.MNIST_TEST_FRACTION)
    assert sorted(test) == np.flatnonzero(mask).tolist()  # the same hash split as the `mnist` source


def test_prepared_text_all_splits(tfds_dir: pathlib.Path) -> None:
    poems = ["Shall I compare thee to a summer's day?", "Rage, rage against the dying of the light.",
             "I wandered lonely as a cloud  \nThat floats on high o'er vales and hills,"]
    stanzas = [f"Stanza {i}: " + "to be or not to be, " * 10 for i in range(120)]
    play = "\n\n\n".join(stanzas)  # one example per split, as tiny_shakespeare has: split at the blank lines
    assert len(play) > sources.TFDS_SPLIT_CHARS
    _prepare(tfds_dir, "zoo_verse", {"text": tfds.features.Text(), "n": tfds.features.Scalar(np.int32)},
             {"train": [{"text": p, "n": i} for i, p in enumerate(poems)], "test": [{"text": play, "n": 9}],
              "validation": [{"text": poems[0], "n": 0}, {"text": "too short", "n": 1}]})
    docs = sources.load_documents("tfds:zoo_verse")
    assert all(isinstance(d, str) for d in docs)
    # Splits in name order (test, train, validation); the duplicate and the fragment are dropped.
    assert docs[:120] == [s.rstrip() for s in stanzas]
    assert sorted(docs[120:]) == sorted(sources.normalise_document(p) for p in poems)
    assert docs == sources.load_documents("tfds:zoo_verse")


def test_prepared_without_text_feature(tfds_dir: pathlib.Path) -> None:
    _prepare(tfds_dir, "zoo_shapes_text", _shape_features(), {"train": [_shape(0)]})
    with pytest.raises(UsageError, match=r"^tfds:zoo_shapes_text has no text feature"):
        sources.load_documents("tfds:zoo_shapes_text")
