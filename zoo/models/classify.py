"""Classifiers: the critics' models, trained on the one loop like every generator (the `classify` family).

- `TextClassifier`: a pretrained encoder under a linear head on its mean-pooled states, fine-tuned: the
  sentence encoder all-MiniLM-L6-v2 for English, the zoo's own Tang GPT (`poem-zh`) for Chinese, whose
  character vocabulary MiniLM's lacks (it holds 2.7% of the Tang corpus's characters). Only the top
  `trainable_layers` blocks and the head train: the export then holds those alone (a few MB) and the frozen
  rest is read back from where it came from (zoo.export.load_classifier).
- `ImageClassifier`: a small all-convolutional network, trained from scratch, built to differ from the
  image judge of benchmarks/image_classifier.py (strided convolutions and global pooling, not max-pooling
  and a dense layer), so that a critic and its judge do not share one set of blind spots.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.layers.dropout import Dropout
from zoo.models.lm import GPT
from zoo.text.encoder import MiniLM, MiniLMConfig

BACKBONES = ("minilm", "gpt")


class TextClassifier(nnx.Module):
    """Token ids [B, T] with a mask [B, T] (1 = real token) -> float32 logits [B, num_classes].

    `encoder` holds the backbone's own arguments: MiniLMConfig fields for "minilm" (defaults: the released
    model's), GPT arguments for "gpt" (the base LM's config.model)."""

    def __init__(self, *, backbone: str, num_classes: int, encoder: dict[str, Any] | None = None,
                 trainable_layers: int = 1, dropout: float = 0.1, dtype: Any = jnp.float32, rngs: nnx.Rngs):
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {BACKBONES}")
        encoder = dict(encoder or {})
        self.backbone = backbone
        if backbone == "minilm":
            self.encoder = MiniLM(MiniLMConfig(**encoder), rngs=rngs)
            width, depth = self.encoder.config.hidden_size, self.encoder.config.num_hidden_layers
        else:
            encoder["dropout"] = 0.0  # the head's dropout regularises; the frozen blocks must stay as trained
            self.encoder = GPT(**encoder, dtype=dtype, rngs=rngs)
            width, depth = self.encoder.embed_dim, self.encoder.num_layers
        if not 0 <= trainable_layers <= depth:
            raise ValueError(f"trainable_layers={trainable_layers} outside [0, {depth}]")
        self.depth, self.trainable_layers = depth, trainable_layers
        self.norm = nnx.LayerNorm(width, rngs=rngs)
        self.drop = Dropout(dropout)
        self.head = nnx.Linear(width, num_classes, rngs=rngs)

    def __call__(self, tokens: jax.Array, mask: jax.Array, *, deterministic: bool = True,
                 rngs: nnx.Rngs | None = None) -> jax.Array:
        if self.backbone == "minilm":
            states = self.encoder(tokens, mask)
        else:  # causal: padding on the right never reaches a real token's state
            states = self.encoder.hidden(tokens)
        weights = mask.astype(jnp.float32)[..., None]
        pooled = (states.astype(jnp.float32) * weights).sum(1) / jnp.maximum(weights.sum(1), 1.0)
        pooled = self.drop(self.norm(pooled), deterministic=deterministic, rngs=rngs)
        return self.head(pooled).astype(jnp.float32)

    def is_trainable(self, path: Sequence[Any]) -> bool:
        """Whether the parameter at `path` (a key path of the pure param dict) is fine-tuned: the head, the
        pooled-state norm and the top `trainable_layers` encoder blocks."""
        if path[0] != "encoder":
            return True
        return path[1] in ("layers", "blocks") and int(path[2]) >= self.depth - self.trainable_layers


class ImageClassifier(nnx.Module):
    """Images [B, H, W, C] in [0, 1] -> float32 logits [B, num_classes]: a 5x5 convolution, then
    stride-2 3x3 convolutions doubling the channels, a global average pool and a linear head."""

    def __init__(self, *, num_classes: int, channels: Sequence[int] = (32, 64, 128), in_channels: int = 1,
                 dropout: float = 0.2, dtype: Any = jnp.float32, rngs: nnx.Rngs):
        sizes = [in_channels, *channels]
        self.convs = nnx.List([
            nnx.Conv(a, b, (5, 5) if i == 0 else (3, 3), strides=1 if i == 0 else 2, dtype=dtype, rngs=rngs)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))])
        self.drop = Dropout(dropout)
        self.head = nnx.Linear(sizes[-1], num_classes, rngs=rngs)

    def features(self, images: jax.Array) -> jax.Array:
        """The pooled features [B, channels[-1]], before the head."""
        h = images
        for conv in self.convs:
            h = nnx.gelu(conv(h))
        return h.mean(axis=(1, 2)).astype(jnp.float32)

    def __call__(self, images: jax.Array, *, deterministic: bool = True, rngs: nnx.Rngs | None = None
                 ) -> jax.Array:
        h = self.drop(self.features(images), deterministic=deterministic, rngs=rngs)
        return self.head(h).astype(jnp.float32)

    def is_trainable(self, path: Sequence[Any]) -> bool:
        return True


def split_params(model: TextClassifier | ImageClassifier, params: dict) -> tuple[dict, dict]:
    """(trainable, frozen): the pure param dict cut by `model.is_trainable`; `merge_params` undoes it."""
    flat = nnx.traversals.flatten_mapping(params)
    trainable = {k: v for k, v in flat.items() if model.is_trainable(k)}
    frozen = {k: v for k, v in flat.items() if not model.is_trainable(k)}
    return nnx.traversals.unflatten_mapping(trainable), nnx.traversals.unflatten_mapping(frozen)


def merge_params(trainable: dict, frozen: dict) -> dict:
    """The whole pure param dict from its two parts."""
    flat = {**nnx.traversals.flatten_mapping(frozen), **nnx.traversals.flatten_mapping(trainable)}
    return nnx.traversals.unflatten_mapping(flat)
