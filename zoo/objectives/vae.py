"""The negative ELBO of a caption-conditioned VAE: the objective of the `vae` model (zoo.models.vae).

Data: an image dataset of zoo.data.images (Fashion-MNIST by default, `mnist`, `tfds:NAME`) in the pixels
the model's likelihood (`model.likelihood`) is a true likelihood of, so negative log-likelihoods are nats
per image: "bernoulli" sees dynamically binarised pixels (scale="binary": every training step draws each
pixel as Bernoulli(grey / 255) afresh; the test set uses one fixed draw), comparable with the VAE
literature's MNIST figures; "logistic" (discretised over 256 levels) sees the 8-bit images (scale="unit").
Conditioning: every example is conditioned on the text-encoder embedding of a random caption of its class
(zoo.data.image_captions.class_captions); the caption table is embedded once (zoo.text.captions, cached on disk)
and batches carry the rows their captions pick (`cond`, float32 [B, 384]).

Training minimises recon + beta * KL per image (nats), where recon = -log p(x | z, c) summed over pixels
with one reparameterised z ~ q(z | x, c), KL = KL(q(z | x, c) || p(z | c)) in closed form (p = N(0, I) unless
`model.conditional_prior`; for a mixture prior, `model.prior_components` > 1, the one-sample estimate
log q(z | x, c) - log p(z | c) at that z: no closed form exists), and beta rises
linearly from 0 to `config.kl_weight` (1: the ELBO; below 1 a beta-VAE that keeps more in the latent) over
`config.kl_warmup_steps` (KL warm-up / annealing, Bowman et al. 2016; 0 = off). Evaluation always
reports the true bounds (beta = 1).
The step counter that drives beta lives in this task's state (`state["step"]`), so it is exact inside the
jitted step and restored with checkpoints. Train metrics: loss (the minimised objective), neg_elbo
(recon + KL: equal to loss once beta reaches 1, i.e. with kl_weight = 1), recon, kl, beta, grad_norm.

Export (`save_assets`): with `config.latent_mixture_components` = K > 0, one K-component full-covariance
Gaussian mixture per class is fit by EM to the posterior means of every training image of the class
(`fit_latent_mixtures`, zoo.models.vae_mixture) and saved beside the params (latent_mixture.npz);
samplers draw a class's latents from it instead of from p(z | c) (ex-post density estimation: the
prior's holes between the encoder's clusters decode as blends of two garments). `config.sample_temperature`
is stored as the samplers' default spread of the latent noise.

Evaluation (mask-weighted means over the test batches, with a fixed key so it is the same every time):
loss = the negative ELBO (KL analytic, or for a mixture prior sampled; recon averaged over the K samples
below), recon, kl, and iwae_nll,
the importance-weighted bound of Burda et al. (2016) with K = `config.iwae_samples` samples from q:
    -log p(x | c) <= -log (1/K) sum_k p(x | z_k, c) p(z_k) / q(z_k | x, c) =: iwae_nll <= neg ELBO,
tighter as K grows (K = 1 is the ELBO in expectation). Keep K modest in training runs; `iwae_nll()`
evaluates a whole test set with K = 1000 or more, in chunks, for reported figures.
"""

from __future__ import annotations

import functools
import logging
import math
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from zoo import export
from zoo.data import image_batches, image_captions
from zoo.data import images as image_data
from zoo.errors import UsageError
from zoo.models import build, vae_mixture
from zoo.models.vae import (  # noqa: F401  (the likelihoods are part of this objective's interface)
    GREY_LEVELS,
    LIKELIHOODS,
    LOG_2PI,
    ConvVAE,
    bernoulli_nll,
    discretised_logistic_nll,
    pixel_nll,
)
from zoo.objectives.common import (
    SingleModelTask,
    WithCaptionEmbeddings,
    gradient_step,
    image_reading,
    init_model_state,
    save_image_assets,
)
from zoo.text.captions import embed_captions
from zoo.train.optim import make_optimizer
from zoo.train.task import EVAL_WEIGHT

log = logging.getLogger(__name__)

SCALES = {"bernoulli": "binary", "logistic": "unit"}  # the pixels each likelihood is a likelihood of
EVAL_KEY = 20240611  # eval's reparameterisation noise: the same in every eval of every run


def kl_beta(step: jax.Array | int, warmup_steps: int) -> jax.Array:
    """The KL weight at `step` (0-based, the step being taken): step / warmup_steps, capped at 1; always
    1 when warmup_steps <= 0."""
    if warmup_steps <= 0:
        return jnp.ones((), jnp.float32)
    return jnp.minimum(jnp.asarray(step, jnp.float32) / float(warmup_steps), 1.0)


def gaussian_kl(mu: jax.Array, logvar: jax.Array, prior_mu: jax.Array | float = 0.0,
                prior_logvar: jax.Array | float = 0.0) -> jax.Array:
    """KL(N(mu, exp(logvar)) || N(prior_mu, exp(prior_logvar))) in nats, summed over the last axis (the
    prior defaults to N(0, I))."""
    return 0.5 * jnp.sum(prior_logvar - logvar + (jnp.exp(logvar) + jnp.square(mu - prior_mu))
                         / jnp.exp(prior_logvar) - 1.0, axis=-1)


def analytic_kl(model: nnx.Module, mu: jax.Array, logvar: jax.Array, cond: jax.Array) -> jax.Array | None:
    """KL(q(z | x, c) || p(z | c)) [B] in closed form for a Gaussian prior; None for a mixture (no closed
    form)."""
    log_weights, prior_mu, prior_logvar = model.prior(cond)
    if log_weights.shape[-1] > 1:
        return None
    return gaussian_kl(mu, logvar, prior_mu[:, 0], prior_logvar[:, 0])


def kl_estimate(model: nnx.Module, z: jax.Array, mu: jax.Array, logvar: jax.Array, cond: jax.Array) -> jax.Array:
    """KL(q(z | x, c) || p(z | c)) [B] for the loss: in closed form for a Gaussian prior, otherwise the
    one-sample estimate log q(z | x, c) - log p(z | c) at the reparameterised z the decoder saw (unbiased,
    and its gradient reaches the prior's mixture weights, means and scales)."""
    kl = analytic_kl(model, mu, logvar, cond)
    if kl is not None:
        return kl
    log_q = -0.5 * jnp.sum(jnp.square(z - mu) * jnp.exp(-logvar) + logvar + LOG_2PI, axis=-1)
    return log_q - model.prior_log_prob(z, cond)


def importance_log_weights(model: nnx.Module, x: jax.Array, cond: jax.Array, key: jax.Array, k: int,
                           chunk: int = 8) -> tuple[jax.Array, jax.Array, jax.Array]:
    """K importance samples z_k ~ q(z | x, c) per image: (log w [B, K] = log p(x|z_k,c) + log p(z_k|c)
    - log q(z_k|x,c), recon [B, K] = -log p(x|z_k,c), KL [B]: analytic for a Gaussian prior, the mean of
    log q - log p over the K samples for a mixture). Decodes `chunk` samples of the
    whole batch at a time (lax.map), so memory stays ~chunk x one batch whatever K is."""
    mu, logvar = model.encode(x, cond)
    std = jnp.exp(0.5 * logvar)
    eps = jax.random.normal(key, (k, *mu.shape), jnp.float32)

    def one(e: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        z = mu + std * e
        recon = pixel_nll(model.likelihood, model.decode(z, cond), x)
        log_q = -0.5 * jnp.sum(jnp.square(e) + logvar + LOG_2PI, axis=-1)
        log_p = model.prior_log_prob(z, cond)
        return -recon + log_p - log_q, recon, log_q - log_p

    log_w, recon, kl_samples = jax.lax.map(one, eps, batch_size=min(chunk, k))
    kl = analytic_kl(model, mu, logvar, cond)
    return log_w.T, recon.T, kl_samples.mean(axis=0) if kl is None else kl


def bounds(model: nnx.Module, x: jax.Array, cond: jax.Array, key: jax.Array, k: int) -> dict[str, jax.Array]:
    """Per image [B], nats: `iwae_nll` (the K-sample importance-weighted bound on -log p(x | c)), `neg_elbo`
    (recon averaged over the same K samples + the KL: analytic, or for a mixture prior the mean over those
    samples), `recon`, `kl`. iwae_nll <= neg_elbo up to the difference between the sampled and the analytic
    KL (exactly, for the sampled one)."""
    log_w, recon, kl = importance_log_weights(model, x, cond, key, k)
    iwae = -(jax.nn.logsumexp(log_w, axis=1) - math.log(k))
    recon = recon.mean(axis=1)
    return {"iwae_nll": iwae, "neg_elbo": recon + kl, "recon": recon, "kl": kl}


@functools.partial(jax.jit, static_argnums=(0, 5))
def _chunk_log_weights(graphdef: nnx.GraphDef, params: dict, x: jax.Array, cond: jax.Array, key: jax.Array,
                       k: int) -> jax.Array:
    return importance_log_weights(nnx.merge(graphdef, params), x, cond, key, k)[0]


def iwae_nll(graphdef: nnx.GraphDef, params: dict, images: np.ndarray, cond: np.ndarray, key: jax.Array,
             k: int, image_chunk: int = 100, sample_chunk: int = 100) -> np.ndarray:
    """The K-sample importance-weighted bound on -log p(x | c) of every image, float64 [N] nats (its mean
    over a test set is the figure to report, e.g. K = 1000 as in Burda et al.). `images` float [N, H, W, C]
    binary pixels, `cond` [N, cond_dim] caption embeddings. Runs `image_chunk` images x `sample_chunk`
    samples per jitted call, combining the chunks' log-weights with a running log-sum-exp, so any N and K
    fit in memory. Deterministic in `key`."""
    images = np.asarray(images, np.float32)
    cond = np.asarray(cond, np.float32)
    n = len(images)
    if k < 1 or n == 0 or len(cond) != n:
        raise ValueError(f"need k >= 1 and as many embeddings as images, got k={k}, {n} images, {len(cond)} rows")
    out = np.empty(n, np.float64)
    for i, start in enumerate(range(0, n, image_chunk)):
        rows = min(image_chunk, n - start)
        pad = image_chunk - rows  # constant shapes: one compilation for every chunk
        x = np.pad(images[start:start + rows], ((0, pad),) + ((0, 0),) * (images.ndim - 1))
        c = np.pad(cond[start:start + rows], ((0, pad), (0, 0)))
        total = np.full(image_chunk, -np.inf)
        for j, s in enumerate(range(0, k, sample_chunk)):
            size = min(sample_chunk, k - s)
            log_w = np.asarray(_chunk_log_weights(graphdef, params, x, c, jax.random.fold_in(
                jax.random.fold_in(key, i), j), size), np.float64)
            total = np.logaddexp(total, np.logaddexp.reduce(log_w, axis=1))
        out[start:start + rows] = -(total[:rows] - math.log(k))
    return out


class VAETask(SingleModelTask):
    """Data, state and steps of the caption-conditioned convolutional VAE for the shared loop. State:
    {"params", "opt_state", "step"} (`step` drives the KL warm-up)."""

    family = "vae"

    def __init__(self, config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
        self.config = config
        self.kl_warmup_steps = int(config.get("kl_warmup_steps", 0))
        self.iwae_samples = int(config.get("iwae_samples", 16))
        self.kl_weight = float(config.get("kl_weight", 1.0))
        if not 0.0 < self.kl_weight <= 1.0:
            raise UsageError(f"--config.kl_weight must be in (0, 1], got {self.kl_weight}")
        if self.kl_warmup_steps < 0:
            raise UsageError(f"--config.kl_warmup_steps must be >= 0, got {self.kl_warmup_steps}")
        if self.iwae_samples < 1:
            raise UsageError(f"--config.iwae_samples must be >= 1, got {self.iwae_samples}")
        self.mixture_components = int(config.get("latent_mixture_components", 0))
        if self.mixture_components < 0:
            raise UsageError(f"--config.latent_mixture_components must be >= 0, got {self.mixture_components}")
        if self.mixture_components and config.get("fsdp", False):  # checked now, not after the whole run
            raise UsageError("--config.latent_mixture_components needs unsharded params at export: set "
                             "--config.fsdp=False (a VAE this size gains nothing from FSDP) or 0 components")
        self.likelihood = str(config.model.get("likelihood", "bernoulli"))
        if self.likelihood not in LIKELIHOODS:
            raise UsageError(f"--config.model.likelihood must be one of {sorted(LIKELIHOODS)}, got {self.likelihood!r}")
        self.scale = SCALES[self.likelihood]
        self.dataset = image_data.load_images(config.data)
        self.captions_per_class = image_captions.class_captions(self.dataset)
        smallest = int(np.bincount(self.dataset.train_labels, minlength=self.dataset.num_classes).min())
        if smallest < self.mixture_components:
            raise UsageError(f"{config.data}: a class has {smallest} training images, fewer than "
                             f"--config.latent_mixture_components={self.mixture_components}")
        self.captions, self.caption_classes = image_captions.caption_table(self.captions_per_class)
        self.embeddings = embed_captions(self.captions)
        d = self.dataset
        try:
            self.train_data = WithCaptionEmbeddings(image_batches.ImageBatches(
                d.train_images, d.train_labels, self.captions_per_class, config.batch_size, config.seed,
                scale=self.scale, styles=d.train_styles), self.embeddings, len(d.style_names))
            self.val_data = WithCaptionEmbeddings(image_batches.ImageBatches(
                d.test_images, d.test_labels, self.captions_per_class, config.batch_size, config.seed,
                scale=self.scale, styles=d.test_styles), self.embeddings, len(d.style_names))
        except ValueError as e:
            raise UsageError(f"image data {config.data!r}: {e}") from None
        self.eval_batch_count = config.get("eval_batches", 8)
        self.tx = make_optimizer(config)
        self.graphdef = nnx.graphdef(nnx.eval_shape(lambda: self._build(nnx.Rngs(0))))
        log.info("%s: %d train / %d test images %s, %d classes, %d captions", d.name, len(d.train_labels),
                 len(d.test_labels), "x".join(map(str, d.image_shape)), d.num_classes, len(self.captions))

    @property
    def model_dims(self) -> dict:
        """The data-dependent constructor arguments (what `zoo.models.build` takes as **dims)."""
        return {"image_shape": list(self.dataset.image_shape),
                "cond_dim": int(self.embeddings.shape[1]) + len(self.dataset.style_names)}

    def _build(self, rngs: nnx.Rngs) -> nnx.Module:
        return build(ConvVAE, self.config, rngs, **self.model_dims)

    def init_state(self, key: jax.Array) -> dict:
        return {**init_model_state(self._build(nnx.Rngs(params=key)), self.tx), "step": jnp.zeros((), jnp.int32)}

    def loss(self, params: dict, batch: dict, key: jax.Array, beta: jax.Array) -> tuple[jax.Array, dict]:
        """Mean over the batch of recon + beta * KL (nats per image), and the metrics."""
        model = nnx.merge(self.graphdef, params)
        mu, logvar = model.encode(batch["image"], batch["cond"])
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape, jnp.float32)
        recon = pixel_nll(model.likelihood, model.decode(z, batch["cond"]), batch["image"]).mean()
        kl = kl_estimate(model, z, mu, logvar, batch["cond"]).mean()
        return recon + beta * kl, {"neg_elbo": recon + kl, "recon": recon, "kl": kl, "beta": beta}

    def train_step(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        beta = self.kl_weight * kl_beta(state["step"], self.kl_warmup_steps)
        new, metrics = gradient_step(state, self.tx, lambda p: self.loss(p, batch, key, beta))
        return {**new, "step": state["step"] + 1}, metrics

    def eval_step(self, state: dict, batch: dict) -> dict:
        model = nnx.merge(self.graphdef, state["params"])
        per_image = bounds(model, batch["image"], batch["cond"], jax.random.PRNGKey(EVAL_KEY), self.iwae_samples)
        mask = batch["mask"]
        count = jnp.maximum(mask.sum(), 1.0)
        means = {k: (v * mask).sum() / count for k, v in per_image.items()}
        return {"loss": means.pop("neg_elbo"), **means, EVAL_WEIGHT: mask.sum()}

    def load_params(self, state: dict, params: dict) -> dict:
        return {**super().load_params(state, params), "step": state["step"]}

    def save_assets(self, directory: pathlib.Path, params: dict) -> None:
        extra = {}
        if self.mixture_components:
            mixtures = self.fit_latent_mixtures(params)
            np.savez_compressed(pathlib.Path(directory) / export.LATENT_MIXTURE, **mixtures)  # chol: half zeros
            extra = {"latent_mixture": export.LATENT_MIXTURE, "latent_mixture_components": self.mixture_components}
        save_image_assets(
            directory, data=self.config.data, class_names=self.dataset.class_names, captions=self.captions,
            caption_classes=self.caption_classes, embeddings=self.embeddings, image_shape=self.dataset.image_shape,
            source_shape=self.dataset.image_shape, scale=self.scale, model_dims=self.model_dims, exported_module=None,
            likelihood=self.likelihood, latent_dim=int(self.config.model.get("latent_dim", 32)),
            sample_temperature=float(self.config.get("sample_temperature", 1.0)), **image_reading(self.dataset),
            **extra)

    def fit_latent_mixtures(self, params: dict, batch_size: int = 500) -> dict[str, np.ndarray]:
        """One `latent_mixture_components`-Gaussian mixture per class (zoo.models.vae_mixture) fit to the
        posterior means E[z | x, c] of every training image, binarised once (eval's fixed draw) and conditioned
        on its class's captions in turn -> the stacked mixture {"log_weights" [C, K], "means" [C, K, D],
        "chol" [C, K, D, D]}. `params` must be addressable from this process (__init__ refuses fsdp)."""
        d = self.dataset
        batches = WithCaptionEmbeddings(image_batches.ImageBatches(
            d.train_images, d.train_labels, self.captions_per_class, batch_size, self.config.seed, scale=self.scale,
            styles=d.train_styles), self.embeddings, len(d.style_names))
        encode = jax.jit(lambda p, x, c: nnx.merge(self.graphdef, p).encode(x, c)[0])
        params = jax.device_get(params)
        means, labels = [], []
        for batch in batches.eval_batches(-(-len(d.train_labels) // batch_size), 0, 1):
            keep = batch["mask"] > 0
            means.append(np.asarray(encode(params, batch["image"], batch["cond"]))[keep])
            labels.append(batch["label"][keep])
        means, labels = np.concatenate(means), np.concatenate(labels)
        fits = []
        for c in range(d.num_classes):
            points = means[labels == c]
            fits.append(vae_mixture.fit(points, self.mixture_components, seed=self.config.seed))
            log.info("latent mixture of class %d (%s): %d components on %d posterior means", c, d.class_names[c],
                     len(fits[-1]["log_weights"]), len(points))
        return {k: np.stack([f[k] for f in fits]) for k in fits[0]}


def build_task(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> VAETask:
    return VAETask(config, workdir)
