"""The emoji corpus (zoo.data.emoji) from the real npm packages, DiffAugment, and training both image
families on it with a style condition: the data the `dcgan-emoji` and `vae-emoji` models learn from."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers import ROOT, env, metrics
from zoo.data import emoji
from zoo.data.image_batches import ImageBatches
from zoo.data.image_captions import class_captions
from zoo.data.images import load_images
from zoo.errors import UsageError
from zoo.objectives.augment import augment, check
from zoo.objectives.common import WithCaptionEmbeddings


@pytest.fixture(scope="module")
def corpus() -> emoji.EmojiCorpus:
    return emoji.load()


def test_the_corpus_counts_styles_concepts_and_words(corpus):
    counts = corpus.counts()
    assert counts["concepts"] > 1900 and len(corpus.concepts) == counts["concepts"]
    assert set(corpus.styles) == {"google", "twitter", "openmoji", "fluent-flat", "fluent-modern"}
    assert all(counts[s] > 1500 for s in corpus.styles)  # Fluent's people and hands come by their default tone
    assert sum(counts[s] for s in corpus.styles) == len(corpus.images)
    assert corpus.images.shape[1:] == (64, 64, 3) and corpus.images.dtype == np.uint8
    labels = {c.label: c for c in corpus.concepts}
    beach = labels["beach with umbrella"]
    assert beach.hexcode == "1F3D6" and beach.captions[0] == "beach with umbrella"
    cookie = labels["cookie"]
    assert cookie.captions[1].startswith("cookie: ") and "chocolate" in cookie.captions[1]
    assert not any("skin tone" in c.label for c in corpus.concepts)  # skin-tone variants are not concepts
    assert not any(c.group == "component" for c in corpus.concepts)


def test_pictures_are_the_concepts_on_white(corpus):
    labels = [c.label for c in corpus.concepts]
    corners = corpus.images[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == 255).all(axis=-1).mean() > 0.9  # composited on white: most corners are background
    apple = corpus.images[(corpus.concept == labels.index("red apple")) & (corpus.style == 0)][0].astype(int)
    leaf = corpus.images[(corpus.concept == labels.index("leaf fluttering in wind")) & (corpus.style == 0)][0]
    inked = apple.sum(-1) < 600
    assert (apple[..., 0] - apple[..., 1])[inked].mean() > 60  # a red apple is red
    assert (leaf.astype(int)[..., 1] - leaf.astype(int)[..., 0])[leaf.astype(int).sum(-1) < 600].mean() > 20
    twins = corpus.images[corpus.concept == labels.index("red apple")]
    assert len(twins) == 5 and np.abs(twins[0].astype(int) - twins[2]).mean() > 5  # five styles, not one


def test_held_out_pictures_are_fixed_by_name_and_leave_the_concept_seen(corpus):
    test = corpus.test
    assert 800 < test.sum() < 1100
    per_concept = np.bincount(corpus.concept[test], minlength=len(corpus.concepts))
    assert per_concept.max() == 1  # at most one held-out picture per concept
    for c in np.flatnonzero(per_concept):
        assert (corpus.concept[~test] == c).sum() >= emoji.MIN_STYLES_FOR_TEST - 1  # seen in other styles
    assert len(set(corpus.style[test].tolist())) == 5
    order = np.random.default_rng(0).permutation(len(test))  # the files read in another order: the same pictures
    np.testing.assert_array_equal(emoji._test_mask(corpus.concept[order], corpus.style[order], corpus.concepts),
                                  test[order])


def test_the_image_dataset_gives_captions_and_styles_to_batches():
    ds = load_images("emoji:google,twitter")
    assert ds.style_names == ("google", "twitter") and ds.image_shape == (64, 64, 3)
    captions = class_captions(ds)
    assert len(captions) == ds.num_classes and captions[ds.class_names.index("cookie")][0] == "cookie"
    batches = ImageBatches(ds.train_images, ds.train_labels, captions, 16, 0, styles=ds.train_styles)
    batch = batches.batch(3)
    assert set(batch["style"].tolist()) <= {0, 1} and batch["style"].shape == (16,)
    table = np.random.default_rng(0).normal(size=(sum(map(len, captions)), 384)).astype(np.float16)
    cond = WithCaptionEmbeddings(batches, table, num_styles=2).batch(3, 0, 1)["cond"]
    assert cond.shape == (16, 386)
    np.testing.assert_array_equal(cond[:, 384:], np.eye(2)[batch["style"]])
    np.testing.assert_allclose(cond[:, :384], table[batch["caption_id"]].astype(np.float32))


def test_bad_specs_and_missing_packages_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(UsageError, match="unknown emoji style apple"):
        emoji.parse_styles("emoji:google,apple")
    assert emoji.parse_styles("emoji") == tuple(emoji.STYLES)
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    with pytest.raises(UsageError, match="npm pack emojibase-data"):
        load_images("emoji")


def test_augmentation_is_differentiable_random_per_image_and_checked():
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (8, 64, 64, 3)), jnp.float32)
    key = jax.random.PRNGKey(0)
    moved = augment(x, key, ("translation",))
    assert moved.shape == x.shape
    shifted_by = [min(np.abs(np.asarray(moved[i]) - np.roll(np.asarray(x[i]), (dy, dx), (0, 1)))[8:-8, 8:-8].max()
                      for dy in range(-8, 9) for dx in range(-8, 9)) for i in range(8)]
    assert max(shifted_by) == 0.0  # each image is its own shift of the original
    cut = np.asarray(augment(x, key, ("cutout",)))
    zero_share = (cut == 0).all(-1).mean(axis=(1, 2))
    assert ((zero_share > 0.05) & (zero_share <= 0.25)).all()
    colour = np.asarray(augment(x, key, ("color",)))
    assert np.abs(colour - np.asarray(x)).mean() > 0.05
    np.testing.assert_array_equal(colour, np.asarray(augment(x, key, ("color",))))  # the key fixes the draw
    grad = jax.grad(lambda v: augment(v, key, ("color", "translation", "cutout")).sum())(x)
    assert float(jnp.abs(grad).sum()) > 0
    with pytest.raises(ValueError, match="unknown augmentation"):
        check(("flip",))


TINY_GAN = ["--config.model.g_features=8", "--config.model.d_features=8", "--config.model.z_dim=16",
            "--config.model.cond_features=16", "--config.batch_size=16", "--config.eval_batches=2",
            "--config.log_every=5", "--config.eval_every=10", "--config.checkpoint_every=10"]
TINY_VAE = ["--config.model.channels=(8, 16, 16, 16)", "--config.model.hidden_dim=64", "--config.model.latent_dim=8",
            "--config.model.cond_features=16", "--config.batch_size=16", "--config.eval_batches=2",
            "--config.log_every=5", "--config.eval_every=40", "--config.checkpoint_every=40",
            "--config.learning_rate=3e-3", "--config.kl_warmup_steps=0"]


def _train(workdir: pathlib.Path, config: str, *overrides: str) -> None:
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / config), "--workdir", str(workdir),
           "--config.data=emoji:google", *overrides]
    result = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]


def test_dcgan_trains_on_emoji_with_style_conditions_and_exports_a_free_reading(tmp_path):
    _train(tmp_path, "configs/dcgan_emoji.py", *TINY_GAN, "--config.train_steps=10")
    info = json.loads((tmp_path / "export" / "images.json").read_text())
    assert info["prompt_reading"] == "embedding" and info["styles"] == ["google"]
    assert info["model_dims"]["cond_dim"] == 385 and info["image_shape"] == [64, 64, 3]
    last = metrics(tmp_path)[-1]
    assert np.isfinite(last["eval/d_loss"]) and 0.0 <= last["eval/d_cond_accuracy"] <= 1.0


def test_vae_on_emoji_learns_colour_pictures(tmp_path):
    _train(tmp_path, "configs/vae_emoji.py", *TINY_VAE, "--config.train_steps=40")
    records = [r for r in metrics(tmp_path) if "train/neg_elbo" in r]
    assert records[-1]["train/neg_elbo"] < 0.95 * records[0]["train/neg_elbo"]  # nats per 64x64x3 picture fall
    info = json.loads((tmp_path / "export" / "images.json").read_text())
    assert info["likelihood"] == "logistic" and "latent_mixture" not in info and info["styles"] == ["google"]

