"""Orbax checkpoints that can be trusted on resume.

Orbax restores a byte-flipped array without complaint and fails in several ways on truncated or
half-written steps. So every checkpoint's metadata carries a fingerprint of the state computed on device,
and `restore_latest` walks back from the newest step until one restores AND matches its fingerprint,
moving each bad step aside (never deleting it) with a warning. A checkpoint that is intact but holds
another model (the run was restarted with a different config) is not damage: that is a UsageError, and
nothing is moved.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from etils import epath

from zoo import storage
from zoo.errors import UsageError
from zoo.export import shapes_by_path
from zoo.train import mesh as mesh_lib
from zoo.train.task import PyTree

log = logging.getLogger(__name__)


def _leaf_hash(x: jax.Array) -> jax.Array:
    """Position-weighted sum of the raw bits mod 2**32: any single changed bit changes it."""
    width = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}[x.dtype.itemsize]
    bits = jax.lax.bitcast_convert_type(x, width).astype(jnp.uint32).ravel()
    weights = jnp.arange(bits.size, dtype=jnp.uint32) * jnp.uint32(2) + jnp.uint32(1)
    return jnp.sum(bits * weights, dtype=jnp.uint32)


@jax.jit
def inspect_state(state: PyTree) -> tuple[jax.Array, jax.Array]:
    """(fingerprint, all floats finite) in one pass over the state, on device, with one host sync."""
    total = jnp.uint32(0)
    finite = jnp.bool_(True)
    for i, leaf in enumerate(jax.tree.leaves(state)):
        total = total + _leaf_hash(leaf) * jnp.uint32(2 * i + 1)
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            finite = finite & jnp.all(jnp.isfinite(leaf))
    return total, finite


class _Manager(ocp.CheckpointManager):
    """Orbax's manager, kept off JAX's preemption sync point: its `save` and its finalize thread call
    `reached_preemption_sync_point(step)` with the checkpoint's step, which would overwrite the per-run count
    the loop reports (zoo/train/loop.py `_Preemption`) and move the sync point to one no process reaches."""

    def reached_preemption(self, step: int) -> bool:
        return False


class Checkpointer:
    """Periodic, async, `max_to_keep` checkpoints of the train state plus JSON metadata."""

    def __init__(self, directory: epath.Path, max_to_keep: int, async_save: bool = True):
        self.directory = storage.as_path(directory)
        self.quarantine = self.directory.parent / "corrupt_checkpoints"
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=async_save)
        self.manager = _Manager(
            self.directory, options=options, item_names=("state", "meta"),
            item_handlers={"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()})

    def save(self, step: int, state: PyTree, meta: dict[str, Any], fingerprint: int) -> None:
        meta = dict(meta, step=step, fingerprint=fingerprint)
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)), force=True)

    def restore_latest(self, abstract_state: PyTree) -> tuple[PyTree, dict[str, Any]] | None:
        """Newest step that restores and verifies, or None when there is none at all."""
        storage.forget_listings(self.directory)
        self.manager.reload()
        for step in sorted(self.manager.all_steps(), reverse=True):
            self._check_same_model(step, abstract_state)
            problem = ""
            try:
                restored = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
                state, meta = restored["state"], restored["meta"]
                found = int(inspect_state(state)[0])
                if found != meta["fingerprint"]:
                    problem = f"fingerprint {found} != recorded {meta['fingerprint']}"
            except Exception as e:  # Orbax raises bare Exception, ValueError, KeyError ... for damage
                problem = " ".join(f"{type(e).__name__}: {e}".split())[:300]
            if not mesh_lib.all_agree(not problem):  # all processes must take the same checkpoint
                self._quarantine(step, problem or "damaged on another process")
                continue
            return state, meta
        return None

    def _check_same_model(self, step: int, abstract_state: PyTree) -> None:
        """Refuses (UsageError) a readable checkpoint whose arrays differ from the configured model's."""
        try:
            stored = shapes_by_path(self.manager.item_metadata(step)["state"])
        except Exception:  # unreadable metadata is damage; restore will find and quarantine it
            return
        wanted = shapes_by_path(abstract_state)
        if stored and stored != wanted:
            differing = sorted(k for k in stored.keys() | wanted.keys() if stored.get(k) != wanted.get(k))
            raise UsageError(
                f"{self.directory} holds a run of another model or config ({differing[0]}: "
                f"{stored.get(differing[0])} in the checkpoint, {wanted.get(differing[0])} now); "
                "use the config it was trained with, or another --workdir")

    def _quarantine(self, step: int, reason: str) -> None:
        target = self.quarantine / f"{step}-{int(time.time())}"
        log.warning("checkpoint step %d in %s is unusable (%s); moved it to %s and trying the previous one",
                    step, self.directory, reason, target)
        if jax.process_index() == 0:
            source = self.directory / str(step)
            if source.exists():
                storage.move_tree(source, target)
        mesh_lib.sync(f"quarantine-{step}")
        storage.forget_listings(self.directory)  # on every process: process 0 moved objects behind their backs
        self.manager.reload()

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()
