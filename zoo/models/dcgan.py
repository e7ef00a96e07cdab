"""A caption-conditioned DCGAN (Radford et al. 2016) with a projection discriminator, in Flax NNX.

Generator (32x32 shown; `image_size` = 4 * 2**k adds or removes up-sampling stages):

    cond [B, 384] --Linear--> c [B, cond_features]      (a learned projection of the caption embedding)
    [z ; c] --Linear--> 4x4x(4g) -> BN -> ReLU
            --ConvT 4x4 /2--> 8x8x(2g) -> BN -> ReLU --ConvT /2--> 16x16xg -> BN -> ReLU
            --ConvT /2--> 32x32xC -> tanh                (pixels in [-1, 1], like ImageBatches(scale="tanh"))

Discriminator (Radford: strided convolutions, LeakyReLU(0.2), no BatchNorm on the first layer):

    x --Conv 4x4 /2--> 16x16xd -> LReLU --Conv /2--> 8x8x(2d) -> BN -> LReLU --Conv /2--> 4x4x(4d) -> BN
      -> LReLU = phi(x), flattened [B, 64d]
    logit = psi(phi(x)) + <embed(cond), phi(x)>          (projection discriminator, Miyato & Koyama 2018)

Conditioning. G sees the caption by concatenation at its input (a conditional DCGAN's usual form). D is a
PROJECTION discriminator: with an optimal D, logit = log p(x|y)/q(x|y) + log p(y)/q(y), and writing the
class-conditional part as an inner product of a condition embedding with the image features is the form that
log-linear model implies. Here `embed` is a linear map of the 384-d caption embedding (not a class lookup),
so captions of one class that embed nearby get nearby projections, and a free prompt embedding has a
meaning too. Concatenating cond to D's input (or its features) lets D ignore the condition more easily;
Miyato & Koyama measured projection ahead of concatenation on class-conditional ImageNet/CIFAR. It works
here: the embedded model's samples are classified as the prompted class 93% of the time by an independent
classifier whose own accuracy on real test images is 90% (zoo/pretrained/dcgan/README.md has the per-class figures).
The zoo has no concatenating D to compare with: the choice rests on Miyato & Koyama's comparison.

Normalisation. G's BatchNorm keeps running statistics (`nnx.BatchStat`, momentum 0.9 = PyTorch's 0.1):
training normalises with batch statistics and updates them; sampling (`train=False`) uses the running
averages, so one sample does not depend on the others in its batch and `generate` is deterministic.
D's BatchNorm (`_BatchNormNoStats`) always normalises with the statistics of the batch it is given (real
and fake go through D as separate batches, as in Radford's reference code) and keeps no running averages:
D is never used one example at a time (sampling needs only G), so its whole state is `nnx.Param`s.
An optional `mask` [B] restricts D's batch statistics to the real rows of a padded evaluation batch.

Initialisation follows Radford: conv/dense kernels N(0, 0.02), BatchNorm scales N(1, 0.02).
Like the other models, the module holds no RNG state: the noise z is an input.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.layers.conv import ConvTranspose

_KERNEL_INIT = nnx.initializers.normal(stddev=0.02)


def _scale_init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def _stages(image_size: int) -> int:
    """Stride-2 stages between 4x4 and `image_size` (3 for 32x32)."""
    stages = int(round(math.log2(image_size / 4))) if image_size >= 8 else 0
    if stages < 1 or 4 * 2**stages != image_size:
        raise ValueError(f"image_size must be 4 * 2**k with k >= 1 (8, 16, 32, 64 ...), got {image_size}")
    return stages


class _BatchNormNoStats(nnx.Module):
    """Batch normalisation over all axes but the last, with learned scale and bias and no running averages
    (always the statistics of the batch, over the rows where `mask` [B] is 1). Statistics in float32."""

    def __init__(self, features: int, dtype: Any, *, rngs: nnx.Rngs, epsilon: float = 1e-5):
        self.scale = nnx.Param(_scale_init(rngs.params(), (features,)))
        self.bias = nnx.Param(jnp.zeros((features,), jnp.float32))
        self.dtype, self.epsilon = dtype, epsilon

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        x32 = x.astype(jnp.float32)
        axes = tuple(range(x.ndim - 1))
        if mask is None:
            mean = x32.mean(axes)
            var = jnp.square(x32 - mean).mean(axes)
        else:
            w = mask.astype(jnp.float32).reshape((-1,) + (1,) * (x.ndim - 1))
            count = jnp.maximum(w.sum() * math.prod(x.shape[1:-1]), 1.0)
            mean = (x32 * w).sum(axes) / count
            var = (jnp.square(x32 - mean) * w).sum(axes) / count
        y = (x32 - mean) * jax.lax.rsqrt(var + self.epsilon) * self.scale[...] + self.bias[...]
        return y.astype(self.dtype)


class Generator(nnx.Module):
    """(z [B, z_dim], cond [B, cond_dim]) -> images float32 [B, S, S, C] in [-1, 1]."""

    def __init__(self, *, z_dim: int, cond_dim: int, cond_features: int, features: int, channels: int,
                 image_size: int, dtype: Any, rngs: nnx.Rngs):
        stages = _stages(image_size)
        widths = [features * 2**i for i in reversed(range(stages))]  # 32x32, g=32: [128, 64, 32]
        self.dtype, self.widths = dtype, tuple(widths)  # a tuple: the graphdef must hash (jit static)
        self.cond_proj = nnx.Linear(cond_dim, cond_features, dtype=dtype, kernel_init=_KERNEL_INIT, rngs=rngs)
        self.fc = nnx.Linear(z_dim + cond_features, 16 * widths[0], use_bias=False, dtype=dtype,
                             kernel_init=_KERNEL_INIT, rngs=rngs)
        outs = widths[1:] + [channels]
        # float32, not `dtype`: nnx.BatchNorm casts its running statistics to its dtype and, with them
        # (sampling, eval), normalises in it; the ConvTranspose after it casts to the compute dtype again.
        self.bns = nnx.List([nnx.BatchNorm(w, momentum=0.9, epsilon=1e-5, dtype=jnp.float32,
                                           scale_init=_scale_init, rngs=rngs) for w in widths])
        self.ups = nnx.List([
            ConvTranspose(w_in, w_out, (4, 4), strides=(2, 2), padding="SAME", use_bias=i == stages - 1,
                              dtype=dtype, kernel_init=_KERNEL_INIT, rngs=rngs)
            for i, (w_in, w_out) in enumerate(zip(widths, outs, strict=True))])

    def __call__(self, z: jax.Array, cond: jax.Array, *, train: bool = False) -> jax.Array:
        c = self.cond_proj(cond.astype(self.dtype))
        h = self.fc(jnp.concatenate([z.astype(self.dtype), c], axis=-1))
        h = h.reshape(z.shape[0], 4, 4, self.widths[0])
        for bn, up in zip(self.bns, self.ups, strict=True):
            h = up(jax.nn.relu(bn(h, use_running_average=not train)))
        return jnp.tanh(h.astype(jnp.float32))


class Discriminator(nnx.Module):
    """(x [B, S, S, C], cond [B, cond_dim]) -> float32 logits [B] (projection discriminator)."""

    def __init__(self, *, cond_dim: int, features: int, channels: int, image_size: int, dtype: Any,
                 rngs: nnx.Rngs):
        stages = _stages(image_size)
        widths = [features * 2**i for i in range(stages)]  # 32x32, d=32: [32, 64, 128]
        ins = [channels] + widths[:-1]
        self.dtype = dtype
        self.convs = nnx.List([
            nnx.Conv(w_in, w_out, (4, 4), strides=(2, 2), padding="SAME", use_bias=i == 0, dtype=dtype,
                     kernel_init=_KERNEL_INIT, rngs=rngs)
            for i, (w_in, w_out) in enumerate(zip(ins, widths, strict=True))])
        # Radford: no BatchNorm on the first layer (it would normalise away the pixel statistics D must see).
        self.bns = nnx.List([_BatchNormNoStats(w, dtype, rngs=rngs) for w in widths[1:]])
        phi_dim = 16 * widths[-1]
        self.psi = nnx.Linear(phi_dim, 1, dtype=dtype, kernel_init=_KERNEL_INIT, rngs=rngs)
        self.embed = nnx.Linear(cond_dim, phi_dim, use_bias=False, dtype=dtype, kernel_init=_KERNEL_INIT,
                                rngs=rngs)

    def features(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """phi(x): the last convolutional features, flattened [B, 16 * widths[-1]]."""
        h = x.astype(self.dtype)
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i > 0:
                h = self.bns[i - 1](h, mask)
            h = jax.nn.leaky_relu(h, 0.2)
        return h.reshape(h.shape[0], -1)

    def __call__(self, x: jax.Array, cond: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        phi = self.features(x, mask)
        projection = jnp.sum(self.embed(cond.astype(self.dtype)).astype(jnp.float32) * phi.astype(jnp.float32),
                             axis=-1)
        return self.psi(phi).astype(jnp.float32)[:, 0] + projection


class DCGAN(nnx.Module):
    """Both networks of the conditional DCGAN; the objective (zoo.objectives.dcgan) trains them, sampling
    needs only `generator` (its params and BatchNorm statistics).

    Dimensions from the data: `channels` (1 for grey), `image_size` (32 for padded Fashion-MNIST),
    `cond_dim` (384, the text encoder's). From the config: `z_dim`, `cond_features` (G's caption projection),
    `g_features` / `d_features` (the widths of G's last and D's first convolution; each stage doubles/halves).
    """

    def __init__(self, *, z_dim: int = 64, cond_features: int = 32, g_features: int = 32, d_features: int = 32,
                 channels: int = 1, image_size: int = 32, cond_dim: int = 384, dtype: Any = jnp.float32,
                 rngs: nnx.Rngs):
        for name, value in (("z_dim", z_dim), ("cond_features", cond_features), ("g_features", g_features),
                            ("d_features", d_features), ("channels", channels), ("cond_dim", cond_dim)):
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        self.z_dim, self.channels, self.image_size, self.cond_dim = z_dim, channels, image_size, cond_dim
        self.generator = Generator(z_dim=z_dim, cond_dim=cond_dim, cond_features=cond_features,
                                   features=g_features, channels=channels, image_size=image_size, dtype=dtype,
                                   rngs=rngs)
        self.discriminator = Discriminator(cond_dim=cond_dim, features=d_features, channels=channels,
                                           image_size=image_size, dtype=dtype, rngs=rngs)

    def generate(self, z: jax.Array, cond: jax.Array, *, train: bool = False) -> jax.Array:
        """z [B, z_dim], cond [B, cond_dim] -> float32 images [B, S, S, C] in [-1, 1]. `train=True`
        normalises with batch statistics and updates G's running averages."""
        return self.generator(z, cond, train=train)

    def sample(self, cond: jax.Array, key: jax.Array, temperature: float = 1.0) -> jax.Array:
        """Images for captions: z ~ N(0, temperature^2 I) -> float32 [B, S, S, C] in [0, 1] (the sampling
        interface every image family shares), with G's running BatchNorm statistics."""
        z = temperature * jax.random.normal(key, (cond.shape[0], self.z_dim), jnp.float32)
        return (self.generate(z, cond) + 1.0) / 2.0

    def discriminate(self, x: jax.Array, cond: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """x [B, S, S, C] in [-1, 1], cond [B, cond_dim] -> float32 logits [B] (> 0: judged real)."""
        return self.discriminator(x, cond, mask)
