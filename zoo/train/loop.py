"""The one training loop every model family runs on.

It knows devices, shardings, checkpoints, metrics and preemption, and nothing about any family: those
details come through the `Task` (zoo/train/task.py). The whole step is one `jax.jit` with explicit
shardings and a donated state; the host only assembles the next batch while the device computes, and
reads metrics back at log, eval and checkpoint steps.
"""

from __future__ import annotations

import logging
import math
import pathlib
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from zoo import config as config_lib
from zoo.errors import UsageError
from zoo.train import export as export_lib
from zoo.train import mesh as mesh_lib
from zoo.train.checkpoint import Checkpointer, to_global
from zoo.train.metrics import MetricsWriter
from zoo.train.task import PyTree, Task

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """A non-finite loss; the checkpoints on disk all predate it."""


class _Preemption:
    """SIGTERM (how Cloud TPU and most schedulers preempt) => finish the step, checkpoint, exit 0."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def reached(self, step: int) -> bool:
        if jax.process_count() > 1:  # every process must agree on the step it stops at
            from jax.experimental import multihost_utils
            try:
                return multihost_utils.reached_preemption_sync_point(step) or self.requested
            except RuntimeError:  # no preemption service: fall back to the local signal
                return self.requested
        return self.requested

    def restore(self) -> None:
        signal.signal(signal.SIGTERM, self._previous)


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, task: Task) -> dict[str, float]:
    """Trains `task` for `config.train_steps`, resuming from `workdir` when it holds checkpoints.

    Returns the last logged metrics. Raises TrainingDiverged on a NaN/inf loss.
    """
    workdir = pathlib.Path(workdir).absolute()
    mesh = mesh_lib.make_mesh()
    mesh_lib.check_batch_size(config.batch_size, mesh)
    pid, nproc = jax.process_index(), jax.process_count()

    init_key, loop_key = jax.random.split(jax.random.PRNGKey(config.seed))

    def init_state() -> PyTree:
        return {"step": jnp.zeros((), jnp.int32), "rng": loop_key, "task": task.init_state(init_key)}

    abstract = jax.eval_shape(init_state)
    shardings = mesh_lib.state_shardings(abstract, mesh, config.get("fsdp", False))
    if config.get("fsdp", False):
        split = [a.size for a, s in zip(jax.tree.leaves(abstract), jax.tree.leaves(shardings), strict=True)
                 if not s.is_fully_replicated]
        log.info("fsdp: %d of %d arrays (%.0f%% of the state) split over %d devices", len(split),
                 len(jax.tree.leaves(abstract)), 100 * sum(split) / sum(a.size for a in jax.tree.leaves(abstract)),
                 mesh.size)
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
    batch_sharding = mesh_lib.batch_sharding(mesh)
    replicated = mesh_lib.replicated(mesh)

    def train_step(state: PyTree, batch: dict[str, jax.Array]) -> tuple[PyTree, dict[str, jax.Array]]:
        key = jax.random.fold_in(state["rng"], state["step"])
        task_state, metrics = task.train_step(state["task"], batch, key)
        return {"step": state["step"] + 1, "rng": state["rng"], "task": task_state}, metrics

    train_step = jax.jit(train_step, in_shardings=(shardings, batch_sharding),
                         out_shardings=(shardings, replicated), donate_argnums=0)
    eval_step = jax.jit(lambda state, batch: task.eval_step(state["task"], batch),
                        in_shardings=(shardings, batch_sharding), out_shardings=replicated)

    if pid == 0:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config.json").write_text(config_lib.to_json(config))
    checkpointer = Checkpointer(workdir / "checkpoints", config.get("max_to_keep", 3),
                                async_save=config.get("async_checkpoints", True))
    restored = checkpointer.restore_latest(abstract)
    if restored is not None:
        state, meta = restored
        start = int(meta["step"])
        log.info("resumed from step %d of %s", start, checkpointer.directory)
    else:
        state = jax.jit(init_state, out_shardings=shardings)()
        start = 0
        if config.get("init_from"):
            state = _init_from(config.init_from, state, task, shardings)

    total = config.train_steps
    writer = MetricsWriter(workdir, total, start)
    if restored is not None:
        writer.message(f"resumed from step {start}")
    preemption = _Preemption()
    pending: list[tuple[int, dict[str, jax.Array]]] = []
    last_good = restored[1]["step"] if restored is not None else None
    logged: dict[str, float] = {}
    interval_start, interval_steps = time.perf_counter(), 0

    def run_eval() -> dict[str, float]:
        sums: dict[str, float] = {}
        count = 0
        for local in task.eval_batches(pid, nproc):
            metrics = jax.device_get(eval_step(state, mesh_lib.global_batch(local, mesh)))
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            count += 1
        return {f"eval/{k}": v / count for k, v in sums.items()} if count else {}

    def flush() -> dict[str, float]:
        """Reads back the pending step metrics; stops the run on the first non-finite loss."""
        values = jax.device_get([m for _, m in pending])
        for (step, _), metrics in zip(pending, values, strict=True):
            bad = [k for k, v in metrics.items() if "loss" in k and not math.isfinite(float(v))]
            if bad:
                raise TrainingDiverged(f"{bad[0]} became {float(metrics[bad[0]])} at step {step + 1}; "
                                       f"stopped. Last good checkpoint: {where_good()}")
        means = {f"train/{k}": float(np.mean([v[k] for v in values])) for k in values[-1]} if values else {}
        pending.clear()
        return means

    def where_good() -> str:
        if last_good is None:
            return "none (no checkpoint was written yet)"
        return f"step {last_good} in {checkpointer.directory}"

    def save(step: int) -> None:
        nonlocal last_good
        if not bool(_all_finite(state)):  # a finite loss can still be followed by a NaN update
            raise TrainingDiverged(f"parameters became non-finite at step {step}; stopped. "
                                   f"Last good checkpoint: {where_good()}")
        checkpointer.save(step, state, {"data_position": step, "seed": config.seed})
        last_good = step

    step = start
    try:
        while step < total:
            batch = mesh_lib.global_batch(task.train_batch(step, pid, nproc), mesh)
            state, metrics = train_step(state, batch)
            pending.append((step, metrics))
            step += 1
            interval_steps += 1
            preempted = preemption.reached(step)
            is_log = step % config.log_every == 0 or step == total
            is_eval = config.eval_every > 0 and (step % config.eval_every == 0 or step == total)
            is_ckpt = step % config.checkpoint_every == 0 or step == total or preempted
            if not (is_log or is_eval or is_ckpt):
                continue
            record = flush()  # waits for the device, so the interval below times training steps only
            elapsed = time.perf_counter() - interval_start
            if is_ckpt:
                save(step)
            if is_eval:
                record.update(run_eval())
            if is_log or is_eval:
                record["steps_per_sec"] = interval_steps / elapsed if elapsed > 0 else float("nan")
                writer.write(step, record)
                logged.update(record)
                interval_steps = 0
            interval_start = time.perf_counter()
            if preempted:
                writer.message(f"SIGTERM: saved step {step}; exiting")
                break
        checkpointer.wait()
        if step == total:
            info = {"step": step, **{k: v for k, v in logged.items() if k.startswith("eval/")}}
            export_lib.save_export(workdir / "export", task.export_params(state["task"]), config, info,
                                   task.save_assets)
    finally:
        preemption.restore()
        writer.close()
        checkpointer.wait()
        checkpointer.close()
    return logged


@jax.jit
def _all_finite(state: PyTree) -> jax.Array:
    leaves = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _init_from(source: str, state: PyTree, task: Task, shardings: PyTree) -> PyTree:
    """Fine-tuning: replace the freshly initialised sampling params with an exported model's."""
    directory = resolve_init_from(source)
    expected = task.export_params(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state["task"]))
    params = export_lib.load_params(directory, expected, f"init_from {source}")
    load = jax.jit(lambda s, p: {**s, "task": task.load_params(s["task"], p)}, out_shardings=shardings,
                   donate_argnums=0)
    replicated = jax.tree.map(lambda _: mesh_lib.replicated(jax.tree.leaves(shardings)[0].mesh), params)
    return load(state, to_global(params, replicated))


def resolve_init_from(source: str) -> pathlib.Path:
    """`pretrained:NAME` -> the embedded model; otherwise an export dir or a finished workdir."""
    if source.startswith("pretrained:"):
        from zoo import registry
        return export_lib.find_export(registry.get(source.split(":", 1)[1]).pretrained_dir)
    return export_lib.find_export(source)


__all__ = ["train", "TrainingDiverged", "resolve_init_from", "UsageError"]
