"""JAX zoo vs its PyTorch twins (benchmarks/torch/): training speed, memory, losses, FLOPs, MFU, sampling.

    python -m benchmarks.compare --model NAME [--steps N] [--device cpu|gpu] [--json [PATH]] [--repeats R]
                                 [--windows 5] [--warmup 3] [--no-compile] [--cpu-devices N]
                                 [--config.KEY=VALUE ...]

NAME is a registry family (poem, textgan, dcgan, vae, music). Its benchmark config is the family's
training config with BENCH_OVERRIDES[NAME] and then the command line's overrides applied; docs/benchmarks.md
records the tables and commands. `--json` without PATH writes benchmarks/results/compare_NAME_DEVICE.json
(DEVICE: cpu, gpu, or cpuN with --cpu-devices N), the file docs/benchmarks.md quotes.

Each side runs in its own subprocess (so the two runtimes' thread pools never compete, and peak memory is
that process's: for the torch sides it includes the JAX task that makes the batches): "jax" (the shared
loop's own step function, zoo.train.loop.loop_functions, jitted with a donated state, exactly as
train.py runs it), "torch" (eager) and "torch_compile" (the same twin after
`torch.compile`). With `--cpu-devices N` the JAX side runs data-parallel over N host devices
(XLA_FLAGS=--xla_force_host_platform_device_count=N: the batch split, the state replicated, as train.py runs
on N devices), so that the N shares of every op run concurrently on the CPU's cores; the twins keep
their intra-op threads. All sides run under the same malloc, the one train.py runs under: tcmalloc where
installed (zoo.allocator; `ZOO_MALLOC=system` for glibc's), recorded per side as `malloc`. Sampling runs
on one device either way. All three draw the same batches: the JAX task's `train_batch(step)` for steps
0 .. warmup + steps - 1, from the same seed, and initialise from the same distributions (not the same
weights, so losses agree within noise, not bit for bit).

`--device gpu` runs every side on CUDA (JAX's GPU backend; the twins on `cuda`, each twin moving its batches
there), and refuses with one line where either runtime sees no GPU. Precision follows the config:
`--config.compute_dtype=bfloat16` computes the JAX side in bfloat16 and runs the twins under bfloat16
autocast, parameters and optimizer states float32 on both sides; the default is float32.

Figures per side:
* steps/s: the median over `--windows` windows of the `--steps` timed steps, after `--warmup` steps (the
  first of which pays JAX's compilation or torch.compile's, reported as warm-up seconds). Each window ends
  with one sync (block_until_ready / .item()), as the training loop syncs only at log steps. With
  `--repeats R` the sides run R times in turn (jax, eager, compile; then eager, compile, jax; ...) and
  steps/s and the sampling speeds are the medians of the R runs' figures (each run's steps/s is in
  `repeat_steps_per_s`, crashed runs are counted in `failed_repeats`); memory, warm-up and losses are the
  first run's. On a shared machine the speed drifts by 10% between minutes, and taking turns exposes every
  side to the same drift.
* peak memory: the process's peak resident set (CPU) or the side's device allocator peak (GPU), in MB.
* loss: the mean training loss over the last window (the step's metrics["loss"] on both sides).
* FLOPs per step: XLA's cost analysis of the compiled JAX step (the same model on both sides), and MFU =
  FLOPs x steps/s / the machine's measured matmul peak (`matmul_peak_flops`: the best float32 N x N
  matmul timed in JAX), so MFU says how close the step runs to what this machine's matmul kernel reaches,
  not to a datasheet. XLA's cost analysis counts a `lax.scan` body ONCE, not once per step: for the music
  LSTM (384 steps) and the text GAN's 24-step rollout the FLOPs, and so MFU, are understated. With
  --cpu-devices N the FLOPs are the N devices' shares summed, and the peak is still one matmul on the
  whole machine.
* sampling (`sample/s`): tokens/s (poem, textgan), images/s (dcgan, vae) or melodies/s (music) from a
  freshly initialised model, the same count on both sides; for the LM also JAX without the KV cache (full
  recomputation per token) and the twin's cached generate.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import record
from benchmarks.timing import best_seconds, time_windows
from zoo import allocator, registry
from zoo import config as config_lib
from zoo.errors import UsageError

SIDES = ("jax", "torch", "torch_compile")
# The benchmark config of each family: its training config with these overrides (documented in
# docs/benchmarks.md). The LM gets a context long enough to sample 256 new tokens.
BENCH_OVERRIDES: dict[str, dict[str, Any]] = {
    "poem": {"model.context_length": 512},
    "poem-zh": {"model.context_length": 512},
    "textgan": {},
    "dcgan": {},
    "vae": {},
    "music": {},
}
LOSS_KEY = {"dcgan": "d_loss"}  # the loss compared (the twins' step returns the same one); default "loss"
SAMPLE_COUNT = {"poem": 8, "poem-zh": 8, "textgan": 64, "dcgan": 64, "vae": 64, "music": 8}
LM_NEW_TOKENS = 256


# ----------------------------------------------------------------------------------------------- config


def bench_config(name: str, overrides: Sequence[str]) -> Any:
    """The family's training config, BENCH_OVERRIDES[name], then `--config.KEY=VALUE` overrides."""
    entry = registry.get(name)
    config = config_lib.load_config_file(entry.config_path)
    fixed = [f"--config.{k}={v}" for k, v in BENCH_OVERRIDES.get(name, {}).items()]
    config = config_lib.apply_overrides(config, [*fixed, *overrides])
    if name == "textgan":
        config.init_from = ""  # a timing run starts from a fresh generator, not from the MLE export
    return config


def check_gpu() -> None:
    """One line, before any side starts, where JAX has no GPU to run on."""
    import jax

    try:
        jax.devices("gpu")
    except RuntimeError:
        raise UsageError(f"--device gpu: JAX sees no GPU (its backend here is {jax.default_backend()}; install "
                         "JAX's CUDA build)") from None


def build_task(name: str, config: Any, workdir: str) -> Any:
    return registry.resolve(registry.get(name).task)(config, workdir)


def batches(task: Any, count: int) -> list[dict[str, np.ndarray]]:
    return [task.train_batch(step, 0, 1) for step in range(count)]


def peak_memory_mb(device: str, side: str = "jax") -> float:
    """This process's peak resident set on the CPU; on a GPU the peak of the side's own device allocator
    (JAX's, or PyTorch's caching allocator)."""
    if device == "gpu" and side != "jax":
        import torch

        return torch.cuda.max_memory_allocated() / 2 ** 20
    if device == "gpu":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        return stats.get("peak_bytes_in_use", float("nan")) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


# ------------------------------------------------------------------------------------------------- JAX


def matmul_peak_flops(device: str) -> float:
    """FLOP/s of the best float32 N x N matmul in JAX on this machine: N in (1024, 2048, 3072) on the CPU
    (8192 on a GPU), best of 8 runs each, so a passing hiccup does not lower the peak MFU is measured against."""
    import jax
    import jax.numpy as jnp

    best_rate = 0.0
    for n in ((8192,) if device == "gpu" else (1024, 2048, 3072)):
        a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
        b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
        f = jax.jit(lambda x, y: x @ y)
        best_rate = max(best_rate, 2 * n ** 3 / best_seconds(functools.partial(f, a, b), 8))
    return best_rate


def _cost_flops(compiled: Any) -> float | None:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list | tuple):
        analysis = analysis[0] if analysis else {}
    flops = (analysis or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def jax_side(name: str, config: Any, steps: int, warmup: int, windows: int, device: str,
             cpu_devices: int = 1) -> dict:
    import jax

    from zoo.train import mesh as mesh_lib
    from zoo.train.loop import compiler_options, loop_functions

    with tempfile.TemporaryDirectory() as workdir:
        task = build_task(name, config, workdir)
        dims = dict(task.model_dims)
        # As train.py lays out a step: the batch split along a `data` mesh, the state replicated. The mesh is
        # the first `cpu_devices` devices (one, unless --cpu-devices), so a multi-GPU host still times one GPU.
        mesh = mesh_lib.make_mesh(jax.devices()[:cpu_devices])
        mesh_lib.check_batch_size(config.batch_size, mesh)
        data = [jax.device_put(b, mesh_lib.batch_sharding(mesh)) for b in batches(task, warmup + steps)]
        init_state, train_step = loop_functions(task, config.seed)
        state = jax.jit(init_state, out_shardings=mesh_lib.replicated(mesh))()
        options = compiler_options(config)  # before t0: its trial compile is not the step's
        params = sum(x.size for k, v in state["task"].items() if k == "params" or k.endswith("_params")
                     for x in jax.tree.leaves(v))  # every trainable network (a GAN's G and D)
        t0 = time.perf_counter()
        out_shardings = (mesh_lib.replicated(mesh),) * 2  # the new state and the metrics
        compiled = jax.jit(train_step, donate_argnums=0, out_shardings=out_shardings,
                           compiler_options=options).lower(state, data[0]).compile()
        compile_s = time.perf_counter() - t0
        # XLA's cost analysis of a partitioned program counts one device's share: the whole step is N shares
        # (work every device repeats, e.g. the optimizer on the replicated state, is counted N times).
        flops = _cost_flops(compiled)
        flops = flops * mesh.size if flops is not None else None

        def run_step(i: int) -> Any:
            nonlocal state
            state, metrics = compiled(state, data[i])
            return metrics[LOSS_KEY.get(name, "loss")]

        timing = time_windows(run_step, jax.block_until_ready, warmup, steps, windows)
        timing["compile_s"] += compile_s  # the first step's time includes its compilation
        timing["warmup_s"] += compile_s
        losses = [float(x) for x in jax.device_get(timing.pop("losses"))]
        last = timing.pop("last_window")
        memory = peak_memory_mb(device)
        # Sampling on one device: with the state replicated every device would run the whole sampler.
        sampling = jax_sampling(name, task, jax.device_put(state["task"], jax.devices()[0]))
    return {**timing, "devices": mesh.size, "peak_memory_mb": memory, "final_loss": float(np.mean(losses[-last:])),
            "losses": losses, "flops_per_step": flops, "params": int(params), "dims": dims,
            "matmul_peak_flops": matmul_peak_flops(device), "malloc": allocator.name(),
            "compiler_options": options, **sampling}


def jax_sampling(name: str, task: Any, state: dict) -> dict:
    """Sampling speed of the freshly trained JAX model: {"sample_unit", "sample_per_s", ...}."""
    import jax
    from flax import nnx

    count = SAMPLE_COUNT[name]
    key = jax.random.PRNGKey(0)
    if name in ("poem", "poem-zh", "textgan"):
        from zoo.sample.decoding import generate, generate_reference

        if name != "textgan":
            graphdef, params = task.graphdef, state["params"]
            new = min(LM_NEW_TOKENS, task.config.model.context_length - 1)
        else:
            graphdef, params = task.g_def, state["g_params"]
            new = task.length
        params = nnx.State(params) if isinstance(params, dict) else params
        prompt = np.zeros((count, 1), np.int32)
        cached = best_seconds(lambda: generate(graphdef, params, prompt, max_new_tokens=new, key=key))
        out = {"sample_unit": "tokens", "sample_per_s": count * new / cached, "sample_tokens": new}
        if name != "textgan":
            full = best_seconds(lambda: generate_reference(graphdef, params, prompt, max_new_tokens=new, key=key), 1)
            out["sample_full_recompute_per_s"] = count * new / full
        return out
    if name in ("dcgan", "vae"):
        from zoo.models import build
        from zoo.models.dcgan import DCGAN
        from zoo.sample.images import _sample_jit

        if name == "dcgan":  # the sampling interface lives on the whole GAN; only G's state is needed
            model = build(DCGAN, task.config, nnx.Rngs(0), **task.model_dims)
            nnx.update(model.generator, task.export_params(state))
        else:
            model = nnx.merge(task.graphdef, state["params"])
        graphdef, params = nnx.split(model)
        cond = np.tile(task.embeddings[:1], (count, 1)).astype(np.float32)
        seconds = best_seconds(lambda: _sample_jit(graphdef, params, cond, key, temperature=1.0, same_latent=False))
        return {"sample_unit": "images", "sample_per_s": count / seconds}
    from zoo.melody.encoding import BOS
    from zoo.melody.grammar import state_after
    from zoo.sample.music import DEFAULTS, TOKENS_PER_BAR
    from zoo.sample.music import _bucket as music_bucket
    from zoo.sample.music import _sample_jit as music_sample

    primer = np.zeros(64, np.int32)
    primer[0] = BOS
    grammar = {k: np.int32(v) for k, v in state_after(primer[:1]).items()}
    cond = np.tile(music_caption(task)[None], (count, 1))
    bars = DEFAULTS["bars"]  # zoo.sample.music's own buffer for its default 16 bars, as the twin's
    length = music_bucket(bars * TOKENS_PER_BAR + 16)

    def run() -> Any:
        return music_sample(task.graphdef, state["params"], cond, primer, np.int32(1), grammar, np.int32(bars), key,
                            length=length, temperature=1.0, top_k=0, top_p=1.0)

    return {"sample_unit": "melodies", "sample_per_s": count / best_seconds(run)}


def music_caption(task: Any) -> np.ndarray:
    """The caption vector both sides' melodies are sampled for: the first caption's embedding, unit norm."""
    cond = np.asarray(task.embeddings[0], np.float32)
    return cond / max(float(np.linalg.norm(cond)), 1e-6)


# ----------------------------------------------------------------------------------------------- torch


def build_twin(name: str, config: Any, task: Any) -> Any:
    """The PyTorch twin of `task`'s model, seeded by config.seed (its module's `task_dims(task)` where it has
    one, else the task's model_dims)."""
    import importlib

    module = importlib.import_module(f"benchmarks.torch.{TWIN_MODULES[name]}")
    dims = module.task_dims(task) if hasattr(module, "task_dims") else dict(task.model_dims)
    return module.build(config, dims, int(config.seed))


def torch_side(name: str, config: Any, steps: int, warmup: int, windows: int, device: str, compiled: bool) -> dict:
    import torch

    if device == "gpu" and not torch.cuda.is_available():
        raise UsageError("--device gpu: PyTorch sees no CUDA device (install a CUDA build of torch)")
    with tempfile.TemporaryDirectory() as workdir:
        task = build_task(name, config, workdir)
        data = batches(task, warmup + steps)
        twin = build_twin(name, config, task)
        if compiled:
            twin.compile()
        timing = time_windows(lambda i: twin.step(data[i]), float, warmup, steps, windows)
        losses = [float(x) for x in timing.pop("losses")]
        last = timing.pop("last_window")
        out = {**timing, "peak_memory_mb": peak_memory_mb(device, "torch"),
               "final_loss": float(np.mean(losses[-last:])), "losses": losses, "params": int(twin.num_params()),
               "threads": torch.get_num_threads(), "malloc": allocator.name()}
        if not compiled:  # sampling is compared in eager mode (a compiled sampler recompiles per length)
            out.update(_torch_sampling(name, twin, task))
    return out


def _torch_sampling(name: str, twin: Any, task: Any) -> dict:
    """Outputs per second of the twin's sampler (one timed run: eager mode has nothing to warm up beyond a
    small first call), and for the LM also with its KV cache."""
    import torch

    count = SAMPLE_COUNT[name]
    token_family = name in ("poem", "poem-zh", "textgan")
    out = {}
    runs = [("sample_per_s", twin.sample)]
    if name == "music":  # the same caption as the JAX side's melodies
        runs = [("sample_per_s", lambda c, s: twin.sample(c, s, cond=music_caption(task)))]
    if name in ("poem", "poem-zh"):  # nanoGPT's generate (no cache) first, then the twin's KV-cache sampler
        runs.append(("sample_cached_per_s", lambda c, s: twin.sample(c, s, cached=True)))
    with torch.no_grad():
        twin.sample(2, 1, new_tokens=2) if name in ("poem", "poem-zh") else twin.sample(2, 1)
        for key, fn in runs:
            t0 = time.perf_counter()
            sampled = fn(count, 0)
            seconds = time.perf_counter() - t0
            out[key] = (int(sampled.numel()) if token_family else count) / seconds
    return out


TWIN_MODULES = {"poem": "lm", "poem-zh": "lm", "textgan": "textgan", "dcgan": "dcgan", "vae": "vae", "music": "music"}


# --------------------------------------------------------------------------------------------- harness


def run_side(side: str, args: argparse.Namespace, overrides: Sequence[str]) -> dict:
    """One side in a fresh subprocess; its JSON, or {"error": ...} when it could not run."""
    command = [sys.executable, "-m", "benchmarks.compare", "--model", args.model, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--windows", str(args.windows), "--device", args.device,
               "--cpu-devices", str(args.cpu_devices), "--side", side, *overrides]
    return run_json(command, side_env(side, args.cpu_devices))


def side_env(side: str, cpu_devices: int) -> dict[str, str]:
    """The environment of a side's subprocess. Every side runs under the same malloc, the one train.py
    runs under (zoo.allocator: tcmalloc where installed, ZOO_MALLOC=system for glibc's). The JAX side gets
    exactly `cpu_devices` host devices: the flag appended to XLA_FLAGS overrides a device count already
    there, e.g. a user's 8 fake devices."""
    env = allocator.environment(os.environ)
    if side == "jax":
        flag = f"--xla_force_host_platform_device_count={cpu_devices}"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    return env


def run_json(command: Sequence[str], env: dict[str, str] | None = None) -> dict:
    """Runs a side's subprocess: the last JSON line it prints, or {"error": its last stderr line,
    "returncode"} when it failed or printed none."""
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": tail[:300], "returncode": result.returncode}
    return json.loads(lines[-1])


MEDIAN_OF_REPEATS = ("steps_per_s", "sample_per_s", "sample_full_recompute_per_s", "sample_cached_per_s")


def combine_repeats(runs: list[dict]) -> dict:
    """One side's figures from its repeated runs: the speeds (MEDIAN_OF_REPEATS) are the median over the
    good runs (steps/s of each in `repeat_steps_per_s`), everything else (memory, warm-up, losses) the first
    good run's; `failed_repeats` counts the runs that crashed. The first error if no run was good."""
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[0]
    combined = {**good[0], "repeat_steps_per_s": [r["steps_per_s"] for r in good],
                "failed_repeats": len(runs) - len(good)}
    for key in MEDIAN_OF_REPEATS:
        values = [r[key] for r in good if r.get(key) is not None]
        if values:
            combined[key] = float(np.median(values))
    return combined


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.3e}"
    return str(x)


def summary(name: str, results: dict[str, dict], config: Any, args: argparse.Namespace) -> dict:
    """The headline JSON figures (steps/s per side, final losses, MFU, FLOPs), the settings, and every side's
    own figures (`sides`)."""
    jax_r, eager, comp = (results.get(s, {}) for s in SIDES)

    def rate(r: dict) -> float | None:
        return r.get("steps_per_s") if "error" not in r and r else None

    mfu = None
    if rate(jax_r) and jax_r.get("flops_per_step"):
        mfu = jax_r["flops_per_step"] * jax_r["steps_per_s"] / jax_r["matmul_peak_flops"]
    return {
        "model": name, "device": args.device, "steps": args.steps, "warmup": args.warmup, "windows": args.windows,
        "repeats": args.repeats, "cpu_devices": args.cpu_devices,
        "batch_size": int(config.batch_size), "overrides": {**BENCH_OVERRIDES.get(name, {})},
        "command_line_overrides": list(args.overrides),
        "jax_steps_per_s": rate(jax_r), "torch_eager_steps_per_s": rate(eager),
        "torch_compile_steps_per_s": rate(comp),
        "jax_final_loss": jax_r.get("final_loss"), "torch_final_loss": eager.get("final_loss"),
        "torch_compile_final_loss": comp.get("final_loss"), "mfu": mfu,
        "flops_per_step": jax_r.get("flops_per_step"), "matmul_peak_flops": jax_r.get("matmul_peak_flops"),
        "sides": results,
    }


def markdown(s: dict) -> str:
    sides = s["sides"]
    cols = [c for c in SIDES if c in sides]
    title = {"jax": "JAX (zoo)", "torch": "PyTorch eager", "torch_compile": "torch.compile"}
    rows = [
        ("train steps/s (median of windows)", "steps_per_s"),
        ("warm-up: first step incl. compile (s)", "compile_s"),
        ("peak memory (MB)", "peak_memory_mb"),
        (f"loss (mean of the last window, after {s['warmup'] + s['steps']} steps)", "final_loss"),
        ("parameters", "params"),
        (f"sampling ({sides.get('jax', {}).get('sample_unit', 'outputs')}/s)", "sample_per_s"),
    ]
    n = sides.get("jax", {}).get("devices", 1)  # what the JAX side ran on, not what was asked
    devices = f", JAX on {n} devices" if n > 1 else ""
    mallocs = sorted({_malloc_label(sides[c].get("malloc", "not recorded")) for c in cols})
    lines = [f"### {s['model']} ({s['device']}{devices}, batch {s['batch_size']}, {s['steps']} timed steps, "
             f"malloc: {', '.join(mallocs)})", "",
             "| | " + " | ".join(title[c] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for label, key in rows:
        cells = [sides[c].get("error", "")[:60] if "error" in sides[c] and key == "steps_per_s" else
                 _fmt(sides[c].get(key)) for c in cols]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    j = sides.get("jax", {})
    extra = []
    for c in cols[1:]:
        if s.get("jax_steps_per_s") and sides[c].get("steps_per_s"):
            extra.append(f"JAX / {title[c]} train speed: {s['jax_steps_per_s'] / sides[c]['steps_per_s']:.2f}x")
    if s.get("mfu") is not None:
        extra.append(f"FLOPs per step {j['flops_per_step']:.3e}; matmul peak {j['matmul_peak_flops'] / 1e9:.1f} "
                     f"GFLOP/s; MFU {100 * s['mfu']:.1f}%")
    if "sample_full_recompute_per_s" in j:
        extra.append(f"LM sampling {j['sample_tokens']} new tokens: JAX KV cache {j['sample_per_s']:.0f} tok/s, "
                     f"JAX full recomputation {j['sample_full_recompute_per_s']:.0f} tok/s "
                     f"({j['sample_per_s'] / j['sample_full_recompute_per_s']:.1f}x)")
    for c in cols:
        if sides[c].get("failed_repeats"):
            extra.append(f"{title[c]}: {sides[c]['failed_repeats']} of its repeated runs crashed")
    if "sample_cached_per_s" in sides.get("torch", {}):
        extra.append(f"PyTorch twin with a KV cache: {sides['torch']['sample_cached_per_s']:.0f} tok/s")
    return "\n".join(lines + [""] + [f"- {e}" for e in extra])


def _malloc_label(name: str) -> str:
    """"libtcmalloc_minimal.so.4.5.10 TCMALLOC_RELEASE_RATE=0" -> "tcmalloc_minimal TCMALLOC_RELEASE_RATE=0"."""
    library, _, settings = name.partition(" ")
    return " ".join(filter(None, [library.split(".so")[0].removeprefix("lib"), settings]))


def check_overrides(overrides: Sequence[str]) -> None:
    """The benchmark tools take config overrides and nothing else beyond their own flags."""
    bad = [o for o in overrides if not o.startswith("--config.")]
    if bad:
        raise UsageError(f"unknown argument {bad[0]!r} (config overrides look like --config.KEY=VALUE)")


def _usage_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per side (after warm-up)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--json", type=Path, nargs="?", const=True,
                        help="also write the figures here (no PATH: benchmarks/results/compare_NAME_DEVICE.json)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile side")
    parser.add_argument("--repeats", type=int, default=1, help="run the sides this many times in turn")
    parser.add_argument("--cpu-devices", type=int, default=1,
                        help="on the CPU, run the JAX side data-parallel over this many host devices (the "
                             "shared loop's batch split, XLA_FLAGS=--xla_force_host_platform_device_count)")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # internal: run one side
    parser.error = _usage_error  # one line and exit 2, as every zoo command-line tool
    args, overrides = parser.parse_known_args(argv)
    args.overrides = overrides
    try:
        check_overrides(overrides)
        if min(args.steps, args.warmup, args.windows, args.repeats, args.cpu_devices) < 1:
            raise UsageError("--steps, --warmup, --windows, --repeats and --cpu-devices must be >= 1")
        if args.cpu_devices > 1 and args.device != "cpu":
            raise UsageError("--cpu-devices is for --device cpu")
        if args.device == "gpu" and args.side is None:
            check_gpu()
        registry.get(args.model)
        if args.model not in TWIN_MODULES:
            raise UsageError(f"no PyTorch twin for {args.model}; choose one of {', '.join(TWIN_MODULES)}")
        config = bench_config(args.model, overrides)
        if config.batch_size % args.cpu_devices:
            raise UsageError(f"--cpu-devices {args.cpu_devices} must divide the batch size {config.batch_size}")
        if args.side == "jax":
            out = jax_side(args.model, config, args.steps, args.warmup, args.windows, args.device,
                           args.cpu_devices)
        elif args.side is not None:
            out = torch_side(args.model, config, args.steps, args.warmup, args.windows, args.device,
                             compiled=args.side == "torch_compile")
        if args.side is not None:
            print(json.dumps(out))
            return
        import importlib.util

        sides = ["jax"]
        if importlib.util.find_spec("torch") is None:
            print("note: PyTorch is not installed (pip install -e .[torch]): the JAX side only", file=sys.stderr)
        else:
            sides += ["torch"] + ([] if args.no_compile else ["torch_compile"])
        runs: dict[str, list[dict]] = {side: [] for side in sides}
        for round_ in range(args.repeats):
            for side in sides[round_ % len(sides):] + sides[:round_ % len(sides)]:  # each side leads a round
                runs[side].append(run_side(side, args, overrides))
                if runs[side][-1].get("returncode") == 2:  # the side refused its input: say it once, like any tool
                    raise UsageError(runs[side][-1]["error"].removeprefix("error: "))
        results = {side: combine_repeats(r) for side, r in runs.items()}
        s = summary(args.model, results, config, args)
        print(markdown(s))
        if args.json is True:  # --json alone: the name docs/benchmarks.md quotes
            device = args.device if args.cpu_devices == 1 else f"{args.device}{args.cpu_devices}"
            args.json = record.RESULTS / f"compare_{args.model}_{device}.json"
        if args.json:
            record.write(args.json, s)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if any("error" in r for r in results.values()):
        raise SystemExit(1)  # a side crashed: its cell in the table says how


if __name__ == "__main__":
    allocator.restart_with_fast_malloc()  # as train.py runs
    main()
