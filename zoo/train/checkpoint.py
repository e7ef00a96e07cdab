"""Orbax checkpoints that can be trusted on resume.

Orbax restores a byte-flipped array without complaint and fails in several ways on truncated or
half-written steps (TOOLCHAIN.md). So every checkpoint's metadata carries a fingerprint of the state
computed on device, and `restore_latest` walks back from the newest step until one restores AND matches
its fingerprint, moving each bad step aside (never deleting it) with a warning.
"""

from __future__ import annotations

import logging
import pathlib
import shutil
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from zoo.train.task import PyTree

log = logging.getLogger(__name__)


def _leaf_hash(x: jax.Array) -> jax.Array:
    """Position-weighted sum of the raw bits mod 2**32: any single changed bit changes it."""
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    width = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}[x.dtype.itemsize]
    bits = jax.lax.bitcast_convert_type(x, width).astype(jnp.uint32).ravel()
    weights = jnp.arange(bits.size, dtype=jnp.uint32) * jnp.uint32(2) + jnp.uint32(1)
    return jnp.sum(bits * weights, dtype=jnp.uint32)


@jax.jit
def fingerprint(state: PyTree) -> jax.Array:
    leaves = jax.tree.leaves(state)
    total = jnp.uint32(0)
    for i, leaf in enumerate(leaves):
        total = total + _leaf_hash(jnp.asarray(leaf)) * jnp.uint32(2 * i + 1)
    return total


class Checkpointer:
    """Periodic, async, `max_to_keep` checkpoints of the train state plus JSON metadata."""

    def __init__(self, directory: pathlib.Path, max_to_keep: int, async_save: bool = True):
        self.directory = pathlib.Path(directory).absolute()
        self.quarantine = self.directory.parent / "corrupt_checkpoints"
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            enable_async_checkpointing=async_save,
            create=True,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: PyTree, meta: dict[str, Any]) -> None:
        meta = dict(meta, step=step, fingerprint=int(fingerprint(state)))
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)), force=True)

    def restore_latest(self, abstract_state: PyTree) -> tuple[PyTree, dict[str, Any]] | None:
        """Newest step that restores and verifies, or None when there is none at all."""
        self.manager.reload()
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                restored = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
                state, meta = restored["state"], restored["meta"]
                found = int(fingerprint(state))
                if found != meta["fingerprint"]:
                    raise ValueError(f"fingerprint {found} != recorded {meta['fingerprint']}")
            except Exception as e:  # Orbax raises bare Exception, ValueError, KeyError ... for damage
                reason = " ".join(f"{type(e).__name__}: {e}".split())[:300]
                self._quarantine(step, reason)
                continue
            return state, meta
        return None

    def _quarantine(self, step: int, reason: str) -> None:
        target = self.quarantine / f"{step}-{int(time.time())}"
        log.warning("checkpoint step %d in %s is unusable (%s); moved it to %s and trying the previous one",
                    step, self.directory, reason, target)
        if jax.process_index() == 0:
            self.quarantine.mkdir(parents=True, exist_ok=True)
            source = self.directory / str(step)
            if source.exists():
                shutil.move(str(source), str(target))
        _sync(f"quarantine-{step}")
        self.manager.reload()

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


def to_global(tree: PyTree, shardings: PyTree) -> PyTree:
    """Host (numpy) arrays -> global arrays with `shardings`, valid on one or many processes."""
    def put(x: np.ndarray, sharding: jax.sharding.Sharding) -> jax.Array:
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
    return jax.tree.map(put, tree, shardings)
