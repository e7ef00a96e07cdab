"""Do the JAX zoo and its PyTorch twin learn alike? Losses over several seeds, with a test of "within noise".

    python -m benchmarks.loss_agreement --model NAME [--seeds 5] [--steps 100] [--last 10] [--json [PATH]]
                                        [--config.KEY=VALUE ...]

One run of each side per seed s (`--config.seed=s`: the same batches on both sides, the task's
`train_batch(step)`; independent inits from the same distributions) over `--steps` steps of the family's
benchmark config (benchmarks.compare.bench_config). A run's figure is its mean training loss over the
last `--last` steps (the loss benchmarks.compare reports: LOSS_KEY). Across seeds each side gives a mean and
a standard deviation. Welch's t-test compares the means (unequal variances; Welch-Satterthwaite degrees of
freedom): "within noise" means no difference detectable at the 5% level (two-sided), and the 95% confidence
interval of the difference says how large a difference the seeds could still hide, so a wide interval (few
seeds, noisy losses) is visible rather than read as agreement. One seed, as in benchmarks.compare, cannot
say even this: a single pair of runs differs by the init's luck as much as by any real difference.

Each side runs in its own subprocess (its seeds one after the other), so the runtimes never share cores.
Prints a Markdown table; `--json PATH` also writes per-seed losses and the test (`--json` alone:
benchmarks/results/agreement_NAME_cpu.json, the file docs/benchmarks.md quotes).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import compare
from zoo import allocator, registry
from zoo.errors import UsageError

SIDES = ("jax", "torch")
LEVEL = 0.05  # two-sided significance level of the test


def jax_losses(name: str, config: Any, steps: int) -> list[float]:
    import tempfile

    import jax

    from zoo.train.loop import compiler_options, loop_functions

    with tempfile.TemporaryDirectory() as workdir:
        task = compare.build_task(name, config, workdir)
        init_state, train_step = loop_functions(task, config.seed)
        state = jax.jit(init_state)()
        step = jax.jit(train_step, donate_argnums=0, compiler_options=compiler_options(config))
        losses = []
        for i in range(steps):
            state, metrics = step(state, task.train_batch(i, 0, 1))
            losses.append(metrics[compare.LOSS_KEY.get(name, "loss")])
        return [float(x) for x in jax.device_get(losses)]


def torch_losses(name: str, config: Any, steps: int) -> list[float]:
    import tempfile

    with tempfile.TemporaryDirectory() as workdir:
        task = compare.build_task(name, config, workdir)
        twin = compare.build_twin(name, config, task)
        return [float(twin.step(task.train_batch(i, 0, 1))) for i in range(steps)]


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Welch's unequal-variance t-test of mean(a) = mean(b): means, sample standard deviations, the difference
    of means, its standard error, t, the Welch-Satterthwaite degrees of freedom, the two-sided p-value, the
    (1 - LEVEL) confidence interval of the difference, and within_noise = p >= LEVEL."""
    from scipy import stats

    mean_a, mean_b = statistics.fmean(a), statistics.fmean(b)
    sd_a, sd_b = statistics.stdev(a), statistics.stdev(b)
    va, vb = sd_a ** 2 / len(a), sd_b ** 2 / len(b)
    se = math.sqrt(va + vb)
    diff = mean_a - mean_b
    if se == 0:
        t, df, p = (0.0 if diff == 0 else math.copysign(math.inf, diff)), math.inf, float(diff == 0)
    else:
        t = diff / se
        df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
        p = float(2 * stats.t.sf(abs(t), df))
    half = float(stats.t.ppf(1 - LEVEL / 2, df)) * se if se > 0 else 0.0
    return {"mean_a": mean_a, "mean_b": mean_b, "sd_a": sd_a, "sd_b": sd_b, "difference": diff,
            "standard_error": se, "t": t, "df": df, "p": p, "ci_low": diff - half, "ci_high": diff + half,
            "within_noise": bool(p >= LEVEL)}


def run_side(side: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, "-m", "benchmarks.loss_agreement", "--model", args.model, "--seeds", str(args.seeds),
               "--steps", str(args.steps), "--last", str(args.last), "--side", side, *args.overrides]
    return compare.run_json(command)


def markdown(out: dict) -> str:
    test = out["test"]
    per_seed = " | ".join(f"{a:.4g} / {b:.4g}" for a, b in zip(out["jax"]["final"], out["torch"]["final"],
                                                                   strict=True))
    return "\n".join([
        f"### {out['model']}: loss ({out['loss_key']}) averaged over steps {out['steps'] - out['last'] + 1}-"
        f"{out['steps']}, {out['seeds']} seeds", "",
        "| | JAX (zoo) | PyTorch twin |", "|---|---|---|",
        f"| mean over seeds | {test['mean_a']:.4g} | {test['mean_b']:.4g} |",
        f"| standard deviation over seeds | {test['sd_a']:.3g} | {test['sd_b']:.3g} |", "",
        f"Per seed (JAX / PyTorch): {per_seed}", "",
        f"Difference {test['difference']:.3g} +- {test['standard_error']:.3g} (standard error), 95% interval "
        f"[{test['ci_low']:.3g}, {test['ci_high']:.3g}]; Welch t = {test['t']:.2f} on {test['df']:.1f} degrees "
        f"of freedom, p = {test['p']:.2f}: **{'within noise' if test['within_noise'] else 'NOT within noise'}** "
        f"(no difference detectable at the {LEVEL:.0%} level)."])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--last", type=int, default=10, help="steps averaged into each run's figure")
    parser.add_argument("--json", type=Path, nargs="?", const=True,
                        help="also write the figures here (no PATH: benchmarks/results/agreement_NAME_cpu.json)")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # internal: one side, all seeds
    parser.error = compare._usage_error
    args, overrides = parser.parse_known_args(argv)
    args.overrides = overrides
    try:
        bad = [o for o in overrides if not o.startswith("--config.") or o.startswith("--config.seed")]
        if bad:
            raise UsageError(f"unsupported argument {bad[0]!r} (config overrides look like --config.KEY=VALUE; "
                             "the seeds are 0 .. --seeds - 1)")
        if args.seeds < 2 or args.steps < 1 or not 1 <= args.last <= args.steps:
            raise UsageError("need --seeds >= 2, --steps >= 1 and 1 <= --last <= --steps")
        registry.get(args.model)
        if args.model not in compare.TWIN_MODULES:
            raise UsageError(f"no PyTorch twin for {args.model}; choose one of {', '.join(compare.TWIN_MODULES)}")
        if args.side is not None:
            fn = jax_losses if args.side == "jax" else torch_losses
            runs = [fn(args.model, compare.bench_config(args.model, [*overrides, f"--config.seed={s}"]), args.steps)
                    for s in range(args.seeds)]
            print(json.dumps({"losses": runs}))
            return
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            raise UsageError("PyTorch is not installed: pip install -e .[torch]")
    except UsageError as e:
        compare._usage_error(str(e))
    out: dict[str, Any] = {"model": args.model, "seeds": args.seeds, "steps": args.steps, "last": args.last,
                           "loss_key": compare.LOSS_KEY.get(args.model, "loss"), "overrides": overrides}
    for side in SIDES:
        result = run_side(side, args)
        if "error" in result:
            print(f"error: the {side} side failed: {result['error']}", file=sys.stderr)
            raise SystemExit(1)
        finals = [float(np.mean(run[-args.last:])) for run in result["losses"]]
        out[side] = {"final": finals, "losses": result["losses"]}
    out["test"] = welch(out["jax"]["final"], out["torch"]["final"])
    print(markdown(out))
    if args.json is True:  # --json alone: the name docs/benchmarks.md quotes (the twins are CPU-only)
        args.json = Path(__file__).resolve().parent / "results" / f"agreement_{args.model}_cpu.json"
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    allocator.restart_with_fast_malloc()  # as train.py runs
    main()
