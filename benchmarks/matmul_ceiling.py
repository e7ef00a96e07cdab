"""How much MFU a family's train step could reach on this machine: its matmuls, each timed alone.

    python -m benchmarks.matmul_ceiling --model NAME [--json [PATH]] [--config.KEY=VALUE ...]

MFU (benchmarks/compare.py) divides the step's FLOPs by the best square matmul this machine runs. A model's
own matmuls are not square: a 256-wide transformer multiplies [16384, 256] by [256, 768], whose short inner
dimension keeps the kernel far from its peak however well the rest of the step is written. This tool walks
the jaxpr of the family's jitted train step (the benchmark config of benchmarks/compare.py), collects every
`dot_general` with its shapes (a `lax.scan` body counts once per iteration), times each distinct one alone
(the best of a few back-to-back runs, compiled with the config's `xla_cpu_options` as the step is, so both
use the same kernels), and reports:

* matmul FLOPs per step and the seconds those matmuls take alone;
* the matmul-only ceiling: those FLOPs over those seconds, as a share of the square-matmul peak. That is the
  MFU the step would have if everything else (softmax, norms, elementwise work, optimizer) took no time;
* the measured step time and the share of it the matmuls alone account for;
* (in `--json`) every distinct matmul: shapes, count per step, milliseconds and GFLOP/s alone.

A `while_loop` body is counted once (its trip count is not static), a `cond` by its costliest branch, and
convolutions not at all (for the DCGAN and the VAE they are most of the FLOPs); the report says when it
met any of these. The ceiling is that of these kernels with XLA's layouts on this machine, not a bound on
any implementation: another kernel, layout or precision (bf16) could go past it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.compare import batches, bench_config, build_task, check_overrides, matmul_peak_flops
from benchmarks.timing import best_seconds, time_windows
from zoo import allocator
from zoo.errors import UsageError

DotKey = tuple[tuple[int, ...], tuple[int, ...], str, str, Any, Any]  # lhs, rhs, dtypes, dims, out dtype


def _sub_jaxprs(params: dict) -> list[Any]:
    found = []
    for value in params.values():
        for v in value if isinstance(value, list | tuple) else [value]:
            if hasattr(v, "eqns"):
                found.append(v)
            elif hasattr(v, "jaxpr") and hasattr(v.jaxpr, "eqns"):
                found.append(v.jaxpr)
    return found


def collect_dots(jaxpr: Any, times: int = 1, counts: Counter | None = None,
                 notes: set[str] | None = None) -> tuple[Counter, set[str]]:
    """Every dot_general in `jaxpr` and its sub-jaxprs -> Counter {DotKey: executions per call}."""
    counts = Counter() if counts is None else counts
    notes = set() if notes is None else notes
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            lhs, rhs = (v.aval for v in eqn.invars)
            key = (tuple(lhs.shape), tuple(rhs.shape), str(lhs.dtype), str(rhs.dtype),
                   eqn.params["dimension_numbers"], eqn.params.get("preferred_element_type"))
            counts[key] += times
            continue
        if name == "cond":  # one branch runs: count the one with the most matmul FLOPs
            branches = [collect_dots(b.jaxpr, times, None, notes)[0] for b in eqn.params["branches"]]
            counts.update(max(branches, key=lambda c: sum(dot_flops(k) * n for k, n in c.items())))
            notes.add("a cond counts its costliest branch")
            continue
        inner = times * eqn.params["length"] if name == "scan" else times
        if name == "while":
            notes.add("a while_loop body is counted once per call")
        if name == "conv_general_dilated":
            notes.add("convolutions are not counted (only dot_general)")
        for sub in _sub_jaxprs(eqn.params):
            collect_dots(sub, inner, counts, notes)
    return counts, notes


def dot_flops(key: DotKey) -> float:
    """2 x batch x contracted x free sizes: the multiply-adds of one dot_general."""
    lhs, rhs, _, _, ((lhs_contract, rhs_contract), (lhs_batch, rhs_batch)), _ = key
    lhs_free = [d for i, d in enumerate(lhs) if i not in lhs_contract and i not in lhs_batch]
    rhs_free = [d for i, d in enumerate(rhs) if i not in rhs_contract and i not in rhs_batch]
    return 2.0 * math.prod(lhs[i] for i in (*lhs_batch, *lhs_contract)) * math.prod(lhs_free) * math.prod(rhs_free)


def time_dot(key: DotKey, repeats: int = 10, trials: int = 3, options: dict[str, Any] | None = None) -> float:
    """Seconds of one such dot_general alone: the best of `trials` runs of `repeats` back-to-back calls,
    compiled with `options` (the step's XLA compiler options, so both use the same kernels)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    lhs, rhs, lt, rt, dims, out = key
    a = jax.random.normal(jax.random.PRNGKey(0), lhs, jnp.float32).astype(lt)
    b = jax.random.normal(jax.random.PRNGKey(1), rhs, jnp.float32).astype(rt)
    f = jax.jit(lambda x, y: lax.dot_general(x, y, dims, preferred_element_type=out), compiler_options=options)

    def back_to_back() -> Any:
        return [f(a, b) for _ in range(repeats)][-1]

    return best_seconds(back_to_back, trials) / repeats


def measure(name: str, overrides: Sequence[str], step_repeats: int = 6) -> dict:
    import jax

    from zoo.train.loop import compiler_options, loop_functions

    config = bench_config(name, overrides)
    with tempfile.TemporaryDirectory() as workdir:
        task = build_task(name, config, workdir)
        batch = jax.device_put(batches(task, 1)[0])
        init_state, train_step = loop_functions(task, config.seed)
        state = jax.jit(init_state)()
        counts, notes = collect_dots(jax.make_jaxpr(train_step)(state, batch).jaxpr)
        options = compiler_options(config)
        step = jax.jit(train_step, donate_argnums=0, compiler_options=options)

        def run_step(i: int) -> Any:
            nonlocal state
            state, metrics = step(state, batch)
            return metrics

        # Timed as benchmarks.compare times it (windows closed by one sync), so the shares compare.
        step_s = 1 / time_windows(run_step, jax.block_until_ready, 2, step_repeats, min(3, step_repeats))[
            "steps_per_s"]
    each = {k: time_dot(k, options=options) for k in counts}
    flops = sum(dot_flops(k) * n for k, n in counts.items())
    seconds = sum(each[k] * n for k, n in counts.items())
    table = sorted(({"lhs": k[0], "rhs": k[1], "dimension_numbers": k[4], "count": n, "ms_each": 1e3 * each[k],
                     "gflop_per_s": dot_flops(k) / each[k] / 1e9} for k, n in counts.items()),
                   key=lambda r: -r["ms_each"] * r["count"])
    peak = matmul_peak_flops("cpu" if jax.default_backend() == "cpu" else "gpu")
    return {"model": name, "device": jax.default_backend(), "matmul_flops_per_step": flops,
            "distinct_matmuls": len(counts), "matmuls_per_step": sum(counts.values()),
            "matmul_seconds_alone": seconds, "matmul_peak_flops": peak,
            "ceiling_mfu": flops / seconds / peak, "step_seconds": step_s,
            "step_mfu_matmul_flops": flops / step_s / peak, "matmul_share_of_step": seconds / step_s,
            "notes": sorted(notes), "matmuls": table}


def markdown(r: dict) -> str:
    return (f"{r['model']}: {r['matmuls_per_step']} matmuls per step ({r['distinct_matmuls']} distinct), "
            f"{r['matmul_flops_per_step']:.3e} FLOPs, {1e3 * r['matmul_seconds_alone']:.0f} ms alone "
            f"-> ceiling MFU {100 * r['ceiling_mfu']:.0f}% of {r['matmul_peak_flops'] / 1e9:.0f} GFLOP/s; "
            f"the step takes {1e3 * r['step_seconds']:.0f} ms (matmul MFU {100 * r['step_mfu_matmul_flops']:.0f}%), "
            f"{100 * r['matmul_share_of_step']:.0f}% of it in the matmuls' standalone time"
            + "".join(f"; note: {n}" for n in r["notes"]))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--json", type=Path, nargs="?", const=True,
                        help="also write the figures here (no PATH: benchmarks/results/ceiling_NAME_DEVICE.json)")
    args, overrides = parser.parse_known_args(argv)
    try:
        check_overrides(overrides)
        result = measure(args.model, overrides)
        print(markdown(result))
        if args.json is True:  # --json alone: the name docs/benchmarks.md quotes
            args.json = Path(__file__).resolve().parent / "results" / f"ceiling_{args.model}_{result['device']}.json"
        if args.json:
            args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    except (UsageError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    allocator.restart_with_fast_malloc()  # as train.py runs
    main()
