"""Pictures of open-ended prompts with the embedded `dcgan-emoji` and `vae-emoji` models: the prompt's own
embedding as the condition (no class snapping), the nearest captions reported, styles, --scale, bad input,
and the judge and evaluation that measure them (benchmarks.emoji_judge, benchmarks.emoji_eval)."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from tests.helpers import assert_usage_error, run_sample
from zoo import registry
from zoo.sample import images as S


@pytest.fixture(scope="module", params=["dcgan-emoji", "vae-emoji"])
def sampler(request) -> S.ImageSampler:
    entry = registry.get(request.param)
    return registry.load_sampler(entry)(entry.pretrained_dir)


def test_a_prompt_conditions_as_its_own_embedding_and_names_its_nearest_captions(sampler):
    reading = sampler.read_prompt("summer beach")
    assert reading.direct and reading.caption == "summer beach"
    np.testing.assert_allclose(reading.cond, sampler.encoder.embed(["summer beach"])[0], atol=1e-6)
    captions = [c for c, _ in reading.scores]
    assert captions[0] == "beach with umbrella" and len(set(captions)) == len(captions) == S.NEAREST_CAPTIONS
    scores = [s for _, s in reading.scores]
    assert scores == sorted(scores, reverse=True) and scores[0] < 0.9  # near a caption, not one of them
    assert "beach with umbrella" in reading.describe() and "as it is" in reading.describe()
    chinese = sampler.read_prompt("夏天的海边")  # the sense nearest to some caption: 海边 as "beach"
    assert chinese.caption == "summer beach" and chinese.scores[0][0] == "beach with umbrella"


def test_samples_follow_seed_style_and_prompt(sampler):
    assert sampler.styles == ["google", "twitter", "openmoji", "fluent-flat", "fluent-modern"]
    images = sampler.sample("a red apple", 5, seed=3)
    assert len(images) == 5 and all(im.shape == (64, 64, 3) and im.dtype == np.uint8 for im in images)
    again = sampler.sample("a red apple", 5, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(images, again, strict=True))
    one_style = np.stack(sampler.sample("a red apple", 5, seed=3, style="twitter")).astype(float)
    # Without --style, image i is in style (seed + i) % 5: image 3 is twitter's, drawn with the same noise.
    np.testing.assert_array_equal(one_style[3], np.asarray(images[3], float))
    other = np.stack(sampler.sample("a snowflake", 5, seed=3, style="twitter")).astype(float)
    assert np.abs(other - one_style).mean() > 3  # the prompt changes the picture, with the noise fixed
    openmoji = np.stack(sampler.sample("a red apple", 5, seed=3, style="openmoji")).astype(float)
    assert np.abs(openmoji - one_style).mean() > 3  # and so does the style


def test_bad_styles_are_refused(sampler):
    from zoo.errors import UsageError

    with pytest.raises(UsageError, match="draws google, twitter"):
        sampler.sample("a cat", 2, 0, style="apple")


def test_cli_scale_style_and_bad_input(tmp_path: pathlib.Path):
    out = tmp_path / "beach.png"
    result = run_sample("--model", "dcgan-emoji", "--prompt", "summer beach", "--num", "4", "--scale", "2",
                        "--style", "google", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "nearest training captions" in result.stdout and "beach with umbrella" in result.stdout
    grid = Image.open(out)
    assert grid.format == "PNG" and grid.mode == "RGB" and grid.size == (2 * 130 + 2, 2 * 130 + 2)
    pixels = np.asarray(grid)
    np.testing.assert_array_equal(pixels[2:130:2, 2:130:2], pixels[3:130:2, 3:130:2])  # 2x2 blocks
    assert_usage_error(run_sample("--model", "dcgan-emoji", "--prompt", "a cat", "--style", "apple",
                                  "--out", str(tmp_path / "x.png")), "--style", "fluent-modern")
    assert_usage_error(run_sample("--model", "dcgan", "--prompt", "a boot", "--style", "google",
                                  "--out", str(tmp_path / "y.png")), "--style applies to models drawn in several")
    assert_usage_error(run_sample("--model", "music", "--prompt", "a jig", "--scale", "2"), "--scale", "image models")
    assert_usage_error(run_sample("--model", "vae-emoji", "--prompt", "a jig", "--scale", "40"), "between 1 and 16")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


def test_the_judge_retrieves_held_out_real_pictures_at_its_recorded_rate():
    from benchmarks.emoji_judge import WEIGHTS, concept_table, held_out_table, load_judge
    from zoo.data.images import load_images

    recorded = json.loads(WEIGHTS.with_suffix(".json").read_text())["held_out"]
    ds = load_images("emoji")
    embed_fn, features_fn = load_judge()
    got = held_out_table(embed_fn, ds, concept_table(ds))
    assert got["pictures"] == recorded["pictures"] == len(ds.test_labels)
    assert abs(got["top5"] - recorded["top5"]) < 0.005 and abs(got["top1"] - recorded["top1"]) < 0.005
    assert got["top5"] > 0.3  # far above chance (5 of 1,940)
    assert features_fn(ds.test_images[:3]).shape == (3, 256)


def test_the_evaluation_scores_seen_concepts_and_phrasings():
    from benchmarks.emoji_eval import evaluate, read_phrasings
    from zoo.data.images import load_images

    entry = registry.get("dcgan-emoji")  # the VAE's figures come from the same code
    sampler = registry.load_sampler(entry)(entry.pretrained_dir)
    phrasings = read_phrasings()
    assert len(phrasings) == 30 and phrasings[0] == ("summer beach", ["beach with umbrella"])
    ds = load_images("emoji")
    keep = np.arange(len(ds.test_labels)) % 8 == 0  # 119 held-out pictures of every style: the test's time
    ds = dataclasses.replace(ds, test_images=ds.test_images[keep], test_labels=ds.test_labels[keep],
                             test_styles=ds.test_styles[keep])
    out = evaluate(sampler, ds, per_picture=1, phrasing_samples=2, diversity_concepts=5, seed=0)
    assert out["seen"]["samples"] == out["real_held_out"]["pictures"]
    assert out["real_held_out"]["top5"] > 0.3 and out["real_held_out"]["median_rank"] <= 5
    assert out["seen"]["median_rank"] < 970  # samples of a concept rank it above chance
    assert out["frechet"]["floor_train_vs_held_out"] < out["frechet"]["samples_vs_held_out"]
    assert out["diversity"]["concepts"] == 5 and out["diversity"]["samples_one_style"] > 0  # the noise matters
    assert [row["phrase"] for row in out["unseen"]["rows"]] == [p for p, _ in phrasings]
