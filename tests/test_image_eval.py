"""The image-evaluation metrics (benchmarks.image_eval) on hand-checkable cases, and the saved classifiers
(benchmarks.image_classifier) load with the right shapes. No training here."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.image_classifier import classifier_name, load_classifier, shifted, weights_path
from benchmarks.image_eval import feature_stats, features_frechet, frechet_distance, mean_pairwise_distance
from zoo.critics.images import centre_crop


def test_frechet_identical_gaussians_is_zero():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8)) @ rng.normal(size=(8, 8))
    assert features_frechet(x, x) == pytest.approx(0.0, abs=1e-8)
    mu, sigma = feature_stats(x)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_frechet_shifted_mean_is_squared_distance():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1000, 5))
    d = np.array([3.0, -1.0, 0.5, 0.0, 2.0])
    # Same covariance (a shifted copy): the distance is exactly |d|^2.
    assert features_frechet(x + d, x) == pytest.approx(float(d @ d), rel=1e-9)
    assert frechet_distance(d, np.eye(5), np.zeros(5), np.eye(5)) == pytest.approx(float(d @ d))


def test_frechet_known_covariances():
    # Diagonal: sum (sqrt(a_i) - sqrt(b_i))^2.
    a, b = np.array([4.0, 1.0, 9.0]), np.array([1.0, 1.0, 4.0])
    expected = float(((np.sqrt(a) - np.sqrt(b)) ** 2).sum())  # 1 + 0 + 1
    assert frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b)) == pytest.approx(expected)
    assert expected == pytest.approx(2.0)
    # Scalar multiples: tr(S) (1 + c - 2 sqrt(c)).
    rng = np.random.default_rng(2)
    m = rng.normal(size=(6, 6))
    s = m @ m.T + 0.1 * np.eye(6)
    assert frechet_distance(np.zeros(6), s, np.zeros(6), 4.0 * s) == pytest.approx(np.trace(s) * (1 + 4 - 4))
    # One singular covariance (rank-deficient, as few samples in many dimensions give): still finite, >= 0.
    low = np.outer(m[0], m[0])
    assert np.isfinite(frechet_distance(np.zeros(6), low, np.zeros(6), s))


def test_frechet_matches_scipy_sqrtm():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(3)
    m1, m2 = rng.normal(size=(10, 10)), rng.normal(size=(10, 10))
    s1, s2 = m1 @ m1.T, m2 @ m2.T + np.eye(10)
    mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
    cross = np.real(scipy_linalg.sqrtm(s1 @ s2))
    expected = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * cross))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-7)


def test_mean_pairwise_distance_by_hand():
    # A 3-4-5 triangle: pairs (0,1) 3, (0,2) 4, (1,2) 5 -> mean 4.
    x = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    assert mean_pairwise_distance(x) == pytest.approx(4.0)
    # Identical rows (total collapse) -> 0; images are flattened.
    assert mean_pairwise_distance(np.ones((5, 2, 2, 1))) == pytest.approx(0.0, abs=1e-12)
    # Black vs white 28x28 images in [0, 1]: distance 28.
    assert mean_pairwise_distance(np.stack([np.zeros((28, 28, 1)), np.ones((28, 28, 1))])) == pytest.approx(28.0)
    assert np.isnan(mean_pairwise_distance(np.zeros((1, 3))))


def test_crop_undoes_centred_padding():
    images = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28, 1).astype(np.uint8)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    np.testing.assert_array_equal(centre_crop(padded, (28, 28, 1)), images)
    np.testing.assert_array_equal(centre_crop(images, (28, 28, 1)), images)


def test_shift_augmentation_keeps_shape_and_content():
    rng = np.random.default_rng(0)
    images = np.zeros((4, 28, 28, 1), np.uint8)
    images[:, 10:18, 10:18] = 255
    out = shifted(images, rng)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert (out.astype(int).sum(axis=(1, 2, 3)) == 64 * 255).all()  # the square moved, nothing was cut off


@pytest.mark.parametrize("data,classes", [("fashion_mnist", 10), ("mnist", 10)])
def test_classifier_loads_with_shapes(data, classes):
    if not weights_path(data).is_file():
        pytest.skip(f"no classifier weights at {weights_path(data)} (python -m benchmarks.image_classifier "
                    f"--data {data})")
    assert classifier_name(data) == data
    logits_fn, features_fn = load_classifier(data)
    images = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28, 1), dtype=np.uint8)
    logits, features = logits_fn(images), features_fn(images)
    assert logits.shape == (3, classes) and logits.dtype == np.float32
    assert features.shape == (3, 128) and features.dtype == np.float32
    assert np.isfinite(logits).all() and (features >= 0).all()  # features are post-ReLU
    np.testing.assert_allclose(logits_fn(images[:1]), logits[:1], rtol=1e-5, atol=1e-5)  # per-row, any N


class _RealImages:
    """A stand-in "generator" that returns real TRAINING images of the class its condition names (one-hot),
    zero-padded 28 -> 32 like the DCGAN's: the end-to-end evaluation must find it a near-perfect model."""

    def __init__(self, ds):
        self.ds = ds
        self.class_names = list(ds.class_names)
        self.info = {"data": "fashion_mnist", "image_shape": [32, 32, 1], "source_shape": [28, 28, 1]}

    def class_condition(self, class_index):
        cond = np.zeros(384, np.float32)
        cond[class_index] = 1.0
        return cond

    def sample_cond(self, cond, seed, temperature=1.0, classes=None):
        c = int(np.asarray(cond)[0].argmax())
        assert classes is not None and np.all(np.asarray(classes) == c)  # each row's class goes with its condition
        members = np.flatnonzero(self.ds.train_labels == c)
        chosen = np.random.default_rng(seed).choice(members, len(cond), replace=False)
        return list(np.pad(self.ds.train_images[chosen], ((0, 0), (2, 2), (2, 2), (0, 0))))


def test_evaluate_end_to_end_on_real_images():
    from benchmarks.image_eval import evaluate, report
    from zoo.data.images import load_images
    from zoo.errors import UsageError

    if not weights_path("fashion_mnist").is_file():
        pytest.skip("no fashion_mnist classifier weights")
    try:
        ds = load_images("fashion_mnist")
    except UsageError as e:
        pytest.skip(str(e))
    out = evaluate(_RealImages(ds), "real-train-images", samples=1000, per_class=100, diversity=50, iwae_k=1,
                   iwae_images=0, seed=0, temperature=1.0)
    assert out["family"] == "dcgan" and "nll" not in out and len(out["per_class"]) == 10
    for row in out["per_class"]:  # real training images: at least as recognisable as the test images
        assert row["ratio"] >= 0.9, row
        assert 0.6 < row["diversity_ratio"] < 1.6, row
    assert out["conditional_accuracy"]["pass"]
    f = out["frechet"]
    assert f["samples"] == f["floor_train_images"] == 1000
    assert f["model_vs_test"] < 2 * f["train_vs_test_floor"] + 0.5, f  # real images score like the floor
    text = report(out)
    assert "PASS" in text and "Frechet" in text
