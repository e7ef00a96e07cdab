"""The one training loop every model family runs on.

It knows devices, shardings, checkpoints, metrics and preemption, and nothing about any family: those
details come through the `Task` (zoo/train/task.py). The whole step is one `jax.jit` with explicit
shardings and a donated state; the host only assembles the next batch while the device computes, and
reads metrics back at log, eval and checkpoint steps.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from zoo import config as config_lib
from zoo import export, storage
from zoo.errors import UsageError
from zoo.train import export as export_lib
from zoo.train import mesh as mesh_lib
from zoo.train.checkpoint import Checkpointer, inspect_state
from zoo.train.metrics import MetricsWriter
from zoo.train.profile import StepProfiler
from zoo.train.task import EVAL_WEIGHT, PyTree, Task

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """A non-finite loss or state; the checkpoints on disk all predate it."""


class _Preemption:
    """SIGTERM (how Cloud TPU and most schedulers preempt) => finish the step, checkpoint, exit 0.

    With several processes JAX's coordination service owns SIGTERM and `reached_preemption_sync_point`
    makes every process stop at the same step; a Python handler would replace the service's and let the
    processes stop at different steps. So the local handler is only installed in single-process runs.

    JAX's sync point is one past the largest counter any process last passed it, and a process that has not
    called it yet counts as 0. So the counter passed is the number of steps this run has taken (all processes
    resume from the same step), not the step: a SIGTERM that lands between `jax.distributed.initialize` and
    the first step (restore, compile) then stops the run after its first step instead of at step 1, which a
    resumed run has passed and would never reach.
    """

    def __init__(self, start: int) -> None:
        self.start = start
        self.requested = False
        self._previous = None
        if jax.process_count() == 1:
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def reached(self, step: int) -> bool:
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            return multihost_utils.reached_preemption_sync_point(step - self.start)
        return self.requested

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def loop_functions(task: Task, seed: int) -> tuple[Callable[[], PyTree], Callable[..., tuple[PyTree, dict]]]:
    """(init_state(), train_step(state, batch)) of the loop's state {"step", "rng", "task"}, un-jitted: the
    step's randomness is the run's key folded with the step number, so a resumed run draws the same keys.
    benchmarks/compare.py times exactly this step."""
    init_key, loop_key = jax.random.split(jax.random.PRNGKey(seed))

    def init_state() -> PyTree:
        return {"step": jnp.zeros((), jnp.int32), "rng": loop_key, "task": task.init_state(init_key)}

    def train_step(state: PyTree, batch: dict[str, jax.Array]) -> tuple[PyTree, dict[str, jax.Array]]:
        key = jax.random.fold_in(state["rng"], state["step"])
        task_state, metrics = task.train_step(state["task"], batch, key)
        return {"step": state["step"] + 1, "rng": state["rng"], "task": task_state}, metrics

    return init_state, train_step


def compiler_options(config: ml_collections.ConfigDict, platform: str | None = None) -> dict[str, Any] | None:
    """The XLA compiler options the config asks for on `platform` (default: this process's default backend),
    for the train and eval steps: `config.xla_cpu_options` when the steps compile for the CPU, none for any
    other platform (a TPU or GPU compiler would reject the CPU's flags, and a step lowered here for another
    platform must not carry them). Why: XLA's CPU backend
    leaves some kernel choices to options, and the best one depends on the model: the VAE and DCGAN steps
    run faster with their convolutions on Eigen instead of YNNPACK, the text GAN's slower; the LM's and the
    music LSTM's faster with their matmuls on Eigen too (docs/performance.md). An option set to "" is left
    at XLA's default. These are experimental options that an XLA release may drop or
    change: where this XLA rejects any of them, a warning says so and the steps compile with none."""
    options = {str(k): v for k, v in (config.get("xla_cpu_options") or {}).items() if v != ""}
    if not options or (platform or jax.default_backend()) != "cpu":
        return None
    try:  # compiled on a CPU device, whatever the default backend is
        jax.jit(jnp.negative, compiler_options=options).lower(
            jax.device_put(np.float32(0), jax.devices("cpu")[0])).compile()
    except jax.errors.JaxRuntimeError as e:
        log.warning("config.xla_cpu_options ignored: %s", " ".join(str(e).split()))
        return None
    return options


@dataclasses.dataclass(frozen=True)
class Steps:
    """The loop's jitted programs for one task on one mesh, built without running anything: what `train`
    runs, and what tests and benchmarks/plan.py lower, export or cost ahead of a run."""

    init_state: Callable[[], PyTree]  # jitted: the fresh state, laid out by `state_shardings`
    train_step: Callable[..., tuple[PyTree, dict]]  # jitted (state, batch) -> (state, metrics), state donated
    eval_step: Callable[..., dict]  # jitted (state, batch) -> metrics
    abstract_state: PyTree  # jax.ShapeDtypeStruct leaves carrying their shardings: the steps' first argument
    state_shardings: PyTree
    batch_sharding: jax.sharding.NamedSharding
    compiler_options: dict[str, Any] | None

    def abstract_batch(self, local: dict[str, np.ndarray]) -> dict[str, jax.ShapeDtypeStruct]:
        """This process's rows of a batch (`task.train_batch`) -> the global batch the steps take, as
        ShapeDtypeStructs sharded along `data`: the steps' second argument, without moving any data."""
        return {k: jax.ShapeDtypeStruct((v.shape[0] * jax.process_count(), *v.shape[1:]), v.dtype,
                                        sharding=self.batch_sharding) for k, v in local.items()}


def build_steps(config: ml_collections.ConfigDict, task: Task, mesh: jax.sharding.Mesh,
                platform: str | None = None) -> Steps:
    """The jitted init, train and eval steps with the loop's shardings (FSDP if `config.fsdp`) and compiler
    options for `platform` (default: the mesh's devices'); `train` runs exactly these. No step is traced or
    compiled here (only the state's shapes are evaluated): lowering a step ahead of a run, for this platform
    or another (`jax.export`), needs only this and `abstract_batch` of one batch."""
    init_state, train_step = loop_functions(task, config.seed)
    abstract = jax.eval_shape(init_state)
    shardings = mesh_lib.state_shardings(abstract, mesh, config.get("fsdp", False))
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
    batch_sharding = mesh_lib.batch_sharding(mesh)
    replicated = mesh_lib.replicated(mesh)
    options = compiler_options(config, platform or mesh.devices.flat[0].platform)
    return Steps(
        init_state=jax.jit(init_state, out_shardings=shardings),
        train_step=jax.jit(train_step, in_shardings=(shardings, batch_sharding),
                           out_shardings=(shardings, replicated), donate_argnums=0, compiler_options=options),
        eval_step=jax.jit(lambda state, batch: task.eval_step(state["task"], batch),
                          in_shardings=(shardings, batch_sharding), out_shardings=replicated,
                          compiler_options=options),
        abstract_state=abstract, state_shardings=shardings, batch_sharding=batch_sharding,
        compiler_options=options)


def train(config: ml_collections.ConfigDict, workdir: str | os.PathLike, task: Task,
          before_write: Callable[[], None] = lambda: None, command: str = "") -> dict[str, float]:
    """Trains `task` for `config.train_steps`, resuming from `workdir` (a path or gs:// URL) when it holds
    checkpoints. `before_write()` runs before every checkpoint and the export: train.py passes the workdir
    lease's check (zoo/train/lease.py), which stops a run that may no longer write there. `command` (the
    train.py command line) goes into the export's info.json and model card.

    Returns the last logged metrics. Raises TrainingDiverged on a NaN/inf loss or state.
    """
    workdir = storage.as_path(workdir)
    mesh = mesh_lib.make_mesh()
    mesh_lib.check_batch_size(config.batch_size, mesh)
    pid, nproc = jax.process_index(), jax.process_count()
    total = config.train_steps

    steps = build_steps(config, task, mesh)
    abstract, shardings = steps.abstract_state, steps.state_shardings
    if config.get("fsdp", False):
        split = [a.size for a, s in zip(jax.tree.leaves(abstract), jax.tree.leaves(shardings), strict=True)
                 if not s.is_fully_replicated]
        log.info("fsdp: %d of %d arrays (%.0f%% of the state) split over %d devices", len(split),
                 len(jax.tree.leaves(abstract)), 100 * sum(split) / sum(a.size for a in jax.tree.leaves(abstract)),
                 mesh.size)
    if steps.compiler_options:
        log.info("XLA compiler options: %s", steps.compiler_options)
    train_step, eval_step = steps.train_step, steps.eval_step

    if pid == 0:
        workdir.mkdir(parents=True, exist_ok=True)
    checkpointer = Checkpointer(workdir / "checkpoints", config.max_to_keep,
                                async_save=config.get("async_checkpoints", True))
    restored = checkpointer.restore_latest(abstract)
    if restored is not None:
        state, meta = restored
        if meta.get("seed", config.seed) != config.seed:
            raise UsageError(f"{workdir} holds a run with seed {meta['seed']}, not {config.seed}; "
                             "use that seed to resume it, or another --workdir")
        start = int(meta["data_position"])  # the step, since batches are a pure function of (seed, step)
        log.info("resumed from step %d of %s", start, checkpointer.directory)
    else:
        state = steps.init_state()
        start = 0
        # A fine-tuned model's pretrained base first (what init_from's export leaves out), then the export.
        if getattr(task, "pretrained", None) is not None and (pretrained := task.pretrained()) is not None:
            state = _load_into(state, pretrained, task.load_pretrained, shardings, mesh)
        if config.get("init_from"):
            state = _init_from(config.init_from, state, task, shardings, mesh)
    patience = int(config.get("early_stop", 0))  # evaluations without a better held-out loss before stopping
    meta = restored[1] if restored is not None else {}
    best_loss, best_step = meta.get("best_loss"), meta.get("best_step")
    if (start >= total or meta.get("stopped_early")) and export.is_export(workdir / "export"):
        checkpointer.close()
        done = f"stopped early at step {start}" if meta.get("stopped_early") else f"finished its {total} steps"
        print(f"{workdir} already {done}; nothing to do")
        return export.load_info(workdir / "export")

    if pid == 0:  # only now: a refused rerun (another config) must not overwrite the run's record
        storage.write_atomic(workdir / "config.json", config_lib.to_json(config))
    writer = MetricsWriter(workdir, total, start)
    if restored is not None:
        writer.message(f"resumed from step {start}")
    preemption = _Preemption(start)
    pending: list[tuple[int, dict[str, jax.Array]]] = []  # step metrics not yet logged
    checked = 0  # how many of `pending` are known to be finite
    last_good = restored[1]["step"] if restored is not None else None
    logged: dict[str, float] = {}
    train_seconds, steps_in_interval = 0.0, 0

    def where_good() -> str:
        if last_good is None:
            return "none (no checkpoint was written yet)"
        return f"step {last_good} in {checkpointer.directory}"

    def check_finite() -> None:
        """Reads back the unchecked step metrics; stops the run at the first non-finite loss."""
        nonlocal checked
        for step, metrics in pending[checked:]:
            values = jax.device_get(metrics)
            bad = [k for k, v in values.items() if "loss" in k and not math.isfinite(float(v))]
            if bad:
                raise TrainingDiverged(f"{bad[0]} became {float(values[bad[0]])} at step {step + 1}; "
                                       f"stopped. Last good checkpoint: {where_good()}")
        checked = len(pending)

    def run_eval() -> dict[str, float]:
        """Means over the eval batches, each batch weighted by its `weight` metric if the task reports one
        (the real rows of a padded last batch), else equally."""
        sums, total = None, 0.0
        for local in task.eval_batches(pid, nproc):
            metrics = dict(eval_step(state, mesh_lib.global_batch(local, mesh)))
            weight = metrics.pop(EVAL_WEIGHT, jnp.float32(1.0))
            weighted = {k: v * weight for k, v in metrics.items()}
            sums = weighted if sums is None else jax.tree.map(jnp.add, sums, weighted)  # stays on device
            total = total + weight
        total = float(jax.device_get(total)) or 1.0
        return {f"eval/{k}": float(v) / total for k, v in jax.device_get(sums or {}).items()}

    def save(step: int) -> None:
        nonlocal last_good
        fingerprint, finite = jax.device_get(inspect_state(state))
        if not finite:  # a finite loss can still be followed by a NaN update
            raise TrainingDiverged(f"parameters became non-finite at step {step}; stopped. "
                                   f"Last good checkpoint: {where_good()}")
        before_write()
        checkpointer.save(step, state, {"data_position": step, "seed": config.seed, "best_loss": best_loss,
                                        "best_step": best_step, "stopped_early": stopped_early}, int(fingerprint))
        last_good = step

    def export_now(step: int) -> None:
        before_write()
        info = {"step": step, **{k: v for k, v in logged.items() if k.startswith("eval/")},
                "family": task.family, "command": command, "steps_per_sec": _finite(logged.get("steps_per_sec")),
                "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()})"}
        if patience:
            info["early_stop"] = {"patience": patience, "best_step": best_step}
        export_lib.save_export(workdir / "export", task.export_params(state["task"]), config, info, task.save_assets)

    stopped_early, warned = False, False
    step = start
    profiler = StepProfiler(config.get("profile_steps", ""), workdir)
    mark = time.perf_counter()
    try:
        while step < total:
            profiler.before(step)
            batch = mesh_lib.global_batch(task.train_batch(step, pid, nproc), mesh)
            state, metrics = train_step(state, batch)
            pending.append((step, metrics))
            step += 1
            steps_in_interval += 1
            profiler.after(step, lambda: jax.block_until_ready(metrics))  # noqa: B023 (called at once)
            preempted = preemption.reached(step)
            is_log = step % config.log_every == 0 or step == total or preempted  # the stop's partial interval too
            is_eval = config.eval_every > 0 and (step % config.eval_every == 0 or step == total)
            is_ckpt = step % config.checkpoint_every == 0 or step == total or preempted
            if not (is_log or is_eval or is_ckpt):
                continue
            check_finite()  # waits for the device: the time so far is training time
            train_seconds += time.perf_counter() - mark
            record: dict[str, float] = {}
            if is_eval:
                record.update(run_eval())
            improved = False
            if is_eval and patience and "eval/loss" not in record and not warned:
                warned = True
                writer.message(f"early_stop: {task.family}'s evaluation has no eval/loss; the run takes its steps")
            if is_eval and patience and "eval/loss" in record:
                if best_loss is None or record["eval/loss"] < best_loss:
                    best_loss, best_step, improved = record["eval/loss"], step, True
                elif (step - best_step) // max(config.eval_every, 1) >= patience and step < total:
                    stopped_early = True
            if is_log or is_eval:
                values = jax.device_get([m for _, m in pending])
                record = {**{f"train/{k}": float(np.mean([v[k] for v in values])) for k in values[-1]}, **record}
                record["steps_per_sec"] = steps_in_interval / train_seconds if train_seconds > 0 else math.nan
                writer.write(step, record)
                logged.update(record)
                pending.clear()
                checked, train_seconds, steps_in_interval = 0, 0.0, 0
            if improved:  # the export holds the best held-out loss so far: what an early stop keeps
                export_now(step)
            if is_ckpt or stopped_early:
                save(step)
                writer.flush()  # in a bucket: the metrics up to a checkpoint are durable with it
            if stopped_early:
                writer.message(f"early stop at step {step}: the held-out loss has not improved for {patience} "
                               f"evaluations since step {best_step} ({best_loss:.4f}); the export holds step "
                               f"{best_step}")
                break
            if preempted:
                writer.message(f"SIGTERM: saved step {step}; exiting")
                break
            mark = time.perf_counter()
        checkpointer.wait()
        if step == total or stopped_early:
            if patience and best_step is not None and export.is_export(workdir / "export"):
                writer.message(f"the export holds step {best_step}, the best held-out loss ({best_loss:.4f})")
            else:  # no early stopping, or its export was lost: the last step
                export_now(step)
    finally:
        profiler.close()
        preemption.restore()
        writer.close()
        checkpointer.wait()
        checkpointer.close()
    return logged


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _init_from(source: str, state: PyTree, task: Task, shardings: PyTree, mesh: jax.sharding.Mesh) -> PyTree:
    """Fine-tuning: replace the freshly initialised sampling params with an exported model's."""
    directory = export.resolve(source)
    expected = task.export_params(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state["task"]))
    params = export.load_params(directory, expected, f"init_from {source}")
    return _load_into(state, params, task.load_params, shardings, mesh)


def _load_into(state: PyTree, params: PyTree, load: Callable[[PyTree, PyTree], PyTree], shardings: PyTree,
               mesh: jax.sharding.Mesh) -> PyTree:
    """`load(task_state, params)` as one jitted call, host `params` replicated in, the state's shardings out."""
    jitted = jax.jit(lambda s, p: {**s, "task": load(s["task"], p)}, out_shardings=shardings, donate_argnums=0)
    return jitted(state, mesh_lib.to_global(params, mesh_lib.replicated(mesh)))
