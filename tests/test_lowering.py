"""Every program lowers for TPU and CUDA, checked on the CPU.

Each family's jitted train step, eval step and sampler(s) are exported with `jax.export` for
("tpu", "cuda") at compute_dtype=bfloat16 over 8 host devices, data parallel and FSDP, built the way the
loop builds them (`zoo.train.loop.build_steps`). A child process per family does the exports, since the
device count must be set before JAX starts, and writes what it found (platforms, the inputs' and outputs'
shapes, dtypes and shardings, the StableHLO text); the tests here read those facts. A program that only
the CPU can lower (a CPU-only custom call, a CPU compiler option passed on) fails here, not on the pod.

Run one family's exports by hand (tests/helpers.py `env(8)` sets the device count):
    XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu python -m tests.test_lowering FAMILY OUTDIR
"""

from __future__ import annotations

import json
import linecache
import pathlib
import re
import subprocess
import sys
import tempfile
from typing import Any

import pytest

from tests import helpers
from zoo.train.mesh import FSDP_MIN_SIZE

PLATFORMS = ("tpu", "cuda")
DEVICES = 8
BATCH = 16  # two rows per device

# Tiny models whose largest arrays still reach FSDP_MIN_SIZE, so that FSDP splits some of them.
COMMON = ["--config.compute_dtype=bfloat16", f"--config.batch_size={BATCH}", "--config.eval_batches=1",
          "--config.warmup_steps=0"]
FAMILIES: dict[str, tuple[str, list[str]]] = {
    "lm": ("configs/poem.py", [
        "--config.model.num_layers=1", "--config.model.embed_dim=64", "--config.model.num_heads=2",
        "--config.model.context_length=32", "--config.tokenizer=char", "--config.vocab_size=0"]),
    "textgan": ("configs/textgan.py", [
        "--config.model.num_layers=1", "--config.model.embed_dim=64", "--config.model.num_heads=2",
        "--config.model.discriminator.num_rep=4", "--config.model.discriminator.embed_dim=8",
        "--config.model.discriminator.num_filters=(8,8,8,8)", "--config.model.discriminator.hidden_dim=16",
        "--config.phase=adversarial"]),
    "music": ("configs/music.py", [
        "--config.data=oneills1850", "--config.max_tunes=40", "--config.max_len=64",
        "--config.model.embed_dim=32", "--config.model.hidden_dim=64"]),
    "dcgan": ("configs/dcgan.py", [
        "--config.model.z_dim=32", "--config.model.cond_features=8", "--config.model.g_features=8",
        "--config.model.d_features=8"]),
    "vae": ("configs/vae.py", [
        "--config.model.latent_dim=8", "--config.model.channels=(8,16)", "--config.model.hidden_dim=32",
        "--config.model.cond_features=16", "--config.iwae_samples=2", "--config.latent_mixture_components=0"]),
}
MODES = ("dp", "fsdp")


# ------------------------------------------------------------------------------------- the child process


def _config(family: str, fsdp: bool) -> Any:
    from zoo import config as config_lib

    path, overrides = FAMILIES[family]
    return config_lib.apply_overrides(config_lib.load_config_file(helpers.ROOT / path),
                                      [*COMMON, *overrides, f"--config.fsdp={fsdp}"])


def _describe(tree: Any, avals: Any, shardings: Any) -> list[dict]:
    """One record per leaf of `tree` (the export's flattened inputs or outputs, in order); `spec` is None for
    an input the program never reads (jax.export drops it, e.g. the optimizer state from the eval step)."""
    import jax

    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    return [{"path": p, "shape": list(a.shape), "dtype": str(a.dtype),
             "spec": None if sharding is None else [None if s is None else str(s) for s in sharding.spec]}
            for p, a, sharding in zip(paths, avals, shardings, strict=True)]


def _export(out: pathlib.Path, name: str, mesh: Any, fn: Any, args: tuple, kwargs: dict | None = None) -> dict:
    """Exports fn(*args, **kwargs) for PLATFORMS; writes its StableHLO to out/name.mlir; returns its facts."""
    import jax

    exported = jax.export.export(fn, platforms=PLATFORMS)(*args, **(kwargs or {}))
    (out / f"{name}.mlir").write_text(exported.mlir_module())
    in_tree = jax.tree_util.tree_unflatten(exported.in_tree, [0] * len(exported.in_avals))
    out_tree = jax.tree_util.tree_unflatten(exported.out_tree, [0] * len(exported.out_avals))
    return {"platforms": list(exported.platforms), "nr_devices": exported.nr_devices,
            "inputs": _describe(in_tree, exported.in_avals, exported.in_shardings_jax(mesh)),
            "outputs": _describe(out_tree, exported.out_avals, exported.out_shardings_jax(mesh))}


def _sampler_programs(family: str, task: Any, config: Any, fsdp: bool, mesh: Any) -> dict[str, tuple]:
    """name -> (jitted sampler, args, static kwargs): each sampler's jitted function on abstract arguments,
    the params laid out as the loop lays out a state (replicated, or FSDP), the batch split along `data`."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from zoo.melody import encoding, grammar
    from zoo.models import build
    from zoo.models.dcgan import DCGAN
    from zoo.models.lm import GPT
    from zoo.models.music import MelodyRNN
    from zoo.models.textgan import TextGAN
    from zoo.models.vae import ConvVAE
    from zoo.sample import decoding, images, music
    from zoo.train import mesh as mesh_lib

    model_class = {"lm": GPT, "textgan": TextGAN, "music": MelodyRNN, "dcgan": DCGAN, "vae": ConvVAE}[family]
    model = nnx.eval_shape(lambda: build(model_class, config, nnx.Rngs(0), **task.model_dims))
    graphdef, params = nnx.split(model.generator if family == "textgan" else model)
    shardings = mesh_lib.state_shardings(params, mesh, fsdp)
    params = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), params, shardings)
    rows, one = mesh_lib.batch_sharding(mesh), mesh_lib.replicated(mesh)

    def arg(shape: tuple, dtype: Any, sharding: Any = one) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)

    i32, key = arg((), jnp.int32), arg((2,), jnp.uint32)  # a scalar; jax.random.PRNGKey(seed)
    if family in ("lm", "textgan"):
        length = config.model.context_length
        return {"sample": (decoding._generate_jit, (
            graphdef, params, arg((BATCH, 8), jnp.int32, rows), i32, i32, i32, key, arg((1,), jnp.float32),
            arg((1,), jnp.float32)), {"max_length": length, "temperature": 0.8, "top_k": 0, "top_p": 0.95})}
    cond = arg((BATCH, task.model_dims["cond_dim"]), jnp.float32, rows)
    if family == "music":
        state = {k: i32 for k in grammar.state_after(np.asarray([encoding.BOS]))}
        return {"sample": (music._sample_jit, (graphdef, params, cond, arg((64,), jnp.int32), i32, state, i32, key),
                           {"length": 128, "temperature": 0.9, "top_k": 0, "top_p": 1.0})}
    programs = {"sample": (images._sample_jit, (graphdef, params, cond, key),
                           {"temperature": 1.0, "same_latent": False})}
    if family == "vae":
        z = arg((BATCH, config.model.latent_dim), jnp.float32, rows)
        programs["decode"] = (images._decode_jit, (graphdef, params, cond, z), {})
    return programs


def export_family(family: str, out: pathlib.Path) -> None:
    """The child: every program of `family`, data parallel and FSDP, exported; out/facts.json says what."""
    import jax

    from zoo.errors import UsageError
    from zoo.registry import MODELS, resolve
    from zoo.train import loop
    from zoo.train import mesh as mesh_lib

    assert jax.device_count() == DEVICES, jax.devices()
    name = {"lm": "poem"}.get(family, family)
    mesh = mesh_lib.make_mesh()
    facts: dict[str, Any] = {}
    for mode in MODES:
        config = _config(family, fsdp=mode == "fsdp")
        try:
            task = resolve(MODELS[name].task)(config, tempfile.mkdtemp())
        except UsageError as e:  # a corpus this machine lacks
            (out / "facts.json").write_text(json.dumps({"skipped": str(e)}))
            return
        steps = loop.build_steps(config, task, mesh, platform=PLATFORMS[0])
        batch = steps.abstract_batch(task.train_batch(0, 0, 1))
        eval_batch = steps.abstract_batch(next(iter(task.eval_batches(0, 1))))
        record = {
            "train": _export(out, f"{mode}-train", mesh, steps.train_step, (steps.abstract_state, batch)),
            "eval": _export(out, f"{mode}-eval", mesh, steps.eval_step, (steps.abstract_state, eval_batch))}
        for program, (fn, args, kwargs) in _sampler_programs(family, task, config, mode == "fsdp", mesh).items():
            record[program] = _export(out, f"{mode}-{program}", mesh, fn, args, kwargs)
        facts[mode] = {
            "programs": record,
            "options": {p: loop.compiler_options(config, p) for p in ("cpu", *PLATFORMS)},
            "built_for_tpu": steps.compiler_options,
            "built_for_cpu": loop.build_steps(config, task, mesh, platform="cpu").compiler_options}
    (out / "facts.json").write_text(json.dumps(facts))


# ------------------------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[pathlib.Path, dict]]:
    """family -> (its folder of StableHLO texts, its facts), from one child process per family, run side by
    side (most of each is JAX starting and a corpus loading)."""
    children = {}
    for family in FAMILIES:
        out = tmp_path_factory.mktemp(family)
        children[family] = (out, subprocess.Popen(
            [sys.executable, "-m", "tests.test_lowering", family, str(out)], env=helpers.env(DEVICES),
            cwd=helpers.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = {}
    for family, (out, child) in children.items():
        stdout, stderr = child.communicate(timeout=600)
        assert child.returncode == 0, f"{family} exports failed:\n{stdout}\n{stderr[-6000:]}"
        results[family] = (out, json.loads((out / "facts.json").read_text()))
    return results


def _facts(exports: dict, family: str) -> tuple[pathlib.Path, dict]:
    out, facts = exports[family]
    if "skipped" in facts:
        pytest.skip(facts["skipped"])
    return out, facts


def _inputs(program: dict, prefix: str) -> list[dict]:
    return [leaf for leaf in program["inputs"] if leaf["path"].startswith(prefix)]


def _expected_spec(leaf: dict, fsdp: bool) -> list:
    """zoo.train.mesh.state_shardings' rule: FSDP splits an array of FSDP_MIN_SIZE or more elements on its
    first dimension that DEVICES divides."""
    size = 1
    for d in leaf["shape"]:
        size *= d
    if fsdp and size >= FSDP_MIN_SIZE:
        for axis, dim in enumerate(leaf["shape"]):
            if dim % DEVICES == 0:
                return [None] * axis + ["data"]
    return []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", FAMILIES)
def test_steps_take_the_loops_layout_and_keep_params_float32(exports: dict, family: str, mode: str) -> None:
    _, facts = _facts(exports, family)
    for name in ("train", "eval"):
        program = facts[mode]["programs"][name]
        assert program["platforms"] == list(PLATFORMS) and program["nr_devices"] == DEVICES
        batch = _inputs(program, "[0][1]")  # the flattened (args, kwargs): args[1], the batch
        assert batch and all(leaf["shape"][0] == BATCH for leaf in batch), batch
        read = [leaf for leaf in batch if leaf["spec"] is not None]  # None: an input the program never reads
        assert read and all(leaf["spec"] == ["data"] for leaf in read), batch
        state = _inputs(program, "[0][0]")
        floats = [leaf for leaf in state if leaf["dtype"].startswith(("float", "bfloat"))]
        assert len(floats) > 10 and all(leaf["dtype"] == "float32" for leaf in floats), \
            [leaf for leaf in floats if leaf["dtype"] != "float32"]  # params, optimizer and BatchNorm state
        assert any("params" in leaf["path"] and leaf["spec"] is not None for leaf in floats)
        for leaf in state:
            if leaf["spec"] is not None:  # None: an input this program never reads
                assert leaf["spec"] == _expected_spec(leaf, mode == "fsdp"), leaf
        split = [leaf for leaf in state if leaf["spec"]]
        assert bool(split) == (mode == "fsdp"), split  # FSDP really splits something, DP nothing
    train = facts[mode]["programs"]["train"]
    new_state = [leaf for leaf in train["outputs"] if leaf["path"].startswith("[0]")]
    assert [(leaf["shape"], leaf["dtype"], leaf["spec"]) for leaf in new_state] == \
           [(leaf["shape"], leaf["dtype"], leaf["spec"]) for leaf in _inputs(train, "[0][0]")]  # state in = out
    metrics = [leaf for leaf in train["outputs"] if leaf["path"].startswith("[1]")]
    assert metrics and all(leaf["shape"] == [] and leaf["spec"] == [] for leaf in metrics)


# An op's line in StableHLO text names its operand and result types: `... : (tensor<16x64xbf16>, ...) -> ...`.
_BF16_MATMUL = re.compile(r"stablehlo\.(dot_general|convolution)\b.*: \(tensor<[0-9x]*xbf16>, tensor<[0-9x]*xbf16>")
# exp and log: softmax, log-softmax, log-sum-exp, softplus, the losses and the KL; rsqrt: every normalisation.
_TRANSCENDENTAL = re.compile(
    r"stablehlo\.(exponential|exponential_minus_one|log|log_plus_one|rsqrt)\b.*loc\(#(loc\d+)\)")
_LOC = re.compile(r"^#(loc\d+) = loc\((.*)\)$", re.M)
_FRAME = re.compile(r'"([^"]+\.py)":(\d+)')
# Elementwise gate activations (an LSTM's or a highway's sigmoid, the VAE's SiLU) may run in bf16: no sum or
# normalisation follows them. JAX lowers them through exp, in a function of their name or inlined.
_ACTIVATION = re.compile(r"\b(sigmoid|silu)\b")


def _bf16_transcendentals_outside_activations(text: str) -> list[str]:
    """The bf16 exp, log and rsqrt ops of a StableHLO text that no sigmoid or SiLU of the zoo's source explains:
    each op's location is followed through its call stack to the zoo's source lines."""
    locs = dict(_LOC.findall(text))

    def source_lines(ref: str, seen: set[str]) -> list[str]:
        if ref in seen or ref not in locs:
            return []
        seen.add(ref)
        body = locs[ref]
        lines = [linecache.getline(f, int(n)) for f, n in _FRAME.findall(body) if "/zoo/" in f]
        for inner in re.findall(r"#(loc\d+)", body):
            lines += source_lines(inner, seen)
        return lines

    bad = []
    for function in re.split(r"\n  func\.func ", text):
        name = re.match(r"(?:public |private )?@([A-Za-z_]+?)(?:_\d+)?\(", function)
        if name and _ACTIVATION.fullmatch(name.group(1)):
            continue
        for op in _TRANSCENDENTAL.finditer(function):
            if "bf16" in op.group(0) and not any(_ACTIVATION.search(line) for line in source_lines(op.group(2), set())):
                bad.append(op.group(0))
    return bad


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_matmuls_float32_softmax_norms_and_losses(exports: dict, family: str, mode: str) -> None:
    """compute_dtype=bfloat16 reaches the matmuls (or convolutions) of every program, while every exp and
    log of a softmax, log-softmax, log-sum-exp, softplus, loss or KL, and every normalisation's rsqrt, stays
    float32 (bf16 exps only in the gate activations)."""
    out, facts = _facts(exports, family)
    for name in facts[mode]["programs"]:
        text = (out / f"{mode}-{name}.mlir").read_text()
        assert len(_BF16_MATMUL.findall(text)) >= 2, f"{family} {name}: no bf16 matmul"
        assert len(_TRANSCENDENTAL.findall(text)) >= 1, f"{family} {name}: no exp, log or rsqrt at all"
        bad = _bf16_transcendentals_outside_activations(text)
        assert not bad, f"{family} {name}: {len(bad)} exp, log or rsqrt in bf16, e.g. {bad[0]}"


@pytest.mark.parametrize("family", FAMILIES)
def test_samplers_split_their_batch(exports: dict, family: str) -> None:
    _, facts = _facts(exports, family)
    for mode in MODES:
        samplers = {k: v for k, v in facts[mode]["programs"].items() if k not in ("train", "eval")}
        assert samplers
        for name, program in samplers.items():
            assert program["platforms"] == list(PLATFORMS) and program["nr_devices"] == DEVICES
            rows = [leaf for leaf in program["inputs"]
                    if leaf["shape"][:1] == [BATCH] and not leaf["path"].startswith("[0][0]")]
            assert rows and all(leaf["spec"] == ["data"] for leaf in rows), (name, rows)
            params = _inputs(program, "[0][0]")  # args[0]: the graphdef is static, so the params come first
            assert params and all(leaf["dtype"] == "float32" for leaf in params)
            assert any(leaf["spec"] for leaf in params) == (mode == "fsdp")
            assert [leaf["shape"][0] for leaf in program["outputs"]] == [BATCH], (name, program["outputs"])


@pytest.mark.parametrize("family", FAMILIES)
def test_cpu_options_never_reach_another_platform(exports: dict, family: str) -> None:
    """`config.xla_cpu_options` is for XLA's CPU compiler only: steps built for TPU or CUDA carry none, and
    no exported program mentions one; the same steps built for the CPU do carry the config's."""
    out, facts = _facts(exports, family)
    configured = {"textgan": None}.get(family, "present")
    for mode in MODES:
        options = facts[mode]["options"]
        assert options["tpu"] is None and options["cuda"] is None and facts[mode]["built_for_tpu"] is None
        if configured:
            assert options["cpu"] and facts[mode]["built_for_cpu"] == options["cpu"]
            assert all(k.startswith("xla_cpu_") for k in options["cpu"])
        else:
            assert options["cpu"] is None
        for name in facts[mode]["programs"]:
            text = (out / f"{mode}-{name}.mlir").read_text()
            assert "xla_cpu" not in text and "ynn" not in text.lower()


if __name__ == "__main__":
    export_family(sys.argv[1], pathlib.Path(sys.argv[2]))
