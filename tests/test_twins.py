"""The PyTorch twins compute what the JAX models compute: with the JAX weights copied in, the VAE twin's
encoder, prior and decoder outputs and its training losses over several steps (KL warm-up included, the
same reparameterisation noise) equal the JAX ones; so do the DCGAN twin's generated images (BatchNorm in
train mode), discriminator logits, G's running statistics and its D and G losses over several steps (the
same noise z); so do the music twin's logits (nn.LSTM with the caption folded into layer 0's input
weights) and its losses and weights over several steps; so do the poem (GPT) twin's logits, losses and
weights over several steps (dropout 0), and the text GAN twin's generator and discriminator outputs and
its adversarial steps' D and G losses and weights (the same Gumbel noise). Skipped without PyTorch."""

from __future__ import annotations

import importlib.util
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests import helpers
from zoo import config as config_lib
from zoo import registry
from zoo.errors import UsageError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                reason="PyTorch is not installed (pip install -e .[torch]): no twin to check")


def test_vae_twin_with_copied_weights_matches_jax():
    import torch

    from benchmarks.torch import vae
    from benchmarks.torch.common import load_flax_params, nhwc_rows_to_nchw

    config = config_lib.apply_overrides(config_lib.load_config_file(helpers.ROOT / "configs/vae.py"), [
        "--config.batch_size=16", "--config.kl_warmup_steps=3", "--config.warmup_steps=2"])
    task = registry.resolve(registry.get("vae").task)(config, tempfile.mkdtemp())
    state = task.init_state(jax.random.PRNGKey(0))
    params = dict(state["params"])
    rng = np.random.default_rng(1)  # the prior's Linear starts at zero: random values so it is checked too
    params["prior_net"] = {k: 0.05 * rng.standard_normal(v.shape).astype(np.float32)
                           for k, v in params["prior_net"].items()}
    state = {**state, "params": params, "opt_state": task.tx.init(params)}
    twin = vae.build(config, task.model_dims, 0)
    assert twin.num_params() == sum(x.size for x in jax.tree.leaves(params))
    c, h, w = twin.model.bottom
    load_flax_params(twin.model, params, permute={"enc_hidden": lambda k: nhwc_rows_to_nchw(k, c, h, w),
                                                  "dec_in": lambda k: nhwc_rows_to_nchw(k.T, c, h, w).T})

    model = nnx.merge(task.graphdef, params)
    batch = task.train_batch(0, 0, 1)
    x, cond = jnp.asarray(batch["image"]), jnp.asarray(batch["cond"])
    x_t, cond_t = torch.from_numpy(batch["image"]).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(batch["cond"])
    with torch.no_grad():
        feats = twin.model.condition(cond_t)
        for ours, theirs in zip(model.encode(x, cond), twin.model.encode(x_t, feats), strict=True):
            np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), rtol=1e-4, atol=1e-4)
        for ours, theirs in zip(model.prior(cond), twin.model.prior(feats), strict=True):
            np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), rtol=1e-4, atol=1e-4)
        z = np.array(jax.random.normal(jax.random.PRNGKey(5), (len(batch["cond"]), model.latent_dim)))
        decoded = twin.model.decode(torch.from_numpy(z), feats).permute(0, 2, 3, 1).numpy()
        np.testing.assert_allclose(np.asarray(model.decode(jnp.asarray(z), cond)), decoded, rtol=1e-4, atol=1e-4)

    step = jax.jit(task.train_step)
    jax_losses, torch_losses = [], []
    for i in range(4):  # through the KL warm-up: beta 0, 1/3, 2/3, 1
        batch = task.train_batch(i, 0, 1)
        key = jax.random.PRNGKey(100 + i)
        state, metrics = step(state, batch, key)
        eps = np.array(jax.random.normal(key, (len(batch["cond"]), model.latent_dim), jnp.float32))
        image = torch.from_numpy(batch["image"]).permute(0, 3, 1, 2).contiguous()
        torch_losses.append(float(twin.train_step(image, torch.from_numpy(batch["cond"]), torch.from_numpy(eps))))
        jax_losses.append(float(metrics["loss"]))
    np.testing.assert_allclose(torch_losses, jax_losses, rtol=1e-4)
    assert jax_losses[-1] != jax_losses[0]  # the weights moved: the match is over real updates


def test_dcgan_twin_with_copied_weights_matches_jax():
    import torch

    from benchmarks.torch import dcgan
    from benchmarks.torch.common import load_flax_params, nhwc_rows_to_nchw

    config = config_lib.apply_overrides(config_lib.load_config_file(helpers.ROOT / "configs/dcgan.py"), [
        "--config.batch_size=16", "--config.model.z_dim=16", "--config.model.cond_features=8",
        "--config.model.g_features=8", "--config.model.d_features=8"])
    task = registry.resolve(registry.get("dcgan").task)(config, tempfile.mkdtemp())
    state = task.init_state(jax.random.PRNGKey(0))
    twin = dcgan.build(config, task.model_dims, 0)
    assert twin.num_params() == sum(x.size for x in jax.tree.leaves((state["g_params"], state["d_params"])))
    np.testing.assert_array_equal(twin.table_rows, task.table)  # the same caption embeddings
    # Flax reshapes G's first dense output and flattens D's features NHWC, the twin NCHW: permute those
    # columns (fc, embed) and rows (psi).
    g_base, d_top = twin.generator.base, twin.discriminator.psi.in_features // 16
    load_flax_params(twin.generator, state["g_params"], stats=state["g_stats"],
                     permute={"fc": lambda k: nhwc_rows_to_nchw(k.T, g_base, 4, 4).T})
    load_flax_params(twin.discriminator, state["d_params"],
                     permute={"psi": lambda k: nhwc_rows_to_nchw(k, d_top, 4, 4),
                              "embed": lambda k: nhwc_rows_to_nchw(k.T, d_top, 4, 4).T})

    batch = task.train_batch(0, 0, 1)
    n = len(batch["caption_id"])
    cond = task.table[batch["caption_id"]]
    z = np.array(jax.random.normal(jax.random.PRNGKey(5), (n, task.z_dim), jnp.float32))
    real_t, cond_t = torch.from_numpy(batch["image"]).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(cond)
    # As training runs them: G in train mode (batch statistics, running averages updated), D on one batch.
    fake, g_stats = task._generate(state["g_params"], state["g_stats"], jnp.asarray(z), jnp.asarray(cond), True)
    twin.generator.train()
    with torch.no_grad():
        fake_t = twin.generator(torch.from_numpy(z), cond_t)
        np.testing.assert_allclose(np.asarray(fake), fake_t.permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-4)
        for images, images_t in ((batch["image"], real_t), (np.asarray(fake), fake_t)):
            logits = task._discriminate(state["d_params"], jnp.asarray(images), jnp.asarray(cond))
            np.testing.assert_allclose(np.asarray(logits), twin.discriminator(images_t, cond_t).numpy(),
                                       rtol=1e-4, atol=1e-4)
    # Running averages: torch blends in the unbiased batch variance, Flax the biased one (factor m / (m - 1),
    # m = B*H*W, the twin's documented difference); with that undone both are the same update.
    for i, bn in enumerate(twin.generator.bns):
        m = n * (4 * 2**i) ** 2
        old, new = state["g_stats"]["bns"][i], g_stats["bns"][i]
        np.testing.assert_allclose(bn.running_mean.numpy(), np.asarray(new["mean"]), rtol=1e-4, atol=1e-6)
        unbiased = 0.9 * np.asarray(old["var"]) + (np.asarray(new["var"]) - 0.9 * np.asarray(old["var"])) * m / (m - 1)
        np.testing.assert_allclose(bn.running_var.numpy(), unbiased, rtol=1e-4, atol=1e-6)

    step = jax.jit(task.train_step)
    jax_losses, torch_losses = [], []
    for i in range(3):
        batch = task.train_batch(i, 0, 1)
        key = jax.random.PRNGKey(100 + i)
        state, metrics = step(state, batch, key)
        z = np.array(jax.random.normal(key, (len(batch["caption_id"]), task.z_dim), jnp.float32))  # the step's z
        image = torch.from_numpy(batch["image"]).permute(0, 3, 1, 2).contiguous()
        d_loss = twin.train_step(image, torch.from_numpy(task.table[batch["caption_id"]]), torch.from_numpy(z))
        torch_losses.append((float(d_loss), float(twin.metrics["g_loss"])))
        jax_losses.append((float(metrics["d_loss"]), float(metrics["g_loss"])))
    np.testing.assert_allclose(torch_losses, jax_losses, rtol=1e-4)
    assert jax_losses[-1][0] != jax_losses[0][0] and jax_losses[-1][1] != jax_losses[0][1]  # real updates


def test_music_twin_with_copied_weights_matches_jax():
    pytest.importorskip("music21")
    import torch

    from benchmarks.torch import music
    from benchmarks.torch.common import tensors

    config = config_lib.apply_overrides(config_lib.load_config_file(helpers.ROOT / "configs/music.py"), [
        "--config.data=oneills1850", "--config.max_tunes=40", "--config.batch_size=4", "--config.max_len=64",
        "--config.model.embed_dim=16", "--config.model.hidden_dim=16", "--config.model.dropout=0.0",
        "--config.warmup_steps=1"])
    task = registry.resolve(registry.get("music").task)(config, tempfile.mkdtemp())
    state = task.init_state(jax.random.PRNGKey(0))
    twin = music.build(config, dict(task.model_dims), 0, device="cpu")
    assert twin.num_params() == sum(x.size for x in jax.tree.leaves(state["params"]))
    music.load_jax_params(twin.model, state["params"])

    batch = task.train_batch(0, 0, 1)
    t = tensors(batch)
    twin.model.eval()
    with torch.no_grad():
        logits_t = twin.model(t["tokens"], t["cond"]).numpy()
    logits = nnx.merge(task.graphdef, state["params"])(jnp.asarray(batch["tokens"]), jnp.asarray(batch["cond"]))
    np.testing.assert_allclose(np.asarray(logits), logits_t, rtol=1e-4, atol=1e-4)
    _train_alike(task, state, twin, music.build(config, dict(task.model_dims), 1, device="cpu").model,
                 music.load_jax_params, frozen="lstm.bias_hh")


def test_poem_twin_with_copied_weights_matches_jax():
    import torch

    from benchmarks.torch import gpt, lm

    overrides = [o for o in helpers.TINY if "context_length" not in o]
    config = config_lib.apply_overrides(config_lib.load_config_file(helpers.ROOT / "configs/poem.py"), [
        *overrides, "--config.model.context_length=64", "--config.warmup_steps=1", "--config.model.dropout=0.0"])
    task = registry.resolve(registry.get("poem").task)(config, tempfile.mkdtemp())
    state = task.init_state(jax.random.PRNGKey(0))
    twin = lm.build(config, dict(task.model_dims), 0, device="cpu")
    assert twin.num_params() == sum(x.size for x in jax.tree.leaves(state["params"]))
    gpt.load_jax_params(twin.model, state["params"])

    tokens = task.train_batch(0, 0, 1)["tokens"]
    twin.model.eval()
    with torch.no_grad():
        logits_t = twin.model(torch.from_numpy(np.asarray(tokens[:, :-1], np.int64))).numpy()
    logits = nnx.merge(task.graphdef, state["params"])(jnp.asarray(tokens[:, :-1]))
    np.testing.assert_allclose(np.asarray(logits), logits_t, rtol=1e-4, atol=1e-4)
    _train_alike(task, state, twin, lm.build(config, dict(task.model_dims), 1, device="cpu").model,
                 gpt.load_jax_params)


def test_textgan_twin_with_copied_weights_matches_jax(monkeypatch):
    """The adversarial phase: with the JAX weights copied in and the same Gumbel noise (the twin's uniform
    draws replaced by the JAX step's), the generator's and the discriminator's outputs, 3 steps' D and G
    losses (the rollout, the relaxed sequences, D's update, then G's RSGAN and MLE gradients) and every
    weight afterwards equal the JAX ones (dropout 0)."""
    import torch

    from benchmarks.torch import textgan
    from zoo.objectives.textgan import build_task

    config = config_lib.apply_overrides(config_lib.load_config_file(helpers.ROOT / "configs/textgan.py"), [
        "--config.phase=adversarial", "--config.init_from=", "--config.train_steps=30", "--config.batch_size=8",
        "--config.model.num_layers=1", "--config.model.embed_dim=32", "--config.model.num_heads=2",
        "--config.model.dropout=0.0", "--config.model.discriminator.num_rep=4",
        "--config.model.discriminator.embed_dim=8", "--config.model.discriminator.num_filters=(8,8,8,8)",
        "--config.model.discriminator.hidden_dim=16", "--config.model.discriminator.dropout=0.0"])
    try:
        task = build_task(config, tempfile.mkdtemp())
    except UsageError as e:  # a missing corpus (scripts/fetch_data.sh installs it)
        pytest.skip(str(e))
    state = task.init_state(jax.random.PRNGKey(0))
    dims = textgan.task_dims(task)
    twin = textgan.build(config, dims, 0, device="cpu")
    assert twin.num_params() == sum(x.size for x in jax.tree.leaves((state["g_params"], state["d_params"])))
    textgan.load_jax_params(twin, state["g_params"], state["d_params"])

    tokens = task.train_batch(0, 0, 1)["tokens"]
    twin.generator.eval()
    twin.discriminator.eval()
    with torch.no_grad():
        g_t = twin.generator(torch.from_numpy(np.asarray(tokens[:, :-1], np.int64))).numpy()
        d_t = twin.discriminator(torch.from_numpy(np.asarray(tokens[:, 1:], np.int64))).numpy()
    g = nnx.merge(task.g_def, state["g_params"])(jnp.asarray(tokens[:, :-1]))
    d = nnx.merge(task.d_def, state["d_params"])(jnp.asarray(tokens[:, 1:]))
    np.testing.assert_allclose(np.asarray(g), g_t, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(d), d_t, rtol=1e-4, atol=1e-4)

    initial = [{k: v.clone() for k, v in m.state_dict().items()} for m in (twin.generator, twin.discriminator)]
    step = jax.jit(task.train_step)
    for i in range(3):
        batch = task.train_batch(i, 0, 1)
        key = jax.random.PRNGKey(100 + i)
        noise_key = jax.random.split(key, 4)[0]  # the Gumbel noise's key in the JAX step

        def uniform(*shape, device=None, key=noise_key):
            u = jax.random.uniform(key, shape, jnp.float32, minval=float(jnp.finfo(jnp.float32).tiny), maxval=1.0)
            return torch.from_numpy(np.array(u))

        monkeypatch.setattr(torch, "rand", uniform)
        state, metrics = step(state, batch, key)
        g_loss = float(twin.step(batch))
        np.testing.assert_allclose(g_loss, float(metrics["g_loss"]), rtol=1e-4)
        np.testing.assert_allclose(float(twin.metrics["d_loss"]), float(metrics["d_loss"]), rtol=1e-4)
    monkeypatch.undo()
    fresh = textgan.build(config, dims, 1, device="cpu")
    textgan.load_jax_params(fresh, state["g_params"], state["d_params"])
    # Adam moves a weight by up to its learning rate per step whatever the gradient's size, so where a
    # gradient is ~0 float rounding can change an update by a fraction of it: half a step's tolerance.
    atol = 0.5 * config.adversarial.g_learning_rate
    for before, ours_m, theirs_m in zip(initial, (twin.generator, twin.discriminator),
                                        (fresh.generator, fresh.discriminator), strict=True):
        for (name, ours), theirs in zip(ours_m.state_dict().items(), theirs_m.state_dict().values(), strict=True):
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=atol, err_msg=name)
            # real updates, but for D's last biases: a relativistic loss sees only D(real) - D(fake), where
            # they cancel, so their gradient is 0 on both sides
            assert name in ("hidden.bias", "out.bias") or not torch.equal(ours, before[name]), name


def _train_alike(task, state: dict, twin, fresh_model, load_jax_params, frozen: str | None = None) -> None:
    """4 training steps on both sides from the same weights and batches (the first at the warm-up's zero
    learning rate; dropout 0, so the JAX step's key changes nothing): equal losses, and then equal weights:
    the trained JAX params copied into `fresh_model` (built from another seed, so a weight the copy misses
    differs) are the twin's, and every weight moved but those named `frozen...`."""
    import torch

    initial = {k: v.clone() for k, v in twin.model.state_dict().items()}
    step = jax.jit(task.train_step)
    jax_losses, torch_losses = [], []
    for i in range(4):
        batch = task.train_batch(i, 0, 1)
        state, metrics = step(state, batch, jax.random.PRNGKey(100 + i))
        torch_losses.append(float(twin.step(batch)))
        jax_losses.append(float(metrics["loss"]))
    np.testing.assert_allclose(torch_losses, jax_losses, rtol=1e-4)
    assert len(set(jax_losses)) == len(jax_losses)
    load_jax_params(fresh_model, state["params"])
    for (name, ours), theirs in zip(twin.model.state_dict().items(), fresh_model.state_dict().values(), strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)
        assert (frozen and name.startswith(frozen)) or not torch.equal(ours, initial[name]), name  # real updates
