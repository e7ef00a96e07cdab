"""zoo.models.vae_mixture: EM recovers a known mixture, densities match SciPy's, samples follow the
weights and covariances (the VAE's ex-post latent density)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from zoo.models import vae_mixture as gm

WEIGHTS = np.array([0.2, 0.3, 0.5])
MEANS = np.array([[-6.0, 0.0, 1.0], [0.0, 6.0, -1.0], [6.0, 0.0, 0.0]])
COVS = np.stack([np.diag([1.0, 0.5, 2.0]), np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 0.3]]),
                 np.array([[2.0, -0.5, 0.3], [-0.5, 1.0, 0.0], [0.3, 0.0, 0.5]])])


def _draw(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    component = rng.choice(3, n, p=WEIGHTS)
    eps = rng.standard_normal((n, 3))
    return MEANS[component] + np.einsum("nij,nj->ni", np.linalg.cholesky(COVS)[component], eps)


@pytest.fixture(scope="module")
def fitted() -> dict:
    return gm.fit(_draw(6000, 0), 3, seed=0)


def test_em_recovers_a_known_mixture(fitted):
    order = np.argsort(fitted["means"][:, 0] + 0.1 * fitted["means"][:, 1])  # -6, 0, +6 on the first axis
    np.testing.assert_allclose(np.exp(fitted["log_weights"][order]), WEIGHTS, atol=0.02)
    np.testing.assert_allclose(fitted["means"][order], MEANS, atol=0.1)
    chol = fitted["chol"][order]
    np.testing.assert_allclose(chol @ chol.transpose(0, 2, 1), COVS, atol=0.15)
    assert np.allclose(np.triu(chol, 1), 0.0)  # lower-triangular factors
    again = gm.fit(_draw(6000, 0), 3, seed=0)
    assert all(np.array_equal(fitted[k], again[k]) for k in fitted)  # seeded: the same fit
    with pytest.raises(ValueError, match="at least"):
        gm.fit(np.zeros((2, 3)), 3)


def test_log_prob_matches_scipy(fitted):
    x = _draw(50, 1)
    chol = fitted["chol"].astype(np.float64)
    expected = np.log(sum(np.exp(w) * multivariate_normal(m, c @ c.T).pdf(x)
                          for w, m, c in zip(fitted["log_weights"], fitted["means"], chol, strict=True)))
    np.testing.assert_allclose(gm.log_prob(fitted, jnp.asarray(x, jnp.float32)), expected, rtol=1e-4)
    # Fit on data drawn from the truth, the fit scores held-out draws about as well as the truth does.
    truth = np.log(sum(w * multivariate_normal(m, c).pdf(_draw(2000, 2))
                       for w, m, c in zip(WEIGHTS, MEANS, COVS, strict=True))).mean()
    assert abs(float(gm.log_prob(fitted, jnp.asarray(_draw(2000, 2), jnp.float32)).mean()) - truth) < 0.05


def _nearest(x: np.ndarray) -> np.ndarray:
    return np.argmin(((x[:, None] - MEANS[None]) ** 2).sum(-1), axis=1)


def test_sample_follows_weights_covariances_and_temperature(fitted):
    """Samples against as many draws from the true mixture, both split by the nearest true mean."""
    stack = {k: np.stack([v, v[::-1]]) for k, v in fitted.items()}  # two "classes": the same mixture, reordered
    rows = jnp.asarray(np.repeat([0, 1], 20000))
    z = np.asarray(jax.jit(gm.sample, static_argnums=3)(stack, rows, jax.random.key(0), 1.0))
    assert z.shape == (40000, 3)
    truth = _draw(20000, 3)
    shares = np.bincount(_nearest(truth), minlength=3) / len(truth)
    for part in (z[:20000], z[20000:]):  # either order gives the same distribution
        np.testing.assert_allclose(np.bincount(_nearest(part), minlength=3) / len(part), shares, atol=0.015)
        np.testing.assert_allclose(np.cov(part[_nearest(part) == 1], rowvar=False),
                                   np.cov(truth[_nearest(truth) == 1], rowvar=False), atol=0.1)
    cool = np.asarray(gm.sample(stack, rows[:20000], jax.random.key(0), 0.5))
    near = cool[_nearest(cool) == 1]  # well inside its region at half the spread: the covariance shrinks 4x
    np.testing.assert_allclose(np.cov(near, rowvar=False), 0.25 * COVS[1], atol=0.05)
