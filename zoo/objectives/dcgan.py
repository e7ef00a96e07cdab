"""Adversarial training of the caption-conditioned DCGAN (zoo.models.dcgan): the `dcgan` objective.

Data: an image dataset of zoo.data.images (`config.data`, Fashion-MNIST by default) padded to
`config.image_size` (28 -> 32) and scaled to [-1, 1]. Each class has several captions ("an ankle boot",
"a pair of ankle boots", ...); every caption is embedded once with the pretrained text encoder (cached on
disk) and each example is conditioned on the embedding of a caption of its class drawn at random per step
(the batch's `caption_id`). The table is tiny (61 x 384 for Fashion-MNIST), so the step gathers its rows
itself from a constant, and batches stay {"image", "label", "caption_id"}; a larger table, or data in several
artwork styles (emoji), is gathered on the host instead, and batches bring `cond` (caption embedding and
style one-hot).

State: {"g_params", "g_stats" (G's BatchNorm running averages), "d_params", "g_opt_state", "d_opt_state"},
two optimizers built by zoo.train.optim from the shared config keys (Radford: Adam, lr 2e-4, b1 0.5).

One jitted step updates D, then G, on the same noise z, with G run forward ONCE (as in Radford's and the
PyTorch reference code): its output, detached, is D's fake batch; after D's update, the gradient of G's loss
with respect to those images (through the NEW D) is pulled back through G's saved forward pass (`jax.vjp`).
G's BatchNorm statistics are those of that one pass.

Augmentation (`config.augment`, e.g. ("color", "translation", "cutout"); none by default): D sees real and
generated images through DiffAugment (zoo.objectives.augment), drawn afresh for D's real batch, its fake batch
and G's update; evaluation sees them as they are. It keeps D from memorising a small dataset (the emoji set).

Loss (`config.loss`): "nonsaturating" (default; Goodfellow et al.'s -log D(G(z)) form that DCGAN used):
    L_D = softplus(-D(x)) + softplus(D(G(z))),   L_G = softplus(-D(G(z)))
or "hinge" (Miyato & Koyama's, with the projection discriminator):
    L_D = relu(1 - D(x)) + relu(1 + D(G(z))),    L_G = -D(G(z)).
Non-saturating is the default because with configs/dcgan.py the hinge loss reaches the same conditional
accuracy and a worse classifier-feature Frechet distance (2.9 against 2.3).

Metrics: d_loss, g_loss, d_real / d_fake (mean logits on real and fake batches, before D's update),
d_accuracy (share of real logits > 0 and fake logits < 0), d_grad_norm, g_grad_norm. Evaluation on the test
split (weighted by the batch mask; G uses its running averages, i.e. exactly what sampling draws) adds
d_cond_accuracy: the share of real test images that D scores higher with a caption of their class than with
one of another class, i.e. whether D (and so G's training signal) uses the condition at all.
"""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from zoo.data import image_batches, image_captions
from zoo.data import images as image_data
from zoo.errors import UsageError
from zoo.models import build
from zoo.models.dcgan import DCGAN
from zoo.objectives.augment import augment
from zoo.objectives.augment import check as check_augment
from zoo.objectives.common import WithCaptionEmbeddings, image_reading, save_image_assets
from zoo.text.captions import embed_captions
from zoo.train.optim import make_optimizer
from zoo.train.task import EVAL_WEIGHT

log = logging.getLogger(__name__)

PyTree = Any
LOSSES = ("nonsaturating", "hinge")
EVAL_NOISE_SEED = 7  # eval draws the same z every time, so eval/g_loss of two checkpoints compare
HOST_GATHER_CAPTIONS = 1024  # a larger caption table is gathered on the host, not held as a jitted constant


def adversarial_losses(kind: str, real: jax.Array, fake: jax.Array, weights: jax.Array | None = None
                       ) -> tuple[jax.Array, jax.Array]:
    """(D's loss, G's loss) from real and fake logits [B], means weighted by `weights` [B] (default 1).
    G's loss here is for the same fake logits; training evaluates it after D's update."""
    w = jnp.ones_like(real) if weights is None else weights.astype(jnp.float32)
    mean = lambda v: (v * w).sum() / jnp.maximum(w.sum(), 1.0)  # noqa: E731
    if kind == "hinge":
        return mean(jax.nn.relu(1.0 - real) + jax.nn.relu(1.0 + fake)), mean(-fake)
    return mean(jax.nn.softplus(-real) + jax.nn.softplus(fake)), mean(jax.nn.softplus(-fake))


def merge_trees(a: dict, b: dict) -> dict:
    """Two nested dicts with disjoint leaves (e.g. G's params and its BatchNorm statistics) as one."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merge_trees(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def select_like(tree: dict, like: dict) -> dict:
    """The part of the nested dict `tree` whose keys are those of `like` (the inverse of `merge_trees`)."""
    return {k: select_like(tree[k], v) if isinstance(v, dict) else tree[k] for k, v in like.items()}


class GANTask:
    """Data, state and steps of the conditional DCGAN for the shared loop (zoo.train.task.Task)."""

    family = "dcgan"

    def __init__(self, config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
        self.config = config
        self.loss_kind = config.get("loss", "nonsaturating")
        if self.loss_kind not in LOSSES:
            raise UsageError(f"unknown GAN loss {self.loss_kind!r}: use {' or '.join(LOSSES)}")
        try:  # DiffAugment (zoo.objectives.augment): what D sees of real and generated images in training
            self.augment = check_augment(config.get("augment", ()))
        except ValueError as e:
            raise UsageError(f"--config.augment: {e}") from None
        self.dataset = image_data.load_images(config.data)
        h, w, c = self.dataset.image_shape
        self.image_size = int(config.get("image_size", 32))
        if max(h, w) > self.image_size:
            raise UsageError(f"{config.data} images are {h}x{w}, larger than image_size={self.image_size}")
        captions_per_class = image_captions.class_captions(self.dataset)
        self.captions, self.caption_classes = image_captions.caption_table(captions_per_class)
        self.embeddings = embed_captions(self.captions)  # float16 [N, 384]
        self.table = np.asarray(self.embeddings, np.float32)  # a numpy constant of the jitted steps
        # For d_cond_accuracy: each example is also scored with the first caption of another class.
        self.first_caption = np.searchsorted(self.caption_classes, np.arange(self.dataset.num_classes))
        d = self.dataset
        self.num_styles = len(d.style_names)
        try:
            self.train_data = image_batches.ImageBatches(
                d.train_images, d.train_labels, captions_per_class, config.batch_size, config.seed, scale="tanh",
                pad_to=self.image_size, styles=d.train_styles)
            self.val_data = image_batches.ImageBatches(
                d.test_images, d.test_labels, captions_per_class, config.batch_size, config.seed, scale="tanh",
                pad_to=self.image_size, styles=d.test_styles)
        except ValueError as e:
            raise UsageError(f"image data {config.data!r}: {e}") from None
        if self.num_styles or len(self.captions) > HOST_GATHER_CAPTIONS:  # batches bring their `cond` rows
            self.train_data = WithCaptionEmbeddings(self.train_data, self.embeddings, self.num_styles)
            self.val_data = WithCaptionEmbeddings(self.val_data, self.embeddings, self.num_styles)
        self.eval_batch_count = config.get("eval_batches", 8)
        self.tx = make_optimizer(config)  # one (stateless) transformation, two optimizer states
        abstract = nnx.eval_shape(lambda: self._build(nnx.Rngs(0)))
        self.z_dim = abstract.z_dim
        self.g_def = nnx.graphdef(abstract.generator)
        self.d_def = nnx.graphdef(abstract.discriminator)
        log.info("%s: %d train / %d test images %dx%dx%d (padded to %d), %d classes, %d captions, %s loss",
                 config.data, len(self.train_data), len(self.val_data), h, w, c, self.image_size,
                 self.dataset.num_classes, len(self.captions), self.loss_kind)

    @property
    def model_dims(self) -> dict:
        """The data-dependent constructor arguments (what `zoo.models.build` takes as **dims)."""
        return {"channels": int(self.dataset.image_shape[2]), "image_size": int(self.image_size),
                "cond_dim": int(self.embeddings.shape[1]) + self.num_styles}

    def _build(self, rngs: nnx.Rngs) -> nnx.Module:
        return build(DCGAN, self.config, rngs, **self.model_dims)

    # ------------------------------------------------------------------------------------------ state

    def init_state(self, key: jax.Array) -> dict[str, PyTree]:
        model = self._build(nnx.Rngs(params=key))
        g_params = nnx.to_pure_dict(nnx.state(model.generator, nnx.Param))
        d_params = nnx.to_pure_dict(nnx.state(model.discriminator, nnx.Param))
        return {"g_params": g_params, "g_stats": nnx.to_pure_dict(nnx.state(model.generator, nnx.BatchStat)),
                "d_params": d_params, "g_opt_state": self.tx.init(g_params), "d_opt_state": self.tx.init(d_params)}

    def _generate(self, g_params: PyTree, g_stats: PyTree, z: jax.Array, cond: jax.Array, train: bool
                  ) -> tuple[jax.Array, PyTree]:
        """(images, G's BatchNorm statistics after the call: updated iff `train`)."""
        generator = nnx.merge(self.g_def, g_params, g_stats)
        images = generator(z, cond, train=train)
        return images, nnx.to_pure_dict(nnx.state(generator, nnx.BatchStat))

    def _discriminate(self, d_params: PyTree, images: jax.Array, cond: jax.Array,
                      mask: jax.Array | None = None) -> jax.Array:
        return nnx.merge(self.d_def, d_params)(images, cond, mask)

    # ------------------------------------------------------------------------------------------ steps

    def train_step(self, state: dict[str, PyTree], batch: dict[str, jax.Array], key: jax.Array
                   ) -> tuple[dict[str, PyTree], dict[str, jax.Array]]:
        real = batch["image"]
        cond = self._cond(batch)
        real_key = fake_key = g_key = None  # keys for the augmentations; without them z is drawn as it always was
        if self.augment:
            key, real_key, fake_key, g_key = jax.random.split(key, 4)
        z = jax.random.normal(key, (real.shape[0], self.z_dim), jnp.float32)
        seen = lambda images, k: augment(images, k, self.augment) if self.augment else images  # noqa: E731

        # G forward once; its pullback is kept for G's update below.
        fake, g_pullback, g_stats = jax.vjp(lambda p: self._generate(p, state["g_stats"], z, cond, True),
                                            state["g_params"], has_aux=True)

        def d_loss_fn(d_params: PyTree) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
            real_logits = self._discriminate(d_params, seen(real, real_key), cond)
            fake_logits = self._discriminate(d_params, seen(jax.lax.stop_gradient(fake), fake_key), cond)
            return adversarial_losses(self.loss_kind, real_logits, fake_logits)[0], (real_logits, fake_logits)

        (d_loss, (real_logits, fake_logits)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
            state["d_params"])
        d_updates, d_opt_state = self.tx.update(d_grads, state["d_opt_state"], state["d_params"])
        d_params = optax.apply_updates(state["d_params"], d_updates)

        def g_loss_fn(images: jax.Array) -> jax.Array:  # G's loss as a function of its images, through new D
            logits = self._discriminate(d_params, seen(images, g_key), cond)
            return adversarial_losses(self.loss_kind, logits, logits)[1]

        g_loss, image_grads = jax.value_and_grad(g_loss_fn)(fake)
        (g_grads,) = g_pullback(image_grads)
        g_updates, g_opt_state = self.tx.update(g_grads, state["g_opt_state"], state["g_params"])
        g_params = optax.apply_updates(state["g_params"], g_updates)

        new_state = {"g_params": g_params, "g_stats": g_stats, "d_params": d_params,
                     "g_opt_state": g_opt_state, "d_opt_state": d_opt_state}
        metrics = {"d_loss": d_loss, "g_loss": g_loss, "d_real": real_logits.mean(), "d_fake": fake_logits.mean(),
                   "d_accuracy": 0.5 * ((real_logits > 0).mean() + (fake_logits < 0).mean()),
                   "d_grad_norm": optax.tree.norm(d_grads), "g_grad_norm": optax.tree.norm(g_grads)}
        return new_state, metrics

    def eval_step(self, state: dict[str, PyTree], batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
        real, mask = batch["image"], batch["mask"].astype(jnp.float32)
        cond = self._cond(batch)
        z = jax.random.normal(jax.random.PRNGKey(EVAL_NOISE_SEED), (real.shape[0], self.z_dim), jnp.float32)
        fake, _ = self._generate(state["g_params"], state["g_stats"], z, cond, False)  # as sampling draws
        real_logits = self._discriminate(state["d_params"], real, cond, mask)
        fake_logits = self._discriminate(state["d_params"], fake, cond, mask)
        d_loss, g_loss = adversarial_losses(self.loss_kind, real_logits, fake_logits, mask)
        # The same real images under a caption of another class: with a constant table, class + 1 + row mod
        # (K - 1), never its own; with host-gathered conditions, the next row's (pairs of one class left out).
        if "cond" in batch:
            wrong_cond = jnp.roll(cond, 1, axis=0)
            pair = mask * (batch["label"] != jnp.roll(batch["label"], 1)).astype(jnp.float32)
        else:
            k = self.dataset.num_classes
            other = (batch["label"] + 1 + jnp.arange(real.shape[0]) % max(k - 1, 1)) % k
            wrong_cond = jnp.asarray(self.table)[jnp.asarray(self.first_caption)[other]]
            pair = mask
        wrong_logits = self._discriminate(state["d_params"], real, wrong_cond, mask)
        mean = lambda v, w=mask: (v * w).sum() / jnp.maximum(w.sum(), 1.0)  # noqa: E731
        return {"d_loss": d_loss, "g_loss": g_loss, "d_real": mean(real_logits), "d_fake": mean(fake_logits),
                "d_accuracy": 0.5 * (mean(real_logits > 0) + mean(fake_logits < 0)),
                "d_cond_accuracy": mean(real_logits > wrong_logits, pair), EVAL_WEIGHT: mask.sum()}

    def _cond(self, batch: dict[str, jax.Array]) -> jax.Array:
        """The batch's conditions: gathered on the host (`cond`), else rows of the constant caption table."""
        return batch["cond"] if "cond" in batch else jnp.asarray(self.table)[batch["caption_id"]]

    # ------------------------------------------------------------------------------------ data, export

    def train_batch(self, step: int, process_index: int, process_count: int) -> dict[str, np.ndarray]:
        return self.train_data.batch(step, process_index, process_count)

    def eval_batches(self, process_index: int, process_count: int) -> Iterator[dict[str, np.ndarray]]:
        return self.val_data.eval_batches(self.eval_batch_count, process_index, process_count)

    def export_params(self, state: dict[str, PyTree]) -> PyTree:
        """The generator only: `nnx.state(model.generator)` as a pure dict (params AND BatchNorm
        statistics, in the module's own layout), so a sampler does `nnx.update(model.generator, params)`."""
        return merge_trees(state["g_params"], state["g_stats"])

    def load_params(self, state: dict[str, PyTree], params: PyTree) -> dict[str, PyTree]:
        """`state` with the generator replaced by exported `params` (its optimizer state reset); D is kept."""
        g_params = select_like(params, state["g_params"])
        return {**state, "g_params": g_params, "g_stats": select_like(params, state["g_stats"]),
                "g_opt_state": self.tx.init(g_params)}

    def save_assets(self, directory: pathlib.Path, params: dict) -> None:
        save_image_assets(
            directory, data=self.config.data, class_names=self.dataset.class_names, captions=self.captions,
            caption_classes=self.caption_classes, embeddings=self.embeddings,
            image_shape=(self.image_size, self.image_size, self.dataset.image_shape[2]),
            source_shape=self.dataset.image_shape, scale="tanh", model_dims=self.model_dims,
            exported_module="generator", z_dim=self.z_dim, **image_reading(self.dataset))


def build_task(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> GANTask:
    return GANTask(config, workdir)
