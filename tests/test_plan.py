"""benchmarks/plan.py sizes the loop's real GPT step from XLA's own counts, and model.remat trades memory for
FLOPs without changing a value."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from benchmarks import plan
from tests.helpers import ROOT, env
from zoo.errors import UsageError
from zoo.models.lm import GPT
from zoo.objectives.lm import lm_loss

# 2 layers x 128, context 64, vocab 256: 437,760 parameters, nearly all in arrays FSDP splits.
TINY = ["--config", "configs/poem.py", "--config.model.num_layers=2", "--config.model.embed_dim=128",
        "--config.model.context_length=64", "--config.vocab_size=256", "--config.batch_size=8"]
DEVICES = 4  # a v4-8's and a v5p-8's chip count: those two targets get a memory verdict


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The tiny plan replicated at the chips' real memory, and with FSDP on 1 MiB chips; both at once."""
    out = tmp_path_factory.mktemp("plan")
    runs = {"replicated": [], "fsdp": ["--fsdp", "--hbm", str(1 / 1024)]}
    procs = {name: subprocess.Popen(
        [sys.executable, "-m", "benchmarks.plan", *TINY, "--devices", str(DEVICES), *extra,
         "--json", str(out / f"{name}.json")],
        env=env(1), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, extra in runs.items()}
    results = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        assert "| TPU v4-8 | 4 |" in stdout
        results[name] = {**json.loads((out / f"{name}.json").read_text()), "stdout": stdout}
    return results


def _target(s: dict, name: str) -> dict:
    return next(t for t in s["targets"] if t["name"] == name)


def test_replicated_plan_counts_the_state_and_the_step(plans: dict[str, dict]) -> None:
    s = plans["replicated"]
    assert s["devices"] == DEVICES and s["params"] == 437_760
    assert s["params_bytes"] == s["params"] * 4  # float32, whole on every device
    # AdamW's two moments, plus its step counter and the clip's empty state.
    assert 2 * s["params"] * 4 <= s["opt_state_bytes"] <= 2 * s["params"] * 4 + 64
    assert s["batch_bytes"] == 8 // DEVICES * 65 * 4
    assert s["temp_bytes"] > 0 and s["argument_bytes"] >= s["state_bytes"] + s["batch_bytes"]
    assert s["alias_bytes"] == s["state_bytes"]  # the donated state is updated in place
    assert s["need_bytes"] == s["argument_bytes"] + s["output_bytes"] - s["alias_bytes"] + s["temp_bytes"]
    assert s["tokens_per_step"] == 8 * 64
    assert s["six_nd_flops"] == 6 * s["params"] * 8 * 64
    assert 0.5 < s["xla_flops_per_step"] / s["six_nd_flops"] < 2
    v4 = _target(s, "TPU v4-8")
    assert v4["fits"] is True and v4["hbm_gib"] == 32
    assert _target(s, "TPU v5e-8")["fits"] is None  # 8 chips: another per-device batch than this plan's
    # step time = model FLOPs / (chips x peak x MFU)
    assert v4["step_s_at_40"] == pytest.approx(s["model_flops"] / (4 * 275e12 * 0.4))
    assert v4["tokens_per_s_at_60"] == pytest.approx(512 / v4["step_s_at_60"])
    assert s["advice"] == []


def test_fsdp_splits_the_state_and_a_tiny_chip_does_not_fit(plans: dict[str, dict]) -> None:
    s, replicated = plans["fsdp"], plans["replicated"]
    split = s["params"] * 4 / DEVICES
    assert split <= s["params_bytes"] <= 1.1 * split  # the small arrays (biases, norms, wpe) stay whole
    assert s["opt_state_bytes"] < replicated["opt_state_bytes"] / 3
    assert s["state_bytes"] < replicated["state_bytes"] / 3
    assert s["need_bytes"] > 2**20  # more than the 1 MiB chip
    assert _target(s, "TPU v4-8")["fits"] is False and _target(s, "TPU v5p-8")["fits"] is False
    assert len(s["advice"]) == 2 and s["advice"][0].startswith("TPU v4-8: needs")
    assert "--remat" in s["advice"][0]
    assert "**no**" in s["stdout"] and "does not fit: TPU v4-8" in s["stdout"]


def test_bad_input_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="GPT family"):
        plan.main(["--config", str(ROOT / "configs/vae.py"), "--devices", "2"])
    with pytest.raises(UsageError, match=">= 1"):
        plan.main([*TINY, "--devices", "0"])
    with pytest.raises(UsageError, match="--hbm"):
        plan.main([*TINY, "--devices", "2", "--hbm", "-1"])


def test_host_devices_environment_appends_the_flag() -> None:
    e = plan.host_devices_environment(8, {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"})
    assert e["XLA_FLAGS"].endswith("--xla_force_host_platform_device_count=8") and e["JAX_PLATFORMS"] == "cpu"
    assert plan.host_devices_environment(8, e) == e  # already set: nothing to restart for


def _gpt(remat: bool, **dims: int) -> GPT:
    shape = {"vocab_size": 50, "context_length": 16, "num_layers": 2, "num_heads": 2, "embed_dim": 16} | dims
    return GPT(**shape, dropout=0.1, remat=remat, rngs=nnx.Rngs(0))


def _loss_and_grad(model: GPT) -> Callable:
    """(params, tokens) -> ((loss, metrics), grads) of the LM objective, dropout on."""
    graphdef = nnx.graphdef(model)
    return jax.value_and_grad(lambda p, t: lm_loss(graphdef, p, t, jax.random.PRNGKey(1)), has_aux=True)


def test_remat_changes_no_value() -> None:
    """Same loss and gradients with dropout on: the recomputed forward draws the same masks."""
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 50, (3, 17)), jnp.int32)
    out = {}
    for remat in (False, True):
        model = _gpt(remat)
        (loss, _), grads = jax.jit(_loss_and_grad(model))(nnx.to_pure_dict(nnx.state(model, nnx.Param)), tokens)
        out[remat] = (float(loss), grads)
    assert out[False][0] == pytest.approx(out[True][0], abs=1e-6) and np.isfinite(out[False][0])
    for a, b in zip(jax.tree.leaves(out[False][1]), jax.tree.leaves(out[True][1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert float(jnp.abs(jax.tree.leaves(out[False][1])[0]).sum()) > 0


def test_remat_needs_less_temporary_memory() -> None:
    """XLA's buffer assignment: with each block recomputed, the step keeps one activation per block. On the
    CPU only once the barriers stay (plan.KEEP_REMAT): XLA's CPU pipeline drops them and CSE undoes remat."""
    dims = {"num_layers": 4, "embed_dim": 128, "num_heads": 4, "context_length": 128, "vocab_size": 64}
    tokens = jax.ShapeDtypeStruct((8, 129), jnp.int32)
    temp, flops = {}, {}
    for remat in (False, True):
        model = _gpt(remat, **dims)
        params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                              nnx.to_pure_dict(nnx.state(model, nnx.Param)))
        for options in ({}, plan.KEEP_REMAT):
            compiled = jax.jit(_loss_and_grad(model), compiler_options=options).lower(params, tokens).compile()
            key = (remat, bool(options))
            temp[key] = compiled.memory_analysis().temp_size_in_bytes
            flops[key] = compiled.cost_analysis()["flops"]
    assert temp[True, True] < 0.6 * temp[False, True], temp
    assert flops[True, True] > 1.15 * flops[False, True], flops  # the recomputed forward passes
    # If this fails, XLA's CPU pipeline keeps remat's barriers by itself now, and KEEP_REMAT can go.
    assert temp[True, False] > 0.9 * temp[False, False], temp
