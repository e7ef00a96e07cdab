"""A caption-conditioned convolutional VAE (the `vae` model), in Flax NNX.

A conditional VAE (Kingma & Welling 2014; Sohn et al. 2015) over H x W x C images, H and W divisible by
2 ** len(channels) (28x28 greyscale with the default two stages: no padding needed):

    cond [B, 384] (a sentence embedding of a caption) --Linear+SiLU--> c [B, cond_features]
    encoder q(z | x, c):  x --Conv s2 (channels[0])--> ... --Conv s2 (channels[-1])--> flatten
                          concat c --Dense hidden_dim--> Linear --> (mu, logvar) [B, latent_dim] each
    decoder p(x | z, c):  concat(z, c) --Dense hidden_dim--> Dense --> [H/4, W/4, channels[-1]]
                          --ConvTranspose s2 (channels[-2])--> ... --ConvTranspose s2 (C)--> logits [B, H, W, C]
                          with decoder_blocks = n > 0: n residual blocks x + Conv3x3(SiLU(x)) before
                          every ConvTranspose (at H/4 and H/2: full size would cost 5x the step time)
    prior p(z | c):       N(0, I), or (conditional_prior=True) N(mu(c), exp(logvar(c))) from a Linear on the
                          caption features, initialised to N(0, I) (the embedded model); or (prior_components =
                          K > 1) a mixture sum_k pi_k(c) N(mu_k(c), exp(logvar_k(c))) from the same Linear.

Likelihood (`likelihood`), each a true probability of discrete data, so negative log-likelihoods are nats:
- "bernoulli": per pixel with `logits`, on dynamically binarised pixels (zoo.data.images' scale="binary"):
  the standard for reporting MNIST negative log-likelihoods (a Bernoulli "likelihood" of grey levels is
  not a likelihood). Images to show are the Bernoulli means, sigmoid(logits).
- "logistic": a discretised logistic per pixel over the 256 grey levels (PixelCNN++, Salimans et al. 2017,
  one mixture component) with a per-pixel location and log-scale, on the 8-bit images themselves (scale
  "unit"). Binarising throws away the grey texture that tells a shirt from a pullover and blurs a sandal's
  straps into noise; the 8-bit likelihood keeps it. Images to show are the locations, clipped to [0, 1].
Images are in [0, 1] (0 = black).

Why decoder_blocks: blur. The stride-1 convolutions at H/4 and H/2 add spatial capacity for details such
as a sandal's straps, but one block per stage barely lifts Sandal samples and leaves Shirt as it is; a KL
weight below 1 with a wider latent keeps those details instead, so the embedded model has 0 blocks
(configs/vae.py: kl_weight, latent_dim).

Why a mixture prior: a VAE's aggregate posterior q(z | c) = E_x q(z | x, c) is not Gaussian, and samples from a
Gaussian prior land where no training image's latent does ("prior holes"): the decoder draws a pullover-shirt
blend there. The prior's parameters only meet the loss in beta * E_q[-log p(z | c)], so training fits them to
the aggregate posterior by maximum likelihood, whatever beta is (Tomczak & Welling 2018 train a mixture prior
the same way). A mixture prior trained with the model samples better than one Gaussian, but a
full-covariance mixture per class fit to the posterior means after training samples better still
(benchmarks/image_eval.py's per-class bar; zoo/pretrained/vae/README.md), so the embedded model keeps K = 1 and samples
from such a fitted mixture (zoo.models.vae_mixture, config `latent_mixture_components`). With K > 1 the KL
has no closed form: the objective estimates it with the z it decodes (zoo.objectives.vae.kl_estimate).

The caption's projection `c` is shared by the encoder and the decoder and enters each at its dense layer by
concatenation. Activations are SiLU, with no normalisation (batch statistics would make an image's
likelihood depend on its batch). Like zoo/models/lm.py and zoo/models/music.py the model holds no RNG state:
the reparameterisation noise comes from a key passed at call time. Convolutions and dense layers compute
in `dtype`; logits, mu and logvar are float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.layers.conv import ConvTranspose

LIKELIHOODS = {"bernoulli": 1, "logistic": 2}  # decoder output channels per image channel
LOG_SCALE_MIN = -7.0  # the logistic's log-scale floor (PixelCNN++): about 1/4 of a grey level
LOG_2PI = math.log(2.0 * math.pi)
GREY_LEVELS = 255  # 8-bit images: the logistic's bins are 1/255 wide in the unit scale


# The pixel likelihoods: training scores reconstructions with them, and sampling (a picture's evidence
# under each caption) reads them from here.

def bernoulli_nll(logits: jax.Array, x: jax.Array) -> jax.Array:
    """-log p(x) of binary images x under independent Bernoulli(sigmoid(logits)) pixels, summed over the
    last three (H, W, C) axes: nats per image, float32 [...]."""
    logits, x = logits.astype(jnp.float32), x.astype(jnp.float32)
    nll = -(x * jax.nn.log_sigmoid(logits) + (1.0 - x) * jax.nn.log_sigmoid(-logits))
    return nll.sum(axis=(-3, -2, -1))


def discretised_logistic_nll(params: jax.Array, x: jax.Array) -> jax.Array:
    """-log p(x) of 8-bit images x (unit scale: level / 255, C channels) under a per-pixel logistic with
    location params[..., :C] and log-scale params[..., C:] (floored at LOG_SCALE_MIN), discretised to the 256
    levels: P(x) = CDF(x + 1/510) - CDF(x - 1/510), the edge bins taking the tails (PixelCNN++). Summed over
    (H, W, C): nats per image, float32 [...]."""
    channels = x.shape[-1]
    loc = params[..., :channels].astype(jnp.float32)
    log_scale = jnp.maximum(params[..., channels:].astype(jnp.float32), LOG_SCALE_MIN)
    x = x.astype(jnp.float32)
    inv_scale = jnp.exp(-log_scale)
    half_bin = 0.5 / GREY_LEVELS
    upper = inv_scale * (x - loc + half_bin)
    lower = inv_scale * (x - loc - half_bin)
    log_cdf_upper = jax.nn.log_sigmoid(upper)  # the bottom bin, level 0: log CDF(x + half_bin)
    log_sf_lower = -jax.nn.softplus(lower)  # the top bin, level 255: log (1 - CDF(x - half_bin))
    # Inner bins: sigmoid(u) - sigmoid(l) = sigmoid(u) sigmoid(-l) (1 - exp(l - u)), in logs (stable in the tails).
    log_inner = (log_cdf_upper + jax.nn.log_sigmoid(-lower)
                 + jnp.log(-jnp.expm1(jnp.minimum(lower - upper, -1e-12))))
    log_p = jnp.where(x < half_bin, log_cdf_upper, jnp.where(x > 1.0 - half_bin, log_sf_lower, log_inner))
    return -log_p.sum(axis=(-3, -2, -1))


def pixel_nll(likelihood: str, params: jax.Array, x: jax.Array) -> jax.Array:
    """-log p(x | z, c) in nats per image [...] for the decoder's output `params` (ConvVAE.decode)."""
    if likelihood == "bernoulli":
        return bernoulli_nll(params, x)
    return discretised_logistic_nll(params, x)


class ConvVAE(nnx.Module):
    """Conditional convolutional VAE with a Bernoulli or a discretised-logistic pixel likelihood."""

    def __init__(self, *, image_shape: Sequence[int] = (28, 28, 1), cond_dim: int = 384, latent_dim: int = 32,
                 channels: Sequence[int] = (32, 64), hidden_dim: int = 256, cond_features: int = 64,
                 kernel_size: int = 4, conditional_prior: bool = False, prior_components: int = 1,
                 decoder_blocks: int = 0, likelihood: str = "bernoulli", dtype: Any = jnp.float32,
                 rngs: nnx.Rngs):
        height, width, colours = (int(d) for d in image_shape)
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty list of positive widths, got {channels}")
        factor = 2 ** len(channels)
        if height % factor or width % factor:
            raise ValueError(f"image size {height}x{width} is not divisible by 2**len(channels) = {factor}")
        if latent_dim < 1 or hidden_dim < 0 or cond_features < 1 or decoder_blocks < 0 or prior_components < 1:
            raise ValueError("latent_dim, cond_features and prior_components must be positive, hidden_dim and "
                             "decoder_blocks >= 0")
        if prior_components > 1 and not conditional_prior:
            raise ValueError("a mixture prior (prior_components > 1) is a conditional prior: set conditional_prior")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        self.image_shape = (height, width, colours)
        self.likelihood = likelihood
        self.latent_dim, self.cond_dim, self.channels, self.dtype = latent_dim, cond_dim, channels, dtype
        self.prior_components = prior_components
        self.bottom = (height // factor, width // factor, channels[-1])
        flat = self.bottom[0] * self.bottom[1] * self.bottom[2]

        self.cond_proj = nnx.Linear(cond_dim, cond_features, dtype=dtype, rngs=rngs)
        # p(z | c) = N(mu(c), exp(logvar(c))), starting as N(0, I). With a fixed N(0, I) prior the latent
        # learns to carry the class (the encoder sees the image) and prior samples under-use the caption;
        # a prior that moves with the caption puts each class's latents where sampling draws them.
        # A mixture's K components start as N(m_k, I) with m_k ~ N(0, I/4) and equal weights: apart, so that
        # they can specialise, yet all inside the N(0, I) the encoder starts near.
        zeros = nnx.initializers.zeros
        if prior_components == 1:
            bias_init = zeros
        else:
            def bias_init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
                means = 0.5 * jax.random.normal(key, (prior_components * latent_dim,), dtype)
                return jnp.concatenate([means, jnp.zeros((shape[0] - means.size,), dtype)])
        prior_width = prior_components * (2 * latent_dim + (prior_components > 1))
        self.prior_net = (nnx.Linear(cond_features, prior_width, dtype=dtype, rngs=rngs, kernel_init=zeros,
                                     bias_init=bias_init) if conditional_prior else None)
        # Encoder.
        widths = (colours, *channels)
        self.enc_convs = nnx.List([nnx.Conv(widths[i], widths[i + 1], (kernel_size, kernel_size), strides=2,
                                            dtype=dtype, rngs=rngs) for i in range(len(channels))])
        enc_in = flat + cond_features
        self.enc_hidden = nnx.Linear(enc_in, hidden_dim, dtype=dtype, rngs=rngs) if hidden_dim else None
        self.enc_out = nnx.Linear(hidden_dim or enc_in, 2 * latent_dim, dtype=dtype, rngs=rngs)
        # Decoder (mirrors the encoder).
        dec_in = latent_dim + cond_features
        self.dec_hidden = nnx.Linear(dec_in, hidden_dim, dtype=dtype, rngs=rngs) if hidden_dim else None
        self.dec_in = nnx.Linear(hidden_dim or dec_in, flat, dtype=dtype, rngs=rngs)
        ups = (*channels[::-1], colours * LIKELIHOODS[likelihood])
        self.dec_convs = nnx.List([ConvTranspose(ups[i], ups[i + 1], (kernel_size, kernel_size), strides=(2, 2),
                                                     dtype=dtype, rngs=rngs) for i in range(len(channels))])
        # dec_blocks[i]: the residual convs before dec_convs[i].
        self.dec_blocks = nnx.List([
            nnx.List([nnx.Conv(width, width, (3, 3), dtype=dtype, rngs=rngs) for _ in range(decoder_blocks)])
            for width in ups[:-1]])

    def condition(self, cond: jax.Array) -> jax.Array:
        """Caption embeddings [B, cond_dim] -> the features both halves see [B, cond_features]."""
        return nnx.silu(self.cond_proj(cond.astype(self.dtype)))

    def encode(self, x: jax.Array, cond: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Images [B, H, W, C] (binary pixels), cond [B, cond_dim] -> float32 (mu, logvar) of q(z | x, c),
        each [B, latent_dim]."""
        h = x.astype(self.dtype)
        for conv in self.enc_convs:
            h = nnx.silu(conv(h))
        h = jnp.concatenate([h.reshape(h.shape[0], -1), self.condition(cond)], axis=-1)
        if self.enc_hidden is not None:
            h = nnx.silu(self.enc_hidden(h))
        mu, logvar = jnp.split(self.enc_out(h).astype(jnp.float32), 2, axis=-1)
        return mu, logvar

    def decode(self, z: jax.Array, cond: jax.Array) -> jax.Array:
        """Latents [B, latent_dim], cond [B, cond_dim] -> float32 parameters of p(x | z, c): Bernoulli logits
        [B, H, W, C], or for the logistic the means (unit scale) and log-scales, [B, H, W, 2C]."""
        h = jnp.concatenate([z.astype(self.dtype), self.condition(cond)], axis=-1)
        if self.dec_hidden is not None:
            h = nnx.silu(self.dec_hidden(h))
        h = nnx.silu(self.dec_in(h)).reshape(z.shape[0], *self.bottom)
        last = len(self.dec_convs) - 1
        for i, (blocks, up) in enumerate(zip(self.dec_blocks, self.dec_convs, strict=True)):
            for conv in blocks:
                h = h + conv(nnx.silu(h))
            h = up(h) if i == last else nnx.silu(up(h))
        return h.astype(jnp.float32)

    def mean(self, pixel_params: jax.Array) -> jax.Array:
        """What `decode` returns -> the image to show, float32 [B, H, W, C] in [0, 1]: the Bernoulli means,
        or the logistic's location clipped to the pixel range."""
        if self.likelihood == "bernoulli":
            return jax.nn.sigmoid(pixel_params)
        return jnp.clip(pixel_params[..., :self.image_shape[-1]], 0.0, 1.0)

    def __call__(self, x: jax.Array, cond: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(pixel parameters (see `decode`), mu, logvar) with z ~ q(z | x, c) reparameterised with `key`."""
        mu, logvar = self.encode(x, cond)
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape, jnp.float32)
        return self.decode(z, cond), mu, logvar

    def prior(self, cond: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """float32 (log_weights [B, K], mu [B, K, latent_dim], logvar [B, K, latent_dim]) of the mixture
        p(z | c) = sum_k exp(log_weights_k) N(mu_k, exp(logvar_k)); K = 1 (log weight 0) for a Gaussian
        prior, and N(0, I) without a conditional prior."""
        b, k, d = cond.shape[0], self.prior_components, self.latent_dim
        if self.prior_net is None:
            zero = jnp.zeros((b, 1, d), jnp.float32)
            return jnp.zeros((b, 1), jnp.float32), zero, zero
        out = self.prior_net(self.condition(cond)).astype(jnp.float32)
        mu, logvar = out[:, :k * d].reshape(b, k, d), out[:, k * d:2 * k * d].reshape(b, k, d)
        log_weights = jax.nn.log_softmax(out[:, 2 * k * d:], axis=-1) if k > 1 else jnp.zeros((b, 1), jnp.float32)
        return log_weights, mu, logvar

    def prior_log_prob(self, z: jax.Array, cond: jax.Array) -> jax.Array:
        """log p(z | c) [B] in nats for latents z [B, latent_dim]."""
        log_weights, mu, logvar = self.prior(cond)
        per_component = -0.5 * jnp.sum(jnp.square(z[:, None] - mu) * jnp.exp(-logvar) + logvar + LOG_2PI, axis=-1)
        return jax.nn.logsumexp(log_weights + per_component, axis=-1)

    def sample_latent(self, cond: jax.Array, key: jax.Array, temperature: float = 1.0) -> jax.Array:
        """z ~ p(z | c) [B, latent_dim]: a component by its weight, then a draw from it with its spread scaled
        by `temperature` (below 1: typical latents, cleaner images, less variety)."""
        log_weights, mu, logvar = self.prior(cond)
        noise = key
        if self.prior_components > 1:
            pick, noise = jax.random.split(key)
            k = jax.random.categorical(pick, log_weights, axis=-1)[:, None, None]
            mu, logvar = (jnp.take_along_axis(v, k, axis=1) for v in (mu, logvar))
        mu, logvar = mu[:, 0], logvar[:, 0]
        return mu + temperature * jnp.exp(0.5 * logvar) * jax.random.normal(noise, mu.shape, jnp.float32)

    def sample(self, cond: jax.Array, key: jax.Array, temperature: float = 1.0) -> jax.Array:
        """Images from the prior (`sample_latent`, decoded) -> float32 images [B, H, W, C] in [0, 1] (`mean`)."""
        return self.mean(self.decode(self.sample_latent(cond, key, temperature), cond))
