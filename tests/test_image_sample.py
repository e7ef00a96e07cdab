"""Images from prompts (zoo.sample.images) with the embedded `dcgan` and `vae` models: how a prompt is read,
shapes, seeds, PNG files and bad input. Samplers are built once per module; the CLI runs a few times."""

from __future__ import annotations

import io
import pathlib

import numpy as np
import pytest
from PIL import Image

from tests.helpers import assert_usage_error, run_sample
from zoo import registry
from zoo.sample import images as S


@pytest.fixture(scope="module", params=["dcgan", "vae"])
def sampler(request) -> S.ImageSampler:
    entry = registry.get(request.param)
    return registry.load_sampler(entry)(entry.pretrained_dir)


def test_prompts_are_read_as_the_class_they_name(sampler):
    for prompt, expected in (("ankle boot", "Ankle boot"), ("a pair of jeans", "Trouser"),
                             ("a leather handbag", "Bag"), ("running shoes", "Sneaker")):
        reading = sampler.read_prompt(prompt)
        assert reading.scores[0][0] == expected, (prompt, reading.scores[:3])
        assert sampler.class_names[reading.class_index] == expected
        assert reading.caption in sampler.captions
        scores = [s for _, s in reading.scores]
        assert scores == sorted(scores, reverse=True) and len(scores) == len(sampler.class_names)
    beach = sampler.read_prompt("summer beach")  # no class named: the nearest one, reported
    assert beach.scores[0][0] == "Sandal" and beach.scores[0][1] < 0.9


def test_samples_shapes_values_and_seeds(sampler):
    images = sampler.sample("an ankle boot", 6, seed=1)
    shape = tuple(sampler.info["image_shape"])
    assert len(images) == 6 and all(im.shape == shape and im.dtype == np.uint8 for im in images)
    stack = np.stack(images).astype(np.float32)
    assert stack.std(axis=0).mean() > 2  # six different boots, not one
    assert 20 < stack.mean() < 160  # a garment on a dark background, not a blank or white square
    again = sampler.sample("an ankle boot", 6, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(images, again, strict=True))
    assert not np.array_equal(np.stack(images), np.stack(sampler.sample("an ankle boot", 6, seed=2)))
    trousers = np.stack(sampler.sample("trousers", 6, seed=1)).astype(np.float32)
    assert np.abs(trousers.mean(axis=0) - stack.mean(axis=0)).mean() > 10  # the prompt changes the picture


def test_interpolation_moves_from_one_prompt_to_the_other(sampler):
    frames = sampler.sample(None, 5, seed=0, interpolate=("a sneaker", "a pair of trousers"))
    readings = [sampler.read_prompt(p) for p in ("a sneaker", "a pair of trousers")]
    first, last = (sampler.sample_cond(r.cond[None], 0, same_latent=True, classes=[r.class_index])[0]
                   for r in readings)
    assert np.array_equal(frames[0], first) and np.array_equal(frames[-1], last)
    steps = [np.abs(frames[i + 1].astype(float) - frames[i]).mean() for i in range(4)]
    assert sum(steps) > 10  # the frames change on the way


def test_slerp_and_grid():
    a, b = np.eye(4)[0], np.eye(4)[1]
    path = S.slerp(a, b, np.linspace(0, 1, 5))
    np.testing.assert_allclose(path[0], a, atol=1e-6)
    np.testing.assert_allclose(path[-1], b, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(path[2], (a + b) / np.sqrt(2), atol=1e-6)
    tiles = [np.full((3, 2, 1), 10 * i, np.uint8) for i in range(5)]
    g = S.grid(tiles, pad=1)
    assert g.shape == (2 * 4 + 1, 3 * 3 + 1, 1)  # 5 tiles on 2 rows x 3 columns
    assert g[1, 1, 0] == 0 and g[1, 4, 0] == 10 and g[5, 1, 0] == 30 and g[5, 7, 0] == 255  # last cell empty
    wide = S.grid(tiles, pad=1, cols=5)  # one row, as the emoji gallery lays out its styles
    assert wide.shape == (3 + 2, 5 * 3 + 1, 1) and wide[1, 13, 0] == 40


def test_cli_grid_directory_and_same_seed(tmp_path: pathlib.Path):
    out = tmp_path / "grid.png"
    result = run_sample("--model", "dcgan", "--prompt", "ankle boot", "--num", "16", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "read the prompt 'ankle boot' as" in result.stdout
    grid = Image.open(out)
    assert grid.format == "PNG" and grid.size == (4 * 34 + 2, 4 * 34 + 2)
    for num in ("3", "1"):  # one file per image at the model's own size, also for a single image
        result = run_sample("--model", "vae", "--prompt", "ankle boot", "--num", num, "--out", f"{tmp_path}/b{num}/")
        assert result.returncode == 0, result.stderr
        for i in range(int(num)):
            assert Image.open(tmp_path / f"b{num}" / f"{i:03d}.png").size == (28, 28)
    again = run_sample("--model", "dcgan", "--prompt", "ankle boot", "--num", "16", "--out", str(tmp_path / "b.png"))
    assert again.returncode == 0 and (tmp_path / "b.png").read_bytes() == out.read_bytes()
    result = run_sample("--model", "vae", "--interpolate", "sneaker", "sandal", "--num", "8",
                        "--out", str(tmp_path / "morph.png"))
    assert result.returncode == 0, result.stderr
    assert Image.open(io.BytesIO((tmp_path / "morph.png").read_bytes())).size == (3 * 30 + 2, 3 * 30 + 2)


@pytest.mark.parametrize("args, fragment", [
    (["--model", "dcgan", "--prompt", ""], "prompt is empty"),
    (["--model", "vae", "--prompt", "boot", "--num", "0"], "--num"),
    (["--model", "dcgan", "--prompt", "boot", "--num", "5000"], "--num"),
    (["--model", "vae", "--interpolate", "boot", "", "--num", "4"], "prompt is empty"),
    (["--model", "vae", "--interpolate", "boot", "sandal", "--num", "1"], "--num >= 2"),
    (["--model", "dcgan", "--prompt", "boot", "--bars", "4"], "--bars does not apply"),
    (["--model", "vae"], "give --prompt TEXT"),
    (["--model", "vae", "--prompt", "boot", "--interpolate", "a", "b"], "give --prompt TEXT"),
    (["--model", "vae", "--prompt", "boot", "--checkpoint", "zoo/pretrained/dcgan"], "not a vae model"),
    (["--model", "dcgan", "--prompt", "boot", "--temperature", "nan"], "--temperature"),
])
def test_bad_input(args: list[str], fragment: str, tmp_path: pathlib.Path) -> None:
    assert_usage_error(run_sample(*args, "--out", str(tmp_path / "x.png")), fragment)
    assert not (tmp_path / "x.png").exists()
