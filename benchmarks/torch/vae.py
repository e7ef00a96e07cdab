"""PyTorch twin of the `vae` family: zoo/models/vae.py trained as zoo/objectives/vae.py trains it.

Architecture (configs/vae.py: 28x28x1, channels (32, 64), hidden 256, latent 64, cond_features 64, k=4):
    c = SiLU(Linear(cond))                                     (shared by encoder, decoder and prior)
    q(z | x, c): x -> (Conv k /2 -> SiLU) per channel width -> flatten ; c -> SiLU(Dense hidden) -> Linear
                 -> (mu, logvar)
    p(x | z, c): [z ; c] -> SiLU(Dense hidden) -> SiLU(Dense) -> [channels[-1], H/4, W/4] -> per stage
                 `decoder_blocks` residual blocks h + Conv3x3(SiLU(h)), then ConvTranspose k /2 (SiLU but on
                 the last) -> Bernoulli logits [C] or logistic (locations, log-scales) [2C] per pixel
    p(z | c):    N(0, I), or (conditional_prior) N(mu(c), exp(logvar(c))) from a Linear initialised to zeros,
                 or (prior_components K > 1) a K-Gaussian mixture from that Linear, its means' biases N(0, 1/4).
Convolutions follow Flax's "SAME" padding (benchmarks/torch/images.py). Layout NCHW inside; the Flax model
flattens NHWC, which only permutes the rows of enc_hidden (or enc_out) and the columns of dec_in.

Initialisation as Flax NNX's defaults: every kernel lecun_normal (truncated normal in +-2 sd, variance
1 / fan_in; fan_in = in_channels * k * k for convolutions AND transposed convolutions, where torch's own
fan_in of a ConvTranspose2d weight would use the output channels), biases 0; the prior's Linear all zeros.

Loss (VAETask.loss): mean over the batch of recon + beta * KL, recon = -log p(x | z, c) summed over the
pixels with one reparameterised z, KL in closed form against the (conditional) prior (for a mixture the
one-sample estimate log q(z | x, c) - log p(z | c) at that z), beta = kl_weight x
min(step / kl_warmup_steps, 1) from the number of steps taken (kl_weight when kl_warmup_steps <= 0). `model.likelihood`:
"bernoulli" (sigmoid cross-entropy on the task's binarised pixels) or "logistic" (discretised over the 256
levels, mirroring zoo.objectives.vae.discretised_logistic_nll). One optimizer: ZooOptimizer(config) (Adam
b1 0.9, b2 0.999, lr 1e-3 with 100 warm-up steps and cosine decay to 0.1x, no clipping, no weight decay).
`step` returns that loss, the JAX step's metrics["loss"].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.torch import images
from benchmarks.torch.common import ZooOptimizer, autocast, count_params, lecun_normal_, tensors
from zoo.models.vae import LIKELIHOODS, LOG_2PI, LOG_SCALE_MIN
from zoo.objectives.vae import GREY_LEVELS

_lecun_normal_ = lecun_normal_


def _flax_default_init(module: nn.Module) -> None:
    """nnx.Linear / Conv / ConvTranspose defaults: lecun_normal kernels with Flax's fan_in (in_channels x
    kernel area, also for the transposed convolutions, whose torch weight is [in, out, k, k]), zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            in_channels = m.in_features if isinstance(m, nn.Linear) else m.in_channels
            receptive = 1 if isinstance(m, nn.Linear) else m.kernel_size[0] * m.kernel_size[1]
            _lecun_normal_(m.weight, in_channels * receptive)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ConvVAE(nn.Module):
    """zoo.models.vae.ConvVAE in NCHW: the same layers, widths and activations."""

    def __init__(self, *, image_shape: Sequence[int] = (28, 28, 1), cond_dim: int = 384, latent_dim: int = 32,
                 channels: Sequence[int] = (32, 64), hidden_dim: int = 256, cond_features: int = 64,
                 kernel_size: int = 4, conditional_prior: bool = False, prior_components: int = 1,
                 decoder_blocks: int = 0, likelihood: str = "bernoulli"):
        super().__init__()
        height, width, colours = (int(d) for d in image_shape)
        channels = tuple(int(c) for c in channels)
        factor = 2 ** len(channels)
        if not channels or height % factor or width % factor:
            raise ValueError(f"image size {height}x{width} is not divisible by 2**len(channels) = {factor}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {sorted(LIKELIHOODS)}, got {likelihood!r}")
        self.colours, self.likelihood, self.latent_dim, self.components = colours, likelihood, latent_dim, \
            prior_components
        self.bottom = (channels[-1], height // factor, width // factor)
        flat = self.bottom[0] * self.bottom[1] * self.bottom[2]

        self.cond_proj = nn.Linear(cond_dim, cond_features)
        prior_width = prior_components * (2 * latent_dim + (prior_components > 1))
        self.prior_net = nn.Linear(cond_features, prior_width) if conditional_prior else None
        widths = (colours, *channels)
        self.enc_convs = nn.ModuleList([images.SameConv2d(widths[i], widths[i + 1], kernel_size, 2)
                                        for i in range(len(channels))])
        enc_in = flat + cond_features
        self.enc_hidden = nn.Linear(enc_in, hidden_dim) if hidden_dim else None
        self.enc_out = nn.Linear(hidden_dim or enc_in, 2 * latent_dim)
        dec_in = latent_dim + cond_features
        self.dec_hidden = nn.Linear(dec_in, hidden_dim) if hidden_dim else None
        self.dec_in = nn.Linear(hidden_dim or dec_in, flat)
        ups = (*channels[::-1], colours * LIKELIHOODS[likelihood])
        self.dec_convs = nn.ModuleList([images.SameConvTranspose2d(ups[i], ups[i + 1], kernel_size, 2)
                                        for i in range(len(channels))])
        self.dec_blocks = nn.ModuleList([nn.ModuleList([images.SameConv2d(w, w, 3) for _ in range(decoder_blocks)])
                                         for w in ups[:-1]])
        _flax_default_init(self)
        if self.prior_net is not None:  # p(z | c) starts as N(0, I), a mixture's means spread around 0
            nn.init.zeros_(self.prior_net.weight)
            nn.init.zeros_(self.prior_net.bias)
            if prior_components > 1:
                with torch.no_grad():
                    self.prior_net.bias[:prior_components * latent_dim].normal_(0.0, 0.5)

    def condition(self, cond: torch.Tensor) -> torch.Tensor:
        """Caption embeddings -> the features encoder, decoder and prior share (computed once per step here;
        the Flax model recomputes them per use, the same values)."""
        return F.silu(self.cond_proj(cond))

    def encode(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """NCHW images and the condition features `c` -> float32 (mu, logvar) of q(z | x, c)."""
        h = x
        for conv in self.enc_convs:
            h = F.silu(conv(h))
        h = torch.cat([h.flatten(1), c], dim=-1)
        if self.enc_hidden is not None:
            h = F.silu(self.enc_hidden(h))
        mu, logvar = self.enc_out(h).float().chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Latents and condition features -> float32 pixel parameters [B, C or 2C, H, W]."""
        h = torch.cat([z, c], dim=-1)
        if self.dec_hidden is not None:
            h = F.silu(self.dec_hidden(h))
        h = F.silu(self.dec_in(h)).view(z.shape[0], *self.bottom)
        last = len(self.dec_convs) - 1
        for i, (blocks, up) in enumerate(zip(self.dec_blocks, self.dec_convs, strict=True)):
            for conv in blocks:
                h = h + conv(F.silu(h))
            h = up(h) if i == last else F.silu(up(h))
        return h.float()

    def prior(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log_weights [B, K], mu [B, K, D], logvar [B, K, D]) of p(z | c): K = 1 and zeros without a
        conditional prior."""
        b, k, d = c.shape[0], self.components, self.latent_dim
        if self.prior_net is None:
            zero = torch.zeros(b, 1, d, device=c.device)
            return torch.zeros(b, 1, device=c.device), zero, zero
        out = self.prior_net(c).float()
        mu, logvar = out[:, :k * d].view(b, k, d), out[:, k * d:2 * k * d].view(b, k, d)
        log_weights = F.log_softmax(out[:, 2 * k * d:], dim=-1) if k > 1 else torch.zeros(b, 1, device=c.device)
        return log_weights, mu, logvar

    def kl(self, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """KL(q || p(z | c)) [B]: closed form for one Gaussian, else log q(z) - log p(z | c) at z."""
        log_weights, prior_mu, prior_logvar = self.prior(c)
        if self.components == 1:
            return gaussian_kl(mu, logvar, prior_mu[:, 0], prior_logvar[:, 0])
        log_q = -0.5 * ((z - mu).square() * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)
        per_component = -0.5 * ((z[:, None] - prior_mu).square() * torch.exp(-prior_logvar) + prior_logvar
                                + LOG_2PI).sum(-1)
        return log_q - torch.logsumexp(log_weights + per_component, dim=-1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """Pixel parameters -> the image to show in [0, 1]: Bernoulli means or clipped logistic locations."""
        if self.likelihood == "bernoulli":
            return torch.sigmoid(params)
        return params[:, :self.colours].clamp(0.0, 1.0)


def discretised_logistic_nll(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """zoo.objectives.vae.discretised_logistic_nll in NCHW: -log p(x) [B] of unit-scale 8-bit images under a
    per-pixel logistic (locations params[:, :C], log-scales params[:, C:] floored at LOG_SCALE_MIN),
    discretised to the 256 levels, the edge bins taking the tails."""
    channels = x.shape[1]
    loc = params[:, :channels]
    log_scale = params[:, channels:].clamp_min(LOG_SCALE_MIN)
    inv_scale = torch.exp(-log_scale)
    half_bin = 0.5 / GREY_LEVELS
    upper = inv_scale * (x - loc + half_bin)
    lower = inv_scale * (x - loc - half_bin)
    log_cdf_upper = F.logsigmoid(upper)
    log_sf_lower = -F.softplus(lower)
    log_inner = log_cdf_upper + F.logsigmoid(-lower) + torch.log(-torch.expm1((lower - upper).clamp_max(-1e-12)))
    log_p = torch.where(x < half_bin, log_cdf_upper, torch.where(x > 1.0 - half_bin, log_sf_lower, log_inner))
    return -log_p.sum(dim=(1, 2, 3))


def pixel_nll(likelihood: str, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x | z, c) per image [B] in nats."""
    if likelihood == "bernoulli":
        return F.binary_cross_entropy_with_logits(params, x, reduction="none").sum(dim=(1, 2, 3))
    return discretised_logistic_nll(params, x)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, prior_mu: torch.Tensor,
                prior_logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(prior_mu, exp(prior_logvar))) [B], summed over the latent axis."""
    return 0.5 * (prior_logvar - logvar + (logvar.exp() + (mu - prior_mu).square()) / prior_logvar.exp()
                  - 1.0).sum(-1)


class VAETwin:
    """The conditional VAE and its optimizer; `step` is one JAX `VAETask.train_step`."""

    def __init__(self, config: ml_collections.ConfigDict, dims: dict[str, Any], seed: int):
        torch.manual_seed(seed)
        self.config = config
        self.model = ConvVAE(**config.model.to_dict(), **dims)
        self.device = next(self.model.parameters()).device
        self.optimizer = ZooOptimizer(self.model.parameters(), config)
        self.kl_warmup_steps = int(config.get("kl_warmup_steps", 0))
        self.steps = 0  # drives beta, as state["step"] does in the JAX task
        self.table_rows, self.first_caption = images.caption_table(config)
        self._loss, self._sample = self.loss, self.sample_images

    def beta(self) -> float:
        """`kl_weight` x zoo.objectives.vae.kl_beta at the step being taken."""
        ramp = 1.0 if self.kl_warmup_steps <= 0 else min(self.steps / self.kl_warmup_steps, 1.0)
        return float(self.config.get("kl_weight", 1.0)) * ramp

    def loss(self, x: torch.Tensor, cond: torch.Tensor, eps: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of recon + beta * KL (nats per image), with z = mu + sd * eps. `beta` is a
        tensor so the compiled loss is not specialised (and recompiled) for every warm-up value."""
        c = self.model.condition(cond)
        mu, logvar = self.model.encode(x, c)
        z = mu + torch.exp(0.5 * logvar) * eps
        recon = pixel_nll(self.model.likelihood, self.model.decode(z, c), x).mean()
        kl = self.model.kl(z, mu, logvar, c).mean()
        return recon + beta * kl

    def step(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        """One update on the JAX task's batch (`image` in the likelihood's scale, `cond`); the
        reparameterisation noise from torch's generator."""
        t = tensors(batch)
        x = images.nchw(t["image"]).to(self.device)
        eps = torch.randn(x.shape[0], self.model.latent_dim, device=self.device)
        return self.train_step(x, t["cond"].to(self.device), eps)

    def train_step(self, x: torch.Tensor, cond: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The step on NCHW images, cond rows and the reparameterisation noise (separate from `step` so a
        check can feed the noise the JAX step draws)."""
        beta = torch.tensor(self.beta(), device=self.device)
        with autocast(self.config, self.device):
            loss = self._loss(x, cond, eps, beta)
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        return loss.detach()

    def num_params(self) -> int:
        """Trainable parameters, the prior's Linear included when `conditional_prior`."""
        return count_params(self.model)

    def compile(self) -> None:
        """The whole forward + loss (encoder, decoder, prior, likelihood, KL) and the sampler through
        torch.compile."""
        self._loss = torch.compile(self.loss)
        self._sample = torch.compile(self.sample_images)

    def sample_images(self, cond: torch.Tensor, noise: torch.Tensor, gumbel: torch.Tensor) -> torch.Tensor:
        """ConvVAE.sample at temperature 1: a component by Gumbel-max with `gumbel` [B, K], then z from unit
        `noise`; the decoder's mean image (NCHW)."""
        c = self.model.condition(cond)
        log_weights, mu, logvar = self.model.prior(c)
        pick = (log_weights + gumbel).argmax(-1)[:, None, None].expand(-1, 1, mu.shape[-1])
        mu, logvar = mu.gather(1, pick)[:, 0], logvar.gather(1, pick)[:, 0]
        return self.model.mean(self.model.decode(mu + torch.exp(0.5 * logvar) * noise, c))

    def sample(self, count: int, seed: int) -> torch.Tensor:
        """`count` images [count, H, W, C] in [0, 1] from the (conditional) prior, the first caption of each
        class in turn, the noise seeded by `seed`."""
        cond = images.sample_conditions(self.table_rows, self.first_caption, count).to(self.device)
        gen = torch.Generator(self.device).manual_seed(seed)
        noise = torch.randn(count, self.model.latent_dim, generator=gen, device=self.device)
        uniform = torch.rand(count, self.model.components, generator=gen, device=self.device)
        gumbel = -torch.log(-torch.log(uniform.clamp_min(1e-20)))
        with torch.no_grad(), autocast(self.config, self.device):
            return images.nhwc(self._sample(cond, noise, gumbel))


def build(config: ml_collections.ConfigDict, dims: dict[str, Any], seed: int) -> VAETwin:
    """The twin of `zoo.models.build(ConvVAE, config, rngs, **dims)` and VAETask's optimizer
    (dims: VAETask.model_dims)."""
    return VAETwin(config, dims, seed)
