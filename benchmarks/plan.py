"""Scale on paper: what a GPT config's training step needs per chip, and how fast it could run, from the compiler.

    python -m benchmarks.plan --config CONFIG --devices N [--fsdp] [--batch B] [--remat] [--hbm GIB]
                              [--json [PATH]] [--config.KEY=VALUE ...]

It builds the step the training loop jits (zoo.train.loop.build_steps on the LM task, the loop's mesh and
state shardings, the batch split along `data`, the state donated) for N host devices
(XLA_FLAGS=--xla_force_host_platform_device_count=N, on the CPU), lowers it on abstract arrays (no data, no
parameters are ever allocated) and compiles it. XLA then says, per device:
* memory (`compiled.memory_analysis()`): the arguments (params, optimizer state, the batch), the outputs
  (the new state, aliased onto the donated arguments, and the metrics) and the temporaries: the
  activations kept for the backward pass and every other intermediate, as XLA's buffer assignment packs
  them. Need = arguments + outputs - aliased + temporaries.
* FLOPs (`compiled.cost_analysis()`): one device's share, times N for the step. For comparison, 6 N D (N
  parameters, D tokens) and nanoGPT's MFU count, 6 N D + 12 L C T D (L layers, C width, T context), which
  adds attention's score and value matmuls.

`--batch` sets the global batch (sequences a step, over all devices), `--fsdp` splits the state over the
devices, `--remat` recomputes each block in the backward pass (model.remat): the three knobs that make a
step fit. `--hbm GIB` replaces every target's memory (a what-if).

Each target's step time at a model-FLOPs utilisation (MFU) u is nanoGPT's FLOP count / (chips x peak x u),
tokens/s the batch's tokens over that. Peak bf16 FLOP/s and memory per chip, from the vendors:
* TPU v4: 275 TFLOP/s, 32 GiB HBM2; a v4-8 is 4 chips (8 TensorCores, 2 a chip).
  https://cloud.google.com/tpu/docs/v4
* TPU v5e: 197 TFLOP/s, 16 GB HBM2; a v5e-8 is 8 chips (1 TensorCore a chip). https://cloud.google.com/tpu/docs/v5e
* TPU v5p: 459 TFLOP/s, 95 GB HBM2e; a v5p-8 is 4 chips (8 TensorCores). https://cloud.google.com/tpu/docs/v5p
* H100 SXM: 989 TFLOP/s dense bf16 (the datasheet's 1,979 is with 2:4 sparsity), 80 GB HBM3.
  https://www.nvidia.com/en-us/data-center/h100/
A target whose chip count differs from N gets no memory verdict (the per-device batch would differ): rerun
with --devices set to its chip count.

The CPU compile keeps remat's optimization barriers (KEEP_REMAT), which XLA's CPU pipeline otherwise removes.
Caveats: the memory and FLOPs are the CPU compiler's. TPU and GPU compilers fuse, lay out and schedule
differently (and the CPU backend computes some bfloat16 elementwise work in float32), so read the bytes as
an estimate within tens of percent, not a promise; the state's bytes are exact. The step time assumes
the collectives overlap with compute, and a runtime reserves some of each chip's memory for itself.

`--json` without PATH writes benchmarks/results/plan_MODEL_cpuN.json (MODEL: the config file's name).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import record
from zoo import config as config_lib
from zoo import registry
from zoo.cli import ArgumentParser
from zoo.errors import UsageError

GIB = 2**30
LM_TASK = "zoo.objectives.lm:build_task"
# XLA's CPU pipeline turns the optimization barriers that jax.checkpoint (model.remat) places into no-ops,
# so CSE merges the recomputed forward back into the saved one and remat saves nothing; TPU and GPU
# compilers keep them. Without this pass the CPU compile plans remat's memory as an accelerator's does.
KEEP_REMAT = {"xla_disable_hlo_passes": "cse_barrier_expander"}
MFUS = (0.4, 0.6)


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    chips: int
    peak_flops: float  # bf16 FLOP/s a chip, dense
    hbm_bytes: float  # a chip's memory
    note: str


TARGETS = (
    Target("TPU v4-8", 4, 275e12, 32 * GIB, "4 chips"),
    Target("TPU v5e-8", 8, 197e12, 16e9, "8 chips"),
    Target("TPU v5p-8", 4, 459e12, 95e9, "4 chips"),
    Target("8 x H100 SXM", 8, 989e12, 80e9, "8 GPUs"),
)


# ---------------------------------------------------------------------------------------------- devices


def _device_flag(n: int) -> str:
    return f"--xla_force_host_platform_device_count={n}"


def host_devices_environment(n: int, environ: dict[str, str]) -> dict[str, str]:
    """`environ` with JAX on the CPU and `n` host devices: the flag appended to XLA_FLAGS overrides a device
    count already there."""
    env = dict(environ)
    env["JAX_PLATFORMS"] = "cpu"
    flags = env.get("XLA_FLAGS", "")
    if not flags.endswith(_device_flag(n)):
        env["XLA_FLAGS"] = f"{flags} {_device_flag(n)}".strip()
    return env


def ensure_host_devices(n: int, may_restart: bool) -> None:
    """Makes this process's JAX start with `n` CPU devices. XLA reads the flag when JAX's backend starts: set
    it now if JAX is not imported yet, else start the command again with it (only a command may; a caller
    that already started JAX with another device count gets a UsageError)."""
    env = host_devices_environment(n, dict(os.environ))
    if env == dict(os.environ):
        return
    if "jax" not in sys.modules:
        os.environ.update(env)
        return
    import jax

    if jax.default_backend() == "cpu" and jax.device_count() == n:
        return
    if not may_restart:
        raise UsageError(f"this process's JAX already started with {jax.device_count()} devices, not {n}: "
                         "run python -m benchmarks.plan as a command")
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


# ------------------------------------------------------------------------------------------------- plan


def plan_config(path: str, overrides: Sequence[str], batch: int | None, fsdp: bool, remat: bool) -> Any:
    """The config at `path` with `--config.` overrides, then the knobs."""
    config = config_lib.apply_overrides(config_lib.load_config_file(path), list(overrides))
    if registry.get(config.get("model_name", "")).task != LM_TASK:
        raise UsageError(f"{path}: the plan sizes the GPT family (model_name poem or poem-zh), "
                         f"not {config.model_name}")
    if batch is not None:
        config.batch_size = batch
    if fsdp:
        config.fsdp = True
    if remat:
        config.model.remat = True
    return config


def vocab_size(config: Any) -> int:
    """The model's vocabulary: the config's vocab_size (a BPE's size; the plan trains no tokenizer)."""
    from zoo.text.tokenizer import DEFAULT_BPE_VOCAB

    if config.get("vocab_size", 0):
        return int(config.vocab_size)
    if config.get("tokenizer", "bpe") == "bpe":
        return DEFAULT_BPE_VOCAB
    raise UsageError("a char tokenizer's vocabulary comes from the data: set --config.vocab_size")


def _bytes(tree: Any, shardings: Any) -> int:
    """Bytes of `tree`'s arrays on one device under `shardings`."""
    import jax

    return sum(math.prod(s.shard_shape(a.shape)) * a.dtype.itemsize
               for a, s in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings), strict=True))


def _cost_flops(compiled: Any) -> float:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list | tuple):
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", 0.0))


def compile_plan(config: Any, devices: int) -> dict[str, Any]:
    """Compiles the loop's train step for `config` on `devices` host devices; XLA's per-device figures."""
    import jax
    import jax.numpy as jnp

    from zoo.objectives.lm import LMTask
    from zoo.train import mesh as mesh_lib
    from zoo.train.loop import build_steps

    if jax.device_count() != devices:
        raise UsageError(f"JAX sees {jax.device_count()} devices, not {devices}")
    mesh = mesh_lib.make_mesh()
    mesh_lib.check_batch_size(config.batch_size, mesh)
    config = config_lib.apply_overrides(config, [])  # an unlocked copy: the CPU compile keeps remat's barriers
    config.xla_cpu_options = {**(config.get("xla_cpu_options") or {}), **KEEP_REMAT}
    task = LMTask.without_data(config, vocab_size(config))
    steps = build_steps(config, task, mesh)  # exactly what the loop jits: its shardings, the state donated
    tokens = jax.ShapeDtypeStruct((config.batch_size, config.model.context_length + 1), jnp.int32,
                                  sharding=steps.batch_sharding)
    compiled = steps.train_step.lower(steps.abstract_state, {"tokens": tokens}).compile()
    abstract, shardings, batch_sharding = steps.abstract_state, steps.state_shardings, steps.batch_sharding
    memory = compiled.memory_analysis()
    task_shardings = shardings["task"]
    params = abstract["task"]["params"]
    n_params = sum(a.size for a in jax.tree.leaves(params))
    return {
        "devices": devices,
        "params": int(n_params),
        "position_params": int(config.model.context_length * config.model.embed_dim),
        "params_bytes": _bytes(params, task_shardings["params"]),
        "opt_state_bytes": _bytes(abstract["task"]["opt_state"], task_shardings["opt_state"]),
        "state_bytes": _bytes(abstract, shardings),
        "batch_bytes": _bytes(tokens, batch_sharding),
        "argument_bytes": int(memory.argument_size_in_bytes),
        "output_bytes": int(memory.output_size_in_bytes),
        "alias_bytes": int(memory.alias_size_in_bytes),
        "temp_bytes": int(memory.temp_size_in_bytes),
        "code_bytes": int(memory.generated_code_size_in_bytes),
        "xla_flops_per_device": _cost_flops(compiled),
    }


def summarise(config: Any, compiled: dict[str, Any], hbm_gib: float | None) -> dict[str, Any]:
    """The plan's figures: memory per device, FLOPs per step and each target's verdict and speed."""
    n = compiled["devices"]
    m = config.model
    need = (compiled["argument_bytes"] + compiled["output_bytes"] - compiled["alias_bytes"]
            + compiled["temp_bytes"])
    tokens = config.batch_size * m.context_length
    six_nd = 6 * compiled["params"] * tokens
    # nanoGPT's estimate_mfu (PaLM's appendix B): 6 FLOPs per parameter and token (the position table's
    # lookups are no matmul), plus attention's two T x T matmuls, 12 L C T per token forward and backward.
    model_flops = (6 * (compiled["params"] - compiled["position_params"])
                   + 12 * m.num_layers * m.embed_dim * m.context_length) * tokens
    targets = []
    for t in TARGETS:
        hbm = hbm_gib * GIB if hbm_gib is not None else t.hbm_bytes
        row = {"name": t.name, "chips": t.chips, "peak_tflops": t.peak_flops / 1e12, "hbm_gib": hbm / GIB,
               "note": t.note, "fits": need <= hbm if t.chips == n else None}
        for u in MFUS:
            seconds = model_flops / (t.chips * t.peak_flops * u)
            row[f"step_s_at_{round(u * 100)}"] = seconds
            row[f"tokens_per_s_at_{round(u * 100)}"] = tokens / seconds
        targets.append(row)
    return {
        "config": {"layers": m.num_layers, "embed_dim": m.embed_dim, "heads": m.num_heads,
                   "context": m.context_length, "vocab": vocab_size(config), "batch_size": config.batch_size,
                   "per_device_batch": config.batch_size // n, "compute_dtype": config.compute_dtype,
                   "fsdp": bool(config.fsdp), "remat": bool(m.get("remat", False))},
        **compiled,
        "need_bytes": need,
        "tokens_per_step": tokens,
        "xla_flops_per_step": compiled["xla_flops_per_device"] * n,
        "six_nd_flops": six_nd,
        "model_flops": model_flops,
        "targets": targets,
        "advice": advice(compiled, need, config, [t for t in targets if t["fits"] is False]),
    }


def advice(compiled: dict[str, Any], need: int, config: Any, misses: list[dict]) -> list[str]:
    """One line per target the layout does not fit: which knob makes it fit, from the breakdown."""
    n = compiled["devices"]
    state = compiled["state_bytes"]
    fsdp_state = state / n  # about: the small arrays stay replicated
    per_device = config.batch_size // n
    activations = compiled["temp_bytes"] + compiled["batch_bytes"]
    lines = []
    for t in misses:
        hbm = t["hbm_gib"] * GIB
        room = hbm - (need - activations)  # what the state and outputs leave for the batch's work
        fixes = []
        if not config.fsdp and need - state + fsdp_state <= hbm:
            fixes.append(f"--fsdp (state {state / GIB:.2f} -> ~{fsdp_state / GIB:.2f} GiB)")
        # Temporaries scale about linearly with the per-device batch (the weights' gradients do not: an
        # over-estimate of what a smaller batch saves, so the figure is an upper bound).
        fitting = math.floor(per_device * room / activations) if activations and room > 0 else 0
        if 0 < fitting < per_device:
            fixes.append(f"--batch {fitting * n} or less (<= {fitting} a device, estimated)")
        if not config.model.get("remat", False):
            fixes.append("--remat (keeps one activation per block; rerun to see)")
        shortfall = (need - hbm) / GIB
        lines.append(f"{t['name']}: needs {need / GIB:.2f} GiB a chip, has {t['hbm_gib']:.2f} "
                     f"({shortfall:.2f} GiB short); try " + ("; ".join(fixes) or "more chips"))
    return lines


# ------------------------------------------------------------------------------------------------ table


def _gib(x: float) -> str:
    return f"{x / GIB:.2f} GiB" if x >= GIB / 10 else f"{x / 2**20:.2f} MiB"


def _flops(x: float) -> str:
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9)):
        if x >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x / 1e6:.2f} MFLOP"


def _seconds(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1e3:.1f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} us"


def table(s: dict[str, Any], command: str) -> str:
    """The plan as Markdown: the memory breakdown, the FLOPs, and each target."""
    c = s["config"]
    layout = ("FSDP" if c["fsdp"] else "replicated state") + (", remat" if c["remat"] else "")
    lines = [
        f"`{command}`",
        "",
        f"GPT {c['layers']} x {c['embed_dim']} ({c['heads']} heads), context {c['context']}, vocab {c['vocab']:,}: "
        f"{s['params']:,} parameters, {c['compute_dtype']}. Global batch {c['batch_size']} x {c['context']} = "
        f"{s['tokens_per_step']:,} tokens, {c['per_device_batch']} sequences a device on {s['devices']} devices; "
        f"{layout}.",
        "",
        "| per device (XLA memory_analysis) | bytes |",
        "|---|---|",
        f"| params (float32) | {_gib(s['params_bytes'])} |",
        f"| optimizer state (AdamW moments) | {_gib(s['opt_state_bytes'])} |",
        f"| batch (int32 tokens) | {_gib(s['batch_bytes'])} |",
        f"| temporaries (activations for the backward pass, gradients, intermediates) | {_gib(s['temp_bytes'])} |",
        f"| arguments / outputs / aliased (donated state) | {_gib(s['argument_bytes'])} / "
        f"{_gib(s['output_bytes'])} / {_gib(s['alias_bytes'])} |",
        f"| **need: arguments + outputs - aliased + temporaries** | **{_gib(s['need_bytes'])}** |",
        f"| generated code (host, not HBM) | {s['code_bytes'] / 2**20:.1f} MiB |",
        "",
        "| FLOPs per step | FLOPs | / 6ND |",
        "|---|---|---|",
        f"| XLA cost_analysis (per device x {s['devices']}) | {_flops(s['xla_flops_per_step'])} | "
        f"{s['xla_flops_per_step'] / s['six_nd_flops']:.2f} |",
        f"| 6 N D (N = {s['params']:,}, D = {s['tokens_per_step']:,}) | {_flops(s['six_nd_flops'])} | 1.00 |",
        f"| nanoGPT's MFU count: 6 N D + attention (the MFU basis below) | {_flops(s['model_flops'])} | "
        f"{s['model_flops'] / s['six_nd_flops']:.2f} |",
        "",
        f"Step times use the MFU count; XLA's count of the compiled step is "
        f"{s['xla_flops_per_step'] / s['model_flops']:.2f}x of it"
        + (" (remat recomputes each block's forward)." if c["remat"] else "."),
        "",
        "| target | chips | bf16 peak / chip | memory / chip | fits? | step @40% MFU | tokens/s @40% | "
        "step @60% MFU | tokens/s @60% |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in s["targets"]:
        if t["fits"] is None:
            fits = f"rerun --devices {t['chips']}"
        else:
            fits = "yes" if t["fits"] else "**no**"
        lines.append(f"| {t['name']} | {t['chips']} | {t['peak_tflops']:.0f} TFLOP/s | {_gib(t['hbm_gib'] * GIB)} | "
                     f"{fits} | {_seconds(t['step_s_at_40'])} | {t['tokens_per_s_at_40']:,.0f} | "
                     f"{_seconds(t['step_s_at_60'])} | {t['tokens_per_s_at_60']:,.0f} |")
    if s["advice"]:
        lines += ["", *(f"- does not fit: {a}" for a in s["advice"])]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str], may_restart: bool = False) -> int:
    """The command; `may_restart`: it may start itself again with the host devices it needs (the command
    line only, never a caller's process)."""
    parser = ArgumentParser(prog="python -m benchmarks.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a GPT config file, e.g. configs/gpt_124m.py")
    parser.add_argument("--devices", type=int, required=True, help="devices (chips) to lay the step out on")
    parser.add_argument("--fsdp", action="store_true", help="split the state over the devices")
    parser.add_argument("--batch", type=int, help="global batch size in sequences (default: the config's)")
    parser.add_argument("--remat", action="store_true", help="recompute each block in the backward pass")
    parser.add_argument("--hbm", type=float, metavar="GIB", help="every target's memory per chip, in GiB")
    parser.add_argument("--json", type=Path, nargs="?", const=True,
                        help="also write the figures here (no PATH: benchmarks/results/plan_MODEL_cpuN.json)")
    args, overrides = parser.parse_known_args(argv)
    if args.devices < 1 or (args.batch is not None and args.batch < 1):
        raise UsageError("--devices and --batch must be >= 1")
    if args.hbm is not None and not args.hbm > 0:
        raise UsageError(f"--hbm must be > 0 GiB, got {args.hbm}")
    config = plan_config(args.config, overrides, args.batch, args.fsdp, args.remat)
    ensure_host_devices(args.devices, may_restart)
    s = summarise(config, compile_plan(config, args.devices), args.hbm)
    command = "python -m benchmarks.plan " + " ".join(argv)
    s["command"] = command
    print(table(s, command))
    if args.json is True:  # --json alone: the name docs/benchmarks.md quotes
        name = f"plan_{Path(args.config).stem}_cpu{args.devices}.json"
        args.json = record.RESULTS / name
    if args.json:
        record.write(args.json, s)
    return 0


if __name__ == "__main__":
    import functools

    from zoo import cli

    cli.run(functools.partial(main, may_restart=True))  # tcmalloc first, as every command
