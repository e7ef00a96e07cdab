"""sample.py --model vae --init PICTURE and --interpolate A.jpg B.jpg on real Fashion-MNIST test pictures
given as a person would give them (large, RGB, dark on light, JPEG), judged by the benchmarks' classifier."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from PIL import Image

from benchmarks.image_classifier import load_classifier
from benchmarks.vae_init import write_input
from tests.helpers import assert_usage_error, run_sample
from zoo.data.images import load_images


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, pathlib.Path]:
    """A test trouser and a test bag (classes never confused), photo-like."""
    ds = load_images("fashion_mnist")
    folder = tmp_path_factory.mktemp("pictures")
    out = {}
    for name, label in (("trouser", 1), ("bag", 8)):
        index = int(np.flatnonzero(ds.test_labels == label)[0])
        out[name] = write_input(ds.test_images[index], "photo-like", folder / name)
    return out


def _judge(path: pathlib.Path, count: int) -> list[int]:
    """The judge's classes of the `count` 28x28 cells of a grid PNG (or of the one image)."""
    grid = np.asarray(Image.open(path).convert("L"))
    cells = [grid] if count == 1 else [grid[2 + r * 30:2 + r * 30 + 28, 2 + c * 30:2 + c * 30 + 28]
                                      for r in range(3) for c in range(3)][:count]
    logits, _ = load_classifier("fashion_mnist")
    return np.argmax(np.asarray(logits(np.stack(cells)[..., None])), axis=1).tolist()


def test_variations_of_a_photo_keep_its_class(pictures, tmp_path: pathlib.Path) -> None:
    result = run_sample("--model", "vae", "--init", str(pictures["trouser"]), "--num", "6", "--out",
                        str(tmp_path / "six.png"))
    assert result.returncode == 0, result.stderr
    assert "(320x260 RGB); converted to grey; inverted (a light background); cropped" in result.stdout
    assert "as Trouser (evidence bound" in result.stdout
    assert Image.open(tmp_path / "six.png").size == (92, 62)  # 3 x 2 cells of 28 with 2-pixel borders
    assert _judge(tmp_path / "six.png", 6).count(1) >= 5
    grid = np.asarray(Image.open(tmp_path / "six.png"))
    assert len({grid[2:30, 2 + 30 * i:30 + 30 * i].tobytes() for i in range(3)}) == 3  # variations differ
    # Temperature 0 is the reconstruction: the same image whatever the seed.
    for seed in ("1", "2"):
        assert run_sample("--model", "vae", "--init", str(pictures["trouser"]), "--temperature", "0", "--seed", seed,
                          "--out", str(tmp_path / f"r{seed}.png")).returncode == 0
    assert (tmp_path / "r1.png").read_bytes() == (tmp_path / "r2.png").read_bytes()
    assert _judge(tmp_path / "r1.png", 1) == [1]


def test_interpolating_two_photos_goes_from_one_class_to_the_other(pictures, tmp_path: pathlib.Path) -> None:
    result = run_sample("--model", "vae", "--interpolate", str(pictures["trouser"]), str(pictures["bag"]), "--num",
                        "5", "--out", f"{tmp_path}/morph/")
    assert result.returncode == 0, result.stderr
    first, last = (_judge(tmp_path / "morph" / f"{i:03d}.png", 1)[0] for i in (0, 4))
    assert (first, last) == (1, 8)


def test_bad_pictures_exit_2_and_write_nothing(tmp_path: pathlib.Path) -> None:
    (tmp_path / "words.png").write_text("not a picture\n")
    Image.new("RGB", (64, 64), (255, 255, 255)).save(tmp_path / "blank.png")
    for name, fragment in (("words.png", "cannot read"), ("blank.png", "is blank"), ("none.png", "no such file")):
        out = tmp_path / f"{name}.out.png"
        assert_usage_error(run_sample("--model", "vae", "--init", str(tmp_path / name), "--out", str(out)), fragment)
        assert not out.exists()
    assert_usage_error(run_sample("--model", "dcgan", "--init", str(tmp_path / "blank.png")),
                       "--init does not apply to --model dcgan")
