"""Devices of all processes as one `data` mesh axis; how state and batches are laid out on it.

Data parallelism is `jax.jit` with explicit shardings (the modern form of pmap): the batch is split along
`data`, the state is replicated, or with FSDP each large array is split along its first dimension that the
device count divides, and XLA inserts the all-gathers / reduce-scatters.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from zoo.errors import UsageError
from zoo.train.task import Batch, PyTree

DATA_AXIS = "data"
FSDP_MIN_SIZE = 2**14  # smaller arrays are cheaper to replicate than to gather every step


def initialize_distributed(coordinator_address: str | None, num_processes: int | None,
                           process_id: int | None) -> None:
    """Joins a multi-process run. On Cloud TPU pods `jax.distributed.initialize()` finds its peers
    itself; elsewhere pass all three arguments (CPU processes talk through gloo)."""
    if coordinator_address is None and num_processes is None:
        if _on_multihost_tpu():
            jax.distributed.initialize()
        return
    # Only CPU collectives read this; it must be set before the backend starts, so set it unconditionally.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)
    logging.info("process %d of %d joined %s", jax.process_index(), jax.process_count(), coordinator_address)


def _on_multihost_tpu() -> bool:
    return "TPU_WORKER_HOSTNAMES" in os.environ and "," in os.environ.get("TPU_WORKER_HOSTNAMES", "")


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """One `data` axis over `devices` (default: every device of every process), each process's devices
    contiguous.

    Auto axes: XLA propagates shardings through the model, so models stay free of sharding code."""
    devices = sorted(jax.devices() if devices is None else devices, key=lambda d: (d.process_index, d.id))
    return Mesh(np.array(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def state_shardings(abstract_state: PyTree, mesh: Mesh, fsdp: bool) -> PyTree:
    """Replicated state, or FSDP: each large array split on its first dimension divisible by the mesh."""
    n = mesh.shape[DATA_AXIS]

    def spec(leaf: jax.ShapeDtypeStruct) -> NamedSharding:
        if fsdp and leaf.size >= FSDP_MIN_SIZE:
            for axis, dim in enumerate(leaf.shape):
                if dim % n == 0:
                    return NamedSharding(mesh, P(*([None] * axis), DATA_AXIS))
        return NamedSharding(mesh, P())

    return jax.tree.map(spec, abstract_state)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def global_batch(local: Batch, mesh: Mesh) -> dict[str, jax.Array]:
    """Assembles every process's local rows into one global array sharded along `data`."""
    sharding = batch_sharding(mesh)
    out = {}
    for name, rows in local.items():
        global_shape = (rows.shape[0] * jax.process_count(),) + rows.shape[1:]
        out[name] = jax.make_array_from_process_local_data(sharding, rows, global_shape)
    return out


def check_batch_size(global_batch_size: int, mesh: Mesh) -> None:
    n = mesh.shape[DATA_AXIS]
    if global_batch_size % n:
        raise UsageError(f"batch_size {global_batch_size} must be divisible by the {n} devices")


def to_global(tree: PyTree, sharding: jax.sharding.Sharding) -> PyTree:
    """Host (numpy) arrays -> global arrays laid out by `sharding`, valid on one or many processes."""
    def put(x: np.ndarray) -> jax.Array:
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
    return jax.tree.map(put, tree)


def all_agree(flag: bool) -> bool:
    """True on every process iff `flag` is true on every process (a collective in multi-process runs)."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils
    return bool(multihost_utils.process_allgather(np.array(flag, np.int32)).all())


def sync(name: str) -> None:
    """A barrier across processes (a no-op in a single-process run)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)
