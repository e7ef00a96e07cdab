"""Full-covariance Gaussian mixtures: a VAE's ex-post latent density, fit by EM and sampled in JAX.

Why: a VAE's prior p(z | c) is a single Gaussian, but the latents its encoder gives real images of a class,
the aggregate posterior q(z | c) = E_x q(z | x, c), are not Gaussian. Prior samples then land where no training
image's latent lies and the decoder draws in-between garments there (a shirt-pullover blend). Fitting a
mixture to the encoder's posterior means of the training images after training and sampling from it instead
is "ex-post density estimation" (Ghosh et al. 2020, who fit 10 full-covariance components; Dai & Wipf 2019's
two-stage VAE is the same idea with a second VAE). zoo.objectives.vae fits one mixture per class at export.

Everything is JAX: `fit`'s EM loop is one jitted while_loop (float32, which the covariance floor keeps well
conditioned), and a sampler jits `sample` with the decoder. A mixture is a dict of arrays, any leading axes allowed (one
mixture per class: [C, K], [C, K, D], [C, K, D, D]):
    log_weights [..., K]   log mixing weights (each row logsumexp = 0)
    means       [..., K, D]
    chol        [..., K, D, D]   lower-triangular Cholesky factors of the covariances
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

Mixture = dict  # {"log_weights", "means", "chol"}: arrays as above


def _component_log_probs(x: jax.Array, means: jax.Array, chol: jax.Array) -> jax.Array:
    """log N(x_n; means_k, chol_k chol_k^T) [N, K]."""
    diff = x[None] - means[:, None]  # [K, N, D]
    y = jax.scipy.linalg.solve_triangular(chol, diff.transpose(0, 2, 1), lower=True)  # [K, D, N]
    log_det = 2.0 * jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    return (-0.5 * ((y * y).sum(axis=1) + x.shape[1] * math.log(2.0 * math.pi) + log_det[:, None])).T


@functools.partial(jax.jit, static_argnames=("iterations",))
def _em(x: jax.Array, log_weights: jax.Array, means: jax.Array, chol: jax.Array, floor: jax.Array,
        tol: float, iterations: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """EM from the given mixture until the mean log-likelihood gains < tol, at most `iterations` steps."""
    n = x.shape[0]

    def step(carry: tuple) -> tuple:
        i, _, current, log_weights, means, chol = carry
        joint = log_weights + _component_log_probs(x, means, chol)  # E step
        total = jax.nn.logsumexp(joint, axis=1)
        resp = jnp.exp(joint - total[:, None])
        counts = resp.sum(axis=0) + 1e-10  # M step
        means = (resp.T @ x) / counts[:, None]
        diff = x[None] - means[:, None]
        cov = jnp.einsum("kn,knd,kne->kde", resp.T, diff, diff) / counts[:, None, None] + floor
        return i + 1, current, total.mean(), jnp.log(counts / n), means, jnp.linalg.cholesky(cov)

    def going(carry: tuple) -> jax.Array:
        i, previous, current = carry[:3]
        return (i < iterations) & ((i < 2) | (current - previous >= tol))

    carry = (jnp.int32(0), jnp.float32(-jnp.inf), jnp.float32(-jnp.inf), log_weights, means, chol)
    return jax.lax.while_loop(going, step, carry)[3:]


def fit(x: np.ndarray, k: int, *, seed: int = 0, iterations: int = 100, tol: float = 1e-3,
        reg: float = 1e-4) -> Mixture:
    """EM for a K-component full-covariance mixture on points x [N, D] (N >= K) -> a Mixture of float32 NumPy
    arrays. Starts from k-means++ centres (seeded) with the data's covariance and equal weights; stops when
    the mean log-likelihood per point gains < `tol` (scikit-learn's default criterion) or after
    `iterations`. `reg` times the data's mean variance is added to every covariance's diagonal so none turns
    singular (a component on a few collinear points)."""
    x = np.asarray(x, np.float64)
    n, d = x.shape
    if n < k or k < 1:
        raise ValueError(f"need at least k = {k} >= 1 points, got {n}")
    rng = np.random.default_rng(seed)
    floor = reg * x.var(axis=0).mean() * np.eye(d)
    # k-means++: each next centre drawn with probability proportional to its squared distance to the nearest.
    centres = [x[rng.integers(n)]]
    nearest = ((x - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        centres.append(x[rng.choice(n, p=nearest / nearest.sum())])
        nearest = np.minimum(nearest, ((x - centres[-1]) ** 2).sum(axis=1))
    chol = np.tile(np.linalg.cholesky(np.cov(x, rowvar=False) + floor), (k, 1, 1))
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    log_weights, means, chol = _em(f32(x), f32(np.full(k, -math.log(k))), f32(np.stack(centres)), f32(chol),
                                   f32(floor), tol, iterations)
    out = {"log_weights": np.asarray(log_weights), "means": np.asarray(means), "chol": np.asarray(chol)}
    if not all(np.isfinite(v).all() for v in out.values()):
        raise ValueError("EM diverged (a non-finite weight, mean or Cholesky factor); raise `reg`")
    return out


def log_prob(mixture: Mixture, z: jax.Array) -> jax.Array:
    """log p(z) [N] under one mixture (no leading axes) for points z [N, D]."""
    means, chol = jnp.asarray(mixture["means"]), jnp.asarray(mixture["chol"])
    diff = z[:, None, :] - means[None]  # [N, K, D]
    y = jax.scipy.linalg.solve_triangular(chol[None], diff[..., None], lower=True)[..., 0]
    log_det = 2.0 * jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    per_component = -0.5 * ((y * y).sum(-1) + z.shape[-1] * math.log(2.0 * math.pi) + log_det)
    return jax.nn.logsumexp(jnp.asarray(mixture["log_weights"]) + per_component, axis=-1)


def sample(mixture: Mixture, rows: jax.Array, key: jax.Array, temperature: float = 1.0) -> jax.Array:
    """One point per entry of `rows` [N] (the leading index of a stack of mixtures, e.g. a class) -> [N, D]:
    a component by its weight, then mean + temperature * chol @ eps."""
    log_weights, means, chol = (jnp.asarray(mixture[k]) for k in ("log_weights", "means", "chol"))
    pick, noise = jax.random.split(key)
    component = jax.random.categorical(pick, log_weights[rows], axis=-1)
    eps = jax.random.normal(noise, (rows.shape[0], means.shape[-1]), means.dtype)
    return means[rows, component] + temperature * jnp.einsum("nij,nj->ni", chol[rows, component], eps)
