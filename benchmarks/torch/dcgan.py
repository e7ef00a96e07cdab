"""PyTorch twin of the `dcgan` family: zoo/models/dcgan.py trained as zoo/objectives/dcgan.py trains it.

Architecture (32x32, g = d = 32): G maps [z ; Linear(cond)] through a bias-free Linear to 4x4x128, then
(BatchNorm -> ReLU -> ConvTranspose 4x4 /2) three times to 32x32xC and tanh; only the last transposed
convolution has a bias. D: Conv 4x4 /2 (bias, no BatchNorm) -> LReLU(0.2), then (Conv /2 without bias ->
BatchNorm -> LReLU) to 4x4x128 = phi; logit = psi(phi) + <embed(cond), phi> (projection discriminator).
Layout: NCHW inside (torch's fast path); the Flax model flattens/reshapes NHWC, which only permutes the rows
of fc, psi and embed (same function class, same initial distribution; a weight copy permutes them).

Normalisation, as Flax does it: G's nnx.BatchNorm(momentum=0.9, epsilon=1e-5) keeps running averages,
running = 0.9 running + 0.1 batch, i.e. torch momentum=0.1; training normalises with the batch, sampling
(eval mode) with the running averages. One difference torch cannot switch off: torch blends the UNBIASED
batch variance into running_var, Flax the biased one (a factor n / (n - 1), n = B*H*W >= 1024 at batch 64:
<= 0.1%, sampling only). D's `_BatchNormNoStats` always uses the statistics of the batch it is given and
keeps none: BatchNorm2d(track_running_stats=False) is exactly that, in train and eval mode alike.

Initialisation (Radford): every conv/dense kernel N(0, 0.02), biases 0, BatchNorm scales N(1, 0.02).

The step is the JAX step's order: G forward ONCE (train mode: batch statistics, running averages updated);
D's loss on the real batch and on the detached fakes (two separate D batches, so D's BatchNorm sees each
alone), D's optimizer step; then G's loss through the UPDATED D on the same fakes, its gradient pulled back
through the saved G graph (`backward(inputs=G's params)`: no gradient for D, as `jax.vjp` on the images).
Both optimizers are zoo.train.optim.make_optimizer(config) (configs/dcgan.py: Adam b1 0.5, b2 0.999, lr 2e-4
constant, no clipping, no weight decay): ZooOptimizer twice.

The JAX batches carry `caption_id` only (the task gathers cond rows from its 61 x 384 caption table inside
the jitted step), so the twin loads the same table (zoo.text.captions' disk cache) and gathers on the device.
"""

from __future__ import annotations

import math
from typing import Any

import ml_collections
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.torch import images
from benchmarks.torch.common import ZooOptimizer, autocast, count_params, tensors

LOSSES = ("nonsaturating", "hinge")


def _stages(image_size: int) -> int:
    """Stride-2 stages between 4x4 and `image_size` (zoo.models.dcgan._stages)."""
    stages = int(round(math.log2(image_size / 4))) if image_size >= 8 else 0
    if stages < 1 or 4 * 2**stages != image_size:
        raise ValueError(f"image_size must be 4 * 2**k with k >= 1 (8, 16, 32, 64 ...), got {image_size}")
    return stages


def _radford_init(module: nn.Module) -> None:
    """Radford's initialisation, as the Flax model's `_KERNEL_INIT` / `_scale_init`: kernels N(0, 0.02),
    biases 0, normalisation scales N(1, 0.02) and offsets 0."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """(z [B, z_dim], cond [B, cond_dim]) -> images [B, C, S, S] in [-1, 1] (zoo.models.dcgan.Generator)."""

    def __init__(self, *, z_dim: int, cond_dim: int, cond_features: int, features: int, channels: int,
                 image_size: int):
        super().__init__()
        stages = _stages(image_size)
        widths = [features * 2**i for i in reversed(range(stages))]
        self.base = widths[0]
        self.cond_proj = nn.Linear(cond_dim, cond_features)
        self.fc = nn.Linear(z_dim + cond_features, 16 * widths[0], bias=False)
        outs = widths[1:] + [channels]
        self.bns = nn.ModuleList([nn.BatchNorm2d(w, eps=1e-5, momentum=0.1) for w in widths])
        self.ups = nn.ModuleList([images.SameConvTranspose2d(w_in, w_out, 4, 2, bias=i == stages - 1)
                                  for i, (w_in, w_out) in enumerate(zip(widths, outs, strict=True))])

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, self.cond_proj(cond)], dim=-1)).view(z.shape[0], self.base, 4, 4)
        for bn, up in zip(self.bns, self.ups, strict=True):
            h = up(F.relu(bn(h)))
        return torch.tanh(h.float())


class Discriminator(nn.Module):
    """(x [B, C, S, S], cond [B, cond_dim]) -> float32 logits [B] (zoo.models.dcgan.Discriminator)."""

    def __init__(self, *, cond_dim: int, features: int, channels: int, image_size: int):
        super().__init__()
        stages = _stages(image_size)
        widths = [features * 2**i for i in range(stages)]
        ins = [channels] + widths[:-1]
        self.convs = nn.ModuleList([images.SameConv2d(w_in, w_out, 4, 2, bias=i == 0)
                                    for i, (w_in, w_out) in enumerate(zip(ins, widths, strict=True))])
        # No BatchNorm on the first layer (Radford); the others always normalise with the batch's statistics.
        self.bns = nn.ModuleList([nn.BatchNorm2d(w, eps=1e-5, track_running_stats=False) for w in widths[1:]])
        phi_dim = 16 * widths[-1]
        self.psi = nn.Linear(phi_dim, 1)
        self.embed = nn.Linear(cond_dim, phi_dim, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x) flattened [B, 16 * widths[-1]] (channel-major: the NCHW order)."""
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i > 0:
                h = self.bns[i - 1](h)
            h = F.leaky_relu(h, 0.2)
        return h.flatten(1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        phi = self.features(x)
        projection = (self.embed(cond).float() * phi.float()).sum(-1)
        return self.psi(phi).float()[:, 0] + projection


def adversarial_losses(kind: str, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(D's loss, G's loss) from real and fake logits [B] (zoo.objectives.dcgan.adversarial_losses, unweighted)."""
    if kind == "hinge":
        return (F.relu(1.0 - real) + F.relu(1.0 + fake)).mean(), (-fake).mean()
    return (F.softplus(-real) + F.softplus(fake)).mean(), F.softplus(-fake).mean()


class DCGANTwin:
    """The conditional DCGAN and its two optimizers; `step` is one JAX `GANTask.train_step`.

    `step` returns D's loss (the GAN step logs no `loss`; its metrics are d_loss, g_loss, ...): both are in
    `metrics` after each step, detached."""

    def __init__(self, config: ml_collections.ConfigDict, dims: dict[str, Any], seed: int):
        torch.manual_seed(seed)
        m = config.model
        self.config, self.z_dim = config, int(m.get("z_dim", 64))
        self.loss_kind = config.get("loss", "nonsaturating")
        if self.loss_kind not in LOSSES:
            raise ValueError(f"unknown GAN loss {self.loss_kind!r}: use {' or '.join(LOSSES)}")
        channels, image_size = int(dims.get("channels", 1)), int(dims.get("image_size", 32))
        cond_dim = int(dims.get("cond_dim", 384))
        self.generator = Generator(z_dim=self.z_dim, cond_dim=cond_dim, cond_features=int(m.get("cond_features", 32)),
                                   features=int(m.get("g_features", 32)), channels=channels, image_size=image_size)
        self.discriminator = Discriminator(cond_dim=cond_dim, features=int(m.get("d_features", 32)),
                                           channels=channels, image_size=image_size)
        _radford_init(self.generator)
        _radford_init(self.discriminator)
        self.device = next(self.generator.parameters()).device
        self.g_opt = ZooOptimizer(self.generator.parameters(), config)
        self.d_opt = ZooOptimizer(self.discriminator.parameters(), config)
        self.table_rows, self.first_caption = images.caption_table(config)
        self.table = torch.from_numpy(self.table_rows).to(self.device)
        self.metrics: dict[str, torch.Tensor] = {}
        self._generate, self._d_loss, self._g_loss = self.generator, self.d_loss, self.g_loss

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """D's loss; real and fake go through D as separate batches (each its own BatchNorm statistics)."""
        return adversarial_losses(self.loss_kind, self.discriminator(real, cond), self.discriminator(fake, cond))[0]

    def g_loss(self, fake: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """G's loss as a function of its images (through whatever D is now: the updated one in a step)."""
        logits = self.discriminator(fake, cond)
        return adversarial_losses(self.loss_kind, logits, logits)[1]

    def step(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        """One D and one G update on the JAX task's batch (cond gathered from the caption table by
        `caption_id`, or taken from `cond` if a batch carries it); z ~ N(0, I) from torch's generator."""
        t = tensors(batch)
        real = images.nchw(t["image"]).to(self.device)
        cond = t["cond"].to(self.device) if "cond" in t else self.table[t["caption_id"].to(self.device)]
        z = torch.randn(real.shape[0], self.z_dim, device=self.device)
        return self.train_step(real, cond, z)

    def train_step(self, real: torch.Tensor, cond: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The step on NCHW images, cond rows and the noise (separate from `step` so a check can feed the
        noise the JAX step draws)."""
        self.generator.train()
        with autocast(self.config, self.device):
            fake = self._generate(z, cond)
            d_loss = self._d_loss(real, fake.detach(), cond)
        d_loss.backward()
        self.d_opt.step()
        with autocast(self.config, self.device):
            g_loss = self._g_loss(fake, cond)  # through the updated D
        g_loss.backward(inputs=self.g_opt.params)
        self.g_opt.step()
        self.metrics = {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}
        return self.metrics["d_loss"]

    def num_params(self) -> int:
        """G's and D's trainable parameters (the JAX count is g_params + d_params)."""
        return count_params(self.generator, self.discriminator)

    def compile(self) -> None:
        """G's forward and both losses (each with its D passes) through torch.compile; sampling uses the
        compiled G too (one more graph, for eval mode)."""
        self._generate = torch.compile(self.generator)
        self._d_loss = torch.compile(self.d_loss)
        self._g_loss = torch.compile(self.g_loss)

    def sample(self, count: int, seed: int) -> torch.Tensor:
        """`count` images [count, S, S, C] in [0, 1] (DCGAN.sample): z ~ N(0, I) seeded by `seed`, the first
        caption of each class in turn, G in eval mode (its running BatchNorm statistics)."""
        cond = images.sample_conditions(self.table_rows, self.first_caption, count).to(self.device)
        gen = torch.Generator(self.device).manual_seed(seed)
        z = torch.randn(count, self.z_dim, generator=gen, device=self.device)
        self.generator.eval()
        try:
            with torch.no_grad(), autocast(self.config, self.device):
                fake = self._generate(z, cond)
        finally:
            self.generator.train()
        return images.nhwc((fake + 1.0) / 2.0)


def build(config: ml_collections.ConfigDict, dims: dict[str, Any], seed: int) -> DCGANTwin:
    """The twin of `zoo.models.build(DCGAN, config, rngs, **dims)` plus GANTask's optimizers
    (dims: GANTask.model_dims)."""
    return DCGANTwin(config, dims, seed)
