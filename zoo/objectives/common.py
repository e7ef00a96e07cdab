"""Pieces every single-model objective shares: the state layout and the gradient step."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from zoo import export
from zoo.text.conditions import with_style

PyTree = Any


def init_model_state(model: nnx.Module, tx: optax.GradientTransformation) -> dict[str, PyTree]:
    """{"params", "opt_state"} with params as a plain dict tree: Orbax- and optax-friendly, and what
    `nnx.merge(graphdef, params)` takes back."""
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    return {"params": params, "opt_state": tx.init(params)}


def top1_correct(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """`logits.argmax(-1) == targets` (bool, the shape of `targets`; ties go to the lowest index, as
    argmax's do), for a fraction of the cost on the CPU: argmax is a (value, index) reduction that XLA's CPU
    backend runs as a slow loop fusion (35 ms for the poem LM's logits at context 512), while this is one
    elementwise pass and a plain `any` reduction."""
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)
    index = jax.lax.broadcasted_iota(targets.dtype, logits.shape, logits.ndim - 1)
    ahead = (logits > target_logit) | ((logits == target_logit) & (index < targets[..., None]))
    return ~jnp.any(ahead, axis=-1)


def gradient_step(state: dict[str, PyTree], tx: optax.GradientTransformation,
                  loss_fn: Callable[[PyTree], tuple[jax.Array, dict[str, jax.Array]]],
                  ) -> tuple[dict[str, PyTree], dict[str, jax.Array]]:
    """One optimiser step on `loss_fn(params) -> (loss, aux metrics)`; adds loss and grad_norm."""
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **metrics}
    return {"params": params, "opt_state": opt_state}, metrics


class SingleModelTask:
    """The Task methods every one-model, one-optimizer family shares. Subclasses set `tx`, `train_data`
    and `val_data` (objects with `batch(step, pi, pc)` and `eval_batches(n, pi, pc)`, stateless in the
    step) and `eval_batch_count`, and write init_state, train_step, eval_step and save_assets."""

    tx: optax.GradientTransformation
    eval_batch_count: int

    def train_batch(self, step: int, process_index: int, process_count: int) -> dict[str, Any]:
        return self.train_data.batch(step, process_index, process_count)

    def eval_batches(self, process_index: int, process_count: int) -> Iterator[dict[str, Any]]:
        return self.val_data.eval_batches(self.eval_batch_count, process_index, process_count)

    def export_params(self, state: dict[str, PyTree]) -> PyTree:
        return state["params"]

    def load_params(self, state: dict[str, PyTree], params: PyTree) -> dict[str, PyTree]:
        return {"params": params, "opt_state": self.tx.init(params)}


class WithCaptionEmbeddings:
    """Batches (anything with `batch(step, pi, pc)` and `eval_batches(n, pi, pc)` whose batches carry
    `caption_id`) that also carry `cond` float32 [B, dim], the rows of a caption-embedding table, followed by
    a one-hot of the batch's `style` when the data has `num_styles` > 0 (zoo.text.conditions.with_style).
    Gathered on the host: a table of tens of thousands of captions would be a needlessly large constant in
    a jitted step."""

    def __init__(self, batches: Any, table: np.ndarray, num_styles: int = 0):
        self.batches, self.table, self.num_styles = batches, table, num_styles

    def __len__(self) -> int:
        return len(self.batches)

    def _add(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch["cond"] = with_style(self.table[batch["caption_id"]], batch.get("style"), self.num_styles)
        return batch

    def batch(self, step: int, process_index: int, process_count: int) -> dict[str, np.ndarray]:
        return self._add(self.batches.batch(step, process_index, process_count))

    def eval_batches(self, n: int, process_index: int, process_count: int) -> Iterator[dict[str, np.ndarray]]:
        return (self._add(b) for b in self.batches.eval_batches(n, process_index, process_count))


def image_reading(dataset: Any) -> dict[str, Any]:
    """How a sampler reads a prompt for a model of `dataset` (zoo.data.images.ImageDataset): for a dataset with
    words of its own (thousands of concepts), the prompt's own embedding conditions the model ("embedding"),
    and the model's artwork styles are named; for one of a few named classes, the prompt picks the nearest
    class ("class")."""
    if dataset.captions is None:
        return {"prompt_reading": "class"}
    return {"prompt_reading": "embedding", "styles": list(dataset.style_names)}


def save_image_assets(directory: str | os.PathLike, *, data: str, class_names: Sequence[str],
                      captions: Sequence[str], caption_classes: Sequence[int] | np.ndarray, embeddings: np.ndarray,
                      image_shape: Sequence[int], source_shape: Sequence[int], scale: str, model_dims: dict,
                      exported_module: str | None, **extra: Any) -> None:
    """What an image sampler (zoo.sample.images) needs besides the params, the one format of both image
    families (dcgan, vae): `images.json` (data, class names, the caption list and each caption's class, the
    model's image shape [H, W, C] and the data's own (to crop a padded sample back), the training pixel scale ("tanh" =
    [-1, 1], "unit"/"binary" = [0, 1]), `model_dims` (the data-dependent model arguments),
    `exported_module` (the submodule the exported params belong to, e.g. a GAN's "generator"; None = the
    whole model), and family extras) and `caption_embeddings.npy` (float16 [N, dim], row i = captions[i])."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    info = {"data": data, "class_names": list(class_names), "captions": list(captions),
            "caption_classes": [int(c) for c in caption_classes], "image_shape": [int(s) for s in image_shape],
            "source_shape": [int(s) for s in source_shape], "scale": scale, "model_dims": model_dims,
            "exported_module": exported_module, "embeddings": export.CAPTION_EMBEDDINGS, **extra}
    (directory / export.IMAGES).write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    np.save(directory / export.CAPTION_EMBEDDINGS, np.asarray(embeddings, np.float16))
