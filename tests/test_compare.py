"""The JAX-vs-PyTorch harness (benchmarks.compare) on a tiny LM: both sides really train, in CI.

One run of the whole harness (JAX, PyTorch eager and torch.compile subprocesses, 2 timed steps) on the real
English verse corpus with a 1-layer model; skipped with the reason when PyTorch is not installed. The
harness's pure helpers are tested without it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

from benchmarks import timing
from tests import helpers
from zoo import allocator

TINY_LM = [o for o in helpers.TINY if "context_length" not in o] + ["--config.model.context_length=64",
                                                                     "--config.warmup_steps=1"]
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="PyTorch is not installed (pip install -e .[torch]): no twin to compare")


def test_windows_split_steps_evenly():
    assert timing.windows_of(10, 3) == [4, 3, 3]
    assert timing.windows_of(2, 5) == [1, 1]
    assert sum(timing.windows_of(23, 5)) == 23


def test_repeats_combine_to_the_median_rate():
    from benchmarks.compare import combine_repeats

    runs = [{"steps_per_s": 2.0, "sample_per_s": 9.0, "final_loss": 1.5}, {"error": "killed"},
            {"steps_per_s": 1.0, "sample_per_s": 7.0, "final_loss": 1.6},
            {"steps_per_s": 4.0, "sample_per_s": 8.0, "final_loss": 1.7}]
    combined = combine_repeats(runs)
    assert combined["steps_per_s"] == 2.0 and combined["repeat_steps_per_s"] == [2.0, 1.0, 4.0]
    assert combined["sample_per_s"] == 8.0 and combined["failed_repeats"] == 1
    assert combined["final_loss"] == 1.5  # not a speed: the first good run's
    assert combine_repeats([{"error": "killed"}, {"error": "again"}]) == {"error": "killed"}


def test_bad_arguments_exit_2():
    for args, message in [(["--model", "nonsense"], "unknown model"), (["--model", "poem", "--steps", "0"], ">= 1"),
                          (["--model", "poem", "--bogus"], "unknown argument"),
                          (["--model", "poem", "--repeats", "0"], ">= 1"),
                          (["--model", "poem", "--cpu-devices", "0"], "--cpu-devices must be >= 1"),
                          (["--model", "poem", "--cpu-devices", "2", "--device", "gpu"], "for --device cpu"),
                          (["--model", "poem", "--cpu-devices", "3", "--config.batch_size=8"], "must divide"),
                          (["--model", "poem", "--device", "gpu"], "--device gpu: JAX sees no GPU")]:
        result = subprocess.run([sys.executable, "-m", "benchmarks.compare", *args], capture_output=True, text=True,
                                cwd=helpers.ROOT, env=helpers.env(), timeout=120)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr


def test_jax_side_on_two_cpu_devices_trains_the_same_steps(monkeypatch):
    """--cpu-devices N: the JAX side's subprocess gets exactly N host devices (appended to XLA_FLAGS, over a
    user's 8), splits the batch over them, and trains the same steps on 2 devices as on 1."""
    from benchmarks import compare

    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    torch_env = compare.side_env("torch", 2)
    assert torch_env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=8"  # the twins' env is untouched
    # every side under the malloc train.py runs under (tcmalloc where installed)
    for side in ("jax", "torch"):
        assert compare.side_env(side, 2).get("LD_PRELOAD") == allocator.environment(os.environ).get("LD_PRELOAD")
    commands = []
    monkeypatch.setattr(compare, "run_json", lambda command, env=None: commands.append((command, env)) or {})
    args = compare.argparse.Namespace(model="poem", steps=2, warmup=1, windows=1, device="cpu", cpu_devices=2)
    compare.run_side("jax", args, [])
    command, env = commands[0]
    assert command[command.index("--cpu-devices") + 1] == "2"
    assert env["XLA_FLAGS"].split()[-1] == "--xla_force_host_platform_device_count=2"  # the last one counts
    runs = {}
    for devices in (1, 2):
        env = {**helpers.env(8), "XLA_FLAGS": compare.side_env("jax", devices)["XLA_FLAGS"]}
        result = subprocess.run([sys.executable, "-m", "benchmarks.compare", "--model", "poem", "--side", "jax",
                                 "--cpu-devices", str(devices), "--steps", "2", "--warmup", "1", "--windows", "1",
                                 *TINY_LM],
                                capture_output=True, text=True, cwd=helpers.ROOT, env=env, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[devices] = json.loads(result.stdout.splitlines()[-1])
    assert runs[1]["devices"] == 1 and runs[2]["devices"] == 2
    assert len(runs[2]["losses"]) == 3
    for a, b in zip(runs[1]["losses"], runs[2]["losses"], strict=True):
        assert abs(a - b) < 1e-4 * abs(a), (runs[1]["losses"], runs[2]["losses"])
    assert runs[1]["losses"][-1] < runs[1]["losses"][0]
    # the step's FLOPs are the whole step's on both (a partitioned program reports one device's share)
    assert abs(runs[2]["flops_per_step"] / runs[1]["flops_per_step"] - 1) < 0.05


@needs_torch
def test_both_sides_train_the_same_lm(tmp_path):
    out = tmp_path / "lm.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.compare", "--model", "poem", "--steps", "2",
                             "--warmup", "1", "--windows", "2", "--json", str(out), *TINY_LM],
                            capture_output=True, text=True, cwd=helpers.ROOT, env=helpers.env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    sides = figures["sides"]
    for side in ("jax", "torch", "torch_compile"):
        assert "error" not in sides[side], (side, sides[side])
        assert len(sides[side]["losses"]) == 3 and sides[side]["steps_per_s"] > 0
    assert sides["jax"]["params"] == sides["torch"]["params"] == sides["torch_compile"]["params"]
    # Same data, same init distribution: the untrained losses agree (both near ln(vocab)), not bit for bit.
    first = [sides[s]["losses"][0] for s in ("jax", "torch", "torch_compile")]
    assert max(first) - min(first) < 0.3, first
    assert abs(first[0] - math.log(sides["jax"]["dims"]["vocab_size"])) < 0.5, first
    for key in ("jax_steps_per_s", "torch_eager_steps_per_s", "torch_compile_steps_per_s", "jax_final_loss",
                "torch_final_loss", "mfu"):
        assert figures[key] is not None and figures[key] > 0, key
    assert 0 < figures["mfu"] < 1.5
    assert "| train steps/s" in result.stdout and "MFU" in result.stdout


def test_welch_t_matches_scipy():
    from scipy import stats

    from benchmarks.loss_agreement import welch

    a, b = [3.1, 2.9, 3.4, 3.0, 3.2], [3.6, 3.3, 3.9, 3.5]
    out = welch(a, b)
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert math.isclose(out["t"], expected.statistic, rel_tol=1e-9) and not out["within_noise"]
    assert math.isclose(out["p"], expected.pvalue, rel_tol=1e-9) and out["p"] < 0.05
    interval = expected.confidence_interval(0.95)
    assert math.isclose(out["ci_low"], interval.low, rel_tol=1e-9)
    assert math.isclose(out["ci_high"], interval.high, rel_tol=1e-9)
    assert math.isclose(out["difference"], sum(a) / 5 - sum(b) / 4, rel_tol=1e-12)
    assert welch([1.0, 2.0, 3.0], [1.5, 2.5, 2.0])["within_noise"]


@needs_torch
def test_loss_agreement_runs_both_sides_over_seeds(tmp_path):
    out = tmp_path / "agree.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.loss_agreement", "--model", "vae", "--seeds", "2",
                             "--steps", "3", "--last", "2", "--config.batch_size=8", "--config.model.hidden_dim=32",
                             "--config.model.latent_dim=8", "--json", str(out)], capture_output=True, text=True,
                            cwd=helpers.ROOT, env=helpers.env(), timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    for side in ("jax", "torch"):
        runs = figures[side]["losses"]
        assert len(runs) == 2 and all(len(r) == 3 and all(math.isfinite(x) for x in r) for r in runs)
        assert runs[0] != runs[1]  # the seeds differ
        assert figures[side]["final"][0] == sum(runs[0][1:]) / 2
    # The same model and data: the sides' losses are of one size (an untrained VAE: ~540 nats per image).
    assert abs(figures["test"]["mean_a"] - figures["test"]["mean_b"]) < 0.05 * figures["test"]["mean_a"]
    assert "Welch t" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "benchmarks.loss_agreement", "--model", "vae", "--seeds", "1"],
                         capture_output=True, text=True, cwd=helpers.ROOT, env=helpers.env())
    assert bad.returncode == 2 and "--seeds >= 2" in bad.stderr and "Traceback" not in bad.stderr
