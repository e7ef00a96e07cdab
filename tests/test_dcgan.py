"""The `dcgan` model (zoo.models.dcgan) and its objective (zoo.objectives.dcgan) on real Fashion-MNIST.

Fast: one tiny task per module, its train and eval steps compiled once; one short train.py run."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests import helpers
from zoo import config as config_lib
from zoo.data import images as image_data
from zoo.models.dcgan import DCGAN

TINY = {"model.z_dim": 16, "model.cond_features": 8, "model.g_features": 8, "model.d_features": 8,
        "batch_size": 32, "eval_batches": 2}
HAS_FASHION = all(image_data._idx_file(image_data.FASHION_MNIST_DIRS[0], n)
                  for n in image_data.FASHION_MNIST_FILES.values())
needs_fashion = pytest.mark.skipif(not HAS_FASHION, reason=f"Fashion-MNIST absent: {image_data.FASHION_MNIST_INSTALL}")


def _tiny_model(**kw) -> DCGAN:
    return DCGAN(**{"z_dim": 16, "cond_features": 8, "g_features": 8, "d_features": 8, **kw}, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def tiny() -> DCGAN:
    """Built once (eager initialisation compiles an op per shape): tests take an `nnx.clone`."""
    return _tiny_model()


def test_shapes_and_ranges(tiny):
    model = nnx.clone(tiny)
    assert model.z_dim == 16
    z = jax.random.normal(jax.random.key(0), (5, 16))
    cond = jax.random.normal(jax.random.key(1), (5, 384))
    images = model.generate(z, cond)
    assert images.shape == (5, 32, 32, 1) and images.dtype == jnp.float32
    assert float(jnp.abs(images).max()) <= 1.0
    logits = model.discriminate(images, cond)
    assert logits.shape == (5,) and logits.dtype == jnp.float32
    colour = nnx.eval_shape(lambda: _tiny_model(channels=3, image_size=64))  # shapes only: nothing compiled
    fake = nnx.eval_shape(lambda m: m.generate(z, cond), colour)
    assert fake.shape == (5, 64, 64, 3)
    assert nnx.eval_shape(lambda m, x: m.discriminate(x, cond), colour, fake).shape == (5,)
    with pytest.raises(ValueError, match="image_size"):
        _tiny_model(image_size=28)


def test_projection_makes_d_depend_on_the_condition(tiny):
    model = nnx.clone(tiny)
    x = jax.random.uniform(jax.random.key(2), (4, 32, 32, 1), minval=-1, maxval=1)
    a = jnp.tile(jax.random.normal(jax.random.key(3), (1, 384)), (4, 1))
    b = jnp.tile(jax.random.normal(jax.random.key(4), (1, 384)), (4, 1))
    assert float(jnp.abs(model.discriminate(x, a) - model.discriminate(x, b)).min()) > 1e-4
    # ... and only through the projection term <embed(cond), phi(x)>
    model.discriminator.embed.kernel[...] = jnp.zeros_like(model.discriminator.embed.kernel[...])
    np.testing.assert_allclose(model.discriminate(x, a), model.discriminate(x, b), atol=1e-6)
    # G reads the condition too (outputs are small at Radford's N(0, 0.02) init: compare relatively)
    z = jax.random.normal(jax.random.key(5), (4, 16))
    ga, gb = model.generate(z, a), model.generate(z, b)
    assert float(jnp.abs(ga - gb).max()) > 0.05 * float(jnp.abs(ga).max())


def test_sampling_uses_running_statistics(tiny):
    """In sampling mode (train=False) a sample does not depend on the rest of its batch; train mode
    normalises with the batch and updates G's running averages."""
    model = nnx.clone(tiny)
    z = jax.random.normal(jax.random.key(6), (4, 16))
    cond = jax.random.normal(jax.random.key(7), (4, 384))
    together = model.generate(z, cond)
    np.testing.assert_allclose(together[1:2], model.generate(z[1:2], cond[1:2]), atol=1e-5)
    before = jax.tree.map(np.array, nnx.to_pure_dict(nnx.state(model.generator, nnx.BatchStat)))
    model.generate(z, cond, train=True)
    after = nnx.to_pure_dict(nnx.state(model.generator, nnx.BatchStat))
    assert not np.allclose(before["bns"][0]["mean"], after["bns"][0]["mean"])
    # the discriminator keeps no statistics: its whole state is parameters
    assert not jax.tree.leaves(nnx.state(model.discriminator, nnx.BatchStat))


@pytest.fixture(scope="module")
def trained(tiny):
    """A tiny GANTask on real Fashion-MNIST, trained 40 steps; returns (task, state before, state after,
    per-step metrics). `tiny` has the task model's shapes: building it first makes the eager `init_state`
    reuse its compiled initialisers (a jitted init_state is one more slow compilation)."""
    if not HAS_FASHION:
        pytest.skip(f"Fashion-MNIST absent: {image_data.FASHION_MNIST_INSTALL}")
    from zoo.objectives.dcgan import build_task

    config = config_lib.load_config_file(str(helpers.ROOT / "configs/dcgan.py"))
    config.update_from_flattened_dict(TINY)
    task = build_task(config, "unused")
    init = task.init_state(jax.random.PRNGKey(0))
    step = jax.jit(task.train_step)
    state, history = init, []
    for i in range(40):
        state, metrics = step(state, task.train_batch(i, 0, 1), jax.random.PRNGKey(100 + i))
        history.append(jax.device_get(metrics))
    return task, init, state, history


def test_training_steps_update_both_networks(trained):
    task, init, state, history = trained
    assert set(state) == {"g_params", "g_stats", "d_params", "g_opt_state", "d_opt_state"}
    for key in ("g_params", "g_stats", "d_params"):
        moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(init[key]), jax.tree.leaves(state[key]),
                                                        strict=True)]
        assert all(moved) if key != "g_stats" else any(moved), key
    for m in history:
        for k in ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"):
            assert np.isfinite(m[k]), (k, m)
    late = history[-10:]
    assert np.mean([m["d_real"] for m in late]) > np.mean([m["d_fake"] for m in late])
    assert np.mean([m["d_accuracy"] for m in late]) > 0.6
    # D's loss falls from its chance value, log 4 (non-saturating loss, logits near 0 at init)
    assert np.mean([m["d_loss"] for m in late]) < np.log(4.0) - 0.2


def test_eval_step_on_the_test_split(trained):
    task, _, state, _ = trained
    evaluate = jax.jit(task.eval_step)
    batches = list(task.eval_batches(0, 1))
    assert len(batches) == 2 and {"image", "label", "caption_id", "mask"} <= set(batches[0])
    metrics = jax.device_get(evaluate(state, batches[0]))
    assert {"d_loss", "g_loss", "d_real", "d_fake", "d_accuracy", "d_cond_accuracy"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())
    assert 0.0 <= metrics["d_cond_accuracy"] <= 1.0
    # masked rows do not count: a batch whose second half is masked scores as its first half alone
    half = {k: v.copy() for k, v in batches[0].items()}
    half["mask"][16:] = 0.0
    first = {k: v[:16] for k, v in batches[0].items()}
    small = jax.jit(task.eval_step)(state, first)
    np.testing.assert_allclose(jax.device_get(evaluate(state, half))["d_real"], small["d_real"], rtol=1e-4)


def test_export_is_the_generator_only(trained, tiny):
    task, init, state, _ = trained
    exported = task.export_params(state)
    model = nnx.clone(tiny)
    assert jax.tree.structure(exported) == jax.tree.structure(nnx.to_pure_dict(nnx.state(model.generator)))
    assert "embed" not in str(jax.tree_util.tree_structure(exported))  # no discriminator part
    nnx.update(model.generator, exported)  # what a sampler does
    z = jax.random.normal(jax.random.key(8), (2, 16))
    cond = jnp.asarray(task.table[:2])
    images, _ = task._generate(state["g_params"], state["g_stats"], z, cond, False)
    np.testing.assert_allclose(model.generate(z, cond), images, atol=1e-5)
    # load_params puts an exported generator back (fine-tuning with init_from), D and its optimizer kept
    loaded = task.load_params(init, exported)
    for key in ("g_params", "g_stats"):
        for a, b in zip(jax.tree.leaves(loaded[key]), jax.tree.leaves(state[key]), strict=True):
            np.testing.assert_array_equal(a, b)
    assert loaded["d_params"] is init["d_params"]


@needs_fashion
def test_train_dcgan_end_to_end(tmp_path):
    workdir = tmp_path / "run"
    cmd = [sys.executable, str(helpers.ROOT / "train.py"), "--config", str(helpers.ROOT / "configs/dcgan.py"),
           "--workdir", str(workdir), "--config.train_steps=20", "--config.log_every=5", "--config.eval_every=20",
           "--config.checkpoint_every=20", "--config.async_checkpoints=False",
           *(f"--config.{k}={v}" for k, v in TINY.items())]
    result = subprocess.run(cmd, env=helpers.env(), capture_output=True, text=True, timeout=300, cwd=helpers.ROOT)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    records = helpers.metrics(workdir)
    train = [r for r in records if "train/d_loss" in r]
    assert len(train) == 4 and all(np.isfinite(r["train/d_loss"]) and np.isfinite(r["train/g_loss"]) for r in train)
    assert np.isfinite(records[-1]["eval/d_cond_accuracy"])
    export = workdir / "export"
    assert (export / "params").is_dir() and json.loads((export / "config.json").read_text())["model_name"] == "dcgan"
    info = json.loads((export / "images.json").read_text())
    assert info["class_names"][9] == "Ankle boot" and info["image_shape"] == [32, 32, 1]
    assert info["source_shape"] == [28, 28, 1] and info["scale"] == "tanh" and info["z_dim"] == 16
    assert len(info["caption_classes"]) == len(info["captions"]) and "an ankle boot" in info["captions"]
    table = np.load(export / "caption_embeddings.npy")
    assert table.dtype == np.float16 and table.shape == (len(info["captions"]), 384)
