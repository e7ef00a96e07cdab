"""The contract between the one training loop and a model family.

The loop (zoo/train/loop.py) owns devices, sharding, checkpoints, metrics and preemption; a Task owns
everything family-specific: the state it trains (one or several models and optimizers), its jittable
train/eval steps, where its batches come from, and what sampling needs from the state. The loop never
learns which family it runs.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any, Protocol

import jax
import numpy as np

PyTree = Any
Batch = dict[str, np.ndarray]
Metrics = dict[str, jax.Array]
EVAL_WEIGHT = "weight"  # an optional eval metric: how much each batch's means count in the eval average


class Task(Protocol):
    """What a family provides to the loop. All step functions are pure and are jitted by the loop."""

    family: str  # its name in zoo/models, zoo/objectives, zoo/sample and zoo.export.FAMILY_FILES

    def init_state(self, key: jax.Array) -> PyTree:
        """Fresh trainable state (params, optimizer states ...) from a PRNG key. Traced under jit."""

    def train_step(self, state: PyTree, batch: Batch, key: jax.Array) -> tuple[PyTree, Metrics]:
        """One optimisation step on a GLOBAL batch; `key` is unique to the step. Metrics are scalars."""

    def eval_step(self, state: PyTree, batch: Batch) -> Metrics:
        """Scalar metrics (means over the batch) of a held-out batch. A task whose eval batches are padded
        also returns `EVAL_WEIGHT` (the number of real rows), and the loop weights each batch's means by it."""

    def train_batch(self, step: int, process_index: int, process_count: int) -> Batch:
        """This process's rows of the global batch of `step`. A pure function of (seed, step), so a
        resumed run sees exactly the batches an uninterrupted run would have seen."""

    def eval_batches(self, process_index: int, process_count: int) -> Iterator[Batch]:
        """This process's rows of each fixed validation batch."""

    def export_params(self, state: PyTree) -> PyTree:
        """What sampling needs from the state (e.g. a GAN's generator only), as a pure dict tree."""

    def load_params(self, state: PyTree, params: PyTree) -> PyTree:
        """`state` with its sampling params replaced by `params` (fine-tuning with `init_from`)."""

    # Optional, for a model fine-tuned from a pretrained one (zoo.objectives.classify): a fresh run starts
    # from `load_pretrained(init_state(key), pretrained())`, traced under jit (then `init_from`, if given,
    # replaces the exported params); a resumed run restores both from its checkpoint.
    # def pretrained(self) -> PyTree | None: the pretrained params, host arrays (None: start from scratch)
    # def load_pretrained(self, state: PyTree, pretrained: PyTree) -> PyTree

    def save_assets(self, directory: pathlib.Path, params: PyTree) -> None:
        """Writes the other files sampling needs (tokenizer, caption table, a VAE's latent mixture ...) into
        `directory`; `params` are the exported params, in the export's dtype (process 0 only)."""
