"""The `vae` model (zoo.models.vae) and its objective (zoo.objectives.vae) on the shared loop.

One tiny VAE task on real Fashion-MNIST per module (its train and eval steps compiled once), then one
end-to-end `train.py` run in a subprocess."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from tests import helpers
from zoo import config as config_lib
from zoo.data import images as image_data
from zoo.errors import UsageError
from zoo.models.vae import ConvVAE
from zoo.objectives import vae

TINY_MODEL = {"latent_dim": 8, "channels": (8, 16), "hidden_dim": 32, "cond_features": 16}
TINY_OVERRIDES = ["--config.model.latent_dim=8", "--config.model.channels=(8,16)", "--config.model.hidden_dim=32",
                  "--config.model.cond_features=16", "--config.batch_size=32", "--config.iwae_samples=4",
                  "--config.eval_batches=2", "--config.warmup_steps=0", "--config.learning_rate=3e-3"]
WARMUP = 10


def _has_fashion() -> bool:
    try:
        image_data.load_images("fashion_mnist")
        return True
    except UsageError:
        return False


needs_fashion = pytest.mark.skipif(not _has_fashion(), reason=f"Fashion-MNIST absent: "
                                   f"{image_data.FASHION_MNIST_INSTALL}")


@pytest.fixture(scope="module")
def task() -> vae.VAETask:
    if not _has_fashion():
        pytest.skip(f"Fashion-MNIST absent: {image_data.FASHION_MNIST_INSTALL}")
    config = config_lib.apply_overrides(config_lib.load_config_file(helpers.ROOT / "configs/vae.py"),
                                        [*TINY_OVERRIDES, f"--config.kl_warmup_steps={WARMUP}",
                                         "--config.train_steps=100"])
    t = vae.build_task(config, "unused")
    t.jit_train = jax.jit(t.train_step)
    t.jit_eval = jax.jit(t.eval_step)
    return t


def _model(**kw) -> ConvVAE:
    return nnx.jit(lambda: ConvVAE(**{**TINY_MODEL, **kw}, rngs=nnx.Rngs(0)))()  # jitted init: fewer compiles


def test_shapes_and_dtypes():
    model = _model()
    x = (jax.random.uniform(jax.random.key(0), (3, 28, 28, 1)) < 0.3).astype(jnp.float32)
    cond = jax.random.normal(jax.random.key(1), (3, 384))

    @nnx.jit
    def run(model, x, cond):
        mu, logvar = model.encode(x, cond)
        logits, mu2, _ = model(x, cond, jax.random.key(2))
        other = model.decode(mu, jnp.roll(cond, 1, axis=0))
        return mu, logvar, model.decode(mu, cond), logits, mu2, model.sample(cond, jax.random.key(3)), other

    mu, logvar, decoded, logits, mu2, images, other = run(model, x, cond)
    assert mu.shape == logvar.shape == (3, 8) and mu.dtype == jnp.float32
    assert decoded.shape == logits.shape == (3, 28, 28, 1) and logits.dtype == jnp.float32
    np.testing.assert_allclose(mu2, mu)
    assert images.shape == (3, 28, 28, 1) and float(images.min()) >= 0 and float(images.max()) <= 1
    assert model.latent_dim == 8
    assert not np.allclose(decoded, other, atol=1e-3)  # the caption reaches the decoder
    # Other sizes and colour; bf16 compute still gives float32 outputs.
    colour = lambda: ConvVAE(**{**TINY_MODEL, "image_shape": (32, 32, 3), "channels": (8, 16, 16)},  # noqa: E731
                             dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    logits, mu, _ = nnx.eval_shape(lambda: colour()(jnp.zeros((2, 32, 32, 3)), jnp.zeros((2, 384)),
                                                    jax.random.key(0)))
    assert logits.shape == (2, 32, 32, 3) and logits.dtype == mu.dtype == jnp.float32
    with pytest.raises(ValueError, match="divisible"):
        ConvVAE(image_shape=(30, 30, 1), rngs=nnx.Rngs(0))


def test_kl_warmup_schedule():
    values = [float(vae.kl_beta(s, 100)) for s in (0, 1, 50, 99, 100, 250)]
    np.testing.assert_allclose(values, [0.0, 0.01, 0.5, 0.99, 1.0, 1.0], rtol=1e-6)
    assert float(vae.kl_beta(0, 0)) == float(vae.kl_beta(123, 0)) == 1.0
    assert float(jax.jit(vae.kl_beta, static_argnums=1)(jnp.int32(5), 10)) == 0.5


def test_likelihood_terms_by_hand():
    x = jnp.array([[[[1.0], [0.0]]]])  # one 1x2 image: pixels 1 and 0
    logits = jnp.array([[[[0.0], [math.log(3.0)]]]])  # p = 1/2 and 3/4
    np.testing.assert_allclose(vae.bernoulli_nll(logits, x), [math.log(2) + math.log(4)], rtol=1e-6)
    mu, logvar = jnp.array([[1.0, 0.0]]), jnp.array([[0.0, math.log(4.0)]])
    np.testing.assert_allclose(vae.gaussian_kl(mu, logvar), [0.5 * (1 + (4 - 1 - math.log(4)))], rtol=1e-6)


def test_discretised_logistic_is_a_distribution_over_the_256_levels():
    levels = jnp.arange(256, dtype=jnp.float32).reshape(256, 1, 1, 1) / 255.0
    for loc, log_scale in [(0.3, -3.0), (0.0, -5.0), (1.0, -2.0), (0.6, -7.0)]:
        params = jnp.tile(jnp.array([loc, log_scale], jnp.float32), (256, 1, 1, 1))
        probs = jnp.exp(-vae.discretised_logistic_nll(params, levels))
        np.testing.assert_allclose(float(probs.sum()), 1.0, atol=1e-5)
        assert int(probs.argmax()) == round(loc * 255)
    # An inner bin by hand: sigmoid((x - loc + 1/510) / s) - sigmoid((x - loc - 1/510) / s).
    x, loc, s = 100 / 255, 0.4, math.exp(-3.0)
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    expected = -math.log(sig((x - loc + 0.5 / 255) / s) - sig((x - loc - 0.5 / 255) / s))
    got = vae.discretised_logistic_nll(jnp.array([loc, -3.0]).reshape(1, 1, 1, 2), jnp.full((1, 1, 1, 1), x))
    np.testing.assert_allclose(float(got[0]), expected, rtol=1e-5)


def test_logistic_vae_trains_on_grey_levels(task):
    """The 8-bit likelihood: the decoder emits a location and a log-scale per pixel; a few steps on real
    grey-level batches lower the negative ELBO (nats per image, thousands: 784 pixels x 256 levels)."""
    model = _model(likelihood="logistic")
    batch = {k: jnp.asarray(v) for k, v in task.train_batch(0, 0, 1).items()}
    raw = task.dataset.train_images[:len(batch["cond"])]
    grey = jnp.asarray(raw, jnp.float32).reshape(batch["image"].shape) / 255.0
    params = model.decode(jnp.zeros((len(grey), model.latent_dim)), batch["cond"])
    assert params.shape == (*grey.shape[:-1], 2) and len(np.unique(np.asarray(grey))) > 2  # grey, not binary
    graphdef, state = nnx.split(model)
    tx = optax.adam(1e-2)
    opt = tx.init(state)

    def loss(st):
        m = nnx.merge(graphdef, st)
        out, mu, logvar = m(grey, batch["cond"], jax.random.key(0))
        return (vae.pixel_nll("logistic", out, grey) + vae.analytic_kl(m, mu, logvar, batch["cond"])).mean()

    @jax.jit
    def step(st, opt):
        value, grads = jax.value_and_grad(loss)(st)
        updates, opt = tx.update(grads, opt)
        return optax.apply_updates(st, updates), opt, value

    values = []
    for _ in range(20):
        state, opt, value = step(state, opt)
        values.append(float(value))
    assert max(values[-3:]) < values[0] - 250, values  # typically ~3016 -> ~2640
    images = nnx.merge(graphdef, state).sample(batch["cond"], jax.random.key(1))
    assert images.shape == grey.shape and float(images.min()) >= 0.0 and float(images.max()) <= 1.0


def test_iwae_bounds(task):
    params = jax.jit(task.init_state)(jax.random.key(0))["params"]
    model = nnx.merge(task.graphdef, params)
    batch = next(task.eval_batches(0, 1))
    x, cond = jnp.asarray(batch["image"][:16]), jnp.asarray(batch["cond"][:16])
    log_w, recon, kl = nnx.jit(vae.importance_log_weights, static_argnums=(4,))(model, x, cond, jax.random.key(7), 256)
    assert log_w.shape == recon.shape == (16, 256) and kl.shape == (16,)
    # Each log w_k is a K=1 IWAE estimate: its mean is the ELBO (analytic KL) in expectation.
    neg_elbo = float(recon.mean() + kl.mean())
    standard_error = float(log_w.mean(axis=0).std()) / math.sqrt(log_w.shape[1]) + 1e-3
    assert abs(float(-log_w.mean()) - neg_elbo) < 5 * standard_error, (float(-log_w.mean()), neg_elbo)

    def iwae(k: int) -> jax.Array:  # the K-sample bound per image, averaged over the 256 / k disjoint groups
        groups = log_w.reshape(16, 256 // k, k)
        return -(jax.nn.logsumexp(groups, axis=2) - math.log(k)).mean(axis=1)

    # On the same samples the bound never rises with K (Jensen), and K=1 is the sampled ELBO.
    bounds = [np.asarray(iwae(k)) for k in (1, 16, 256)]
    np.testing.assert_allclose(bounds[0], -log_w.mean(axis=1), rtol=1e-6)
    assert np.all(bounds[2] <= bounds[1] + 1e-3) and np.all(bounds[1] <= bounds[0] + 1e-3)
    assert float(iwae(256).mean()) <= neg_elbo + 0.5
    # The standalone, chunked estimator (a ragged last image chunk) is deterministic and agrees with it.
    images, embeddings = np.asarray(batch["image"][:13]), np.asarray(batch["cond"][:13])
    chunked = vae.iwae_nll(task.graphdef, params, images, embeddings, jax.random.key(8), 32, image_chunk=5,
                           sample_chunk=16)
    again = vae.iwae_nll(task.graphdef, params, images, embeddings, jax.random.key(8), 32, image_chunk=5,
                         sample_chunk=16)
    assert chunked.shape == (13,) and chunked.dtype == np.float64 and np.array_equal(chunked, again)
    np.testing.assert_allclose(chunked, np.asarray(iwae(32)[:13]), atol=3.0)
    np.testing.assert_allclose(chunked.mean(), float(iwae(32)[:13].mean()), atol=1.0)


def test_training_steps_lower_the_loss(task):
    state = jax.jit(task.init_state)(jax.random.key(0))
    before = jax.device_get(task.jit_eval(state, next(task.eval_batches(0, 1))))
    history = []
    for step in range(30):
        state, metrics = task.jit_train(state, task.train_batch(step, 0, 1), jax.random.key(step))
        history.append(jax.device_get(metrics))
    assert int(state["step"]) == 30
    np.testing.assert_allclose([m["beta"] for m in history[:12]],
                               [task.kl_weight * min(s / WARMUP, 1) for s in range(12)],
                               rtol=1e-6)
    elbo = [float(m["neg_elbo"]) for m in history]
    assert np.mean(elbo[-5:]) < np.mean(elbo[:5]) - 50, elbo
    after = jax.device_get(task.jit_eval(state, next(task.eval_batches(0, 1))))
    assert set(after) == {"loss", "recon", "kl", "iwae_nll", "weight"}  # weight: the real rows, for the loop
    assert after["loss"] < before["loss"] - 50, (before, after)
    assert after["iwae_nll"] <= after["loss"] + 0.5
    # Fine-tuning keeps the warm-up position; the export is the model's params alone.
    assert task.export_params(state) is state["params"]
    assert int(task.load_params(state, state["params"])["step"]) == 30


def test_eval_is_mask_weighted(task):
    state = jax.jit(task.init_state)(jax.random.key(0))
    batch = next(task.eval_batches(0, 1))
    first = np.arange(len(batch["mask"])) < len(batch["mask"]) // 2
    full = jax.device_get(task.jit_eval(state, batch))
    front = jax.device_get(task.jit_eval(state, dict(batch, mask=first.astype(np.float32))))
    back = jax.device_get(task.jit_eval(state, dict(batch, mask=(~first).astype(np.float32))))
    # Masked rows do not count, whatever they hold (each row's noise does not depend on the other rows).
    junk = dict(batch, image=np.where(first[:, None, None, None], batch["image"], 1.0),
                mask=first.astype(np.float32))
    assert full["weight"] == front["weight"] + back["weight"] == len(batch["mask"])  # the loop's batch weight
    for key in full:
        if key != "weight":
            np.testing.assert_allclose(full[key], (front[key] + back[key]) / 2, rtol=1e-5)
        np.testing.assert_allclose(jax.device_get(task.jit_eval(state, junk))[key], front[key], rtol=1e-5)


@needs_fashion
def test_train_vae_end_to_end(tmp_path):
    workdir = tmp_path / "run"
    cmd = [sys.executable, str(helpers.ROOT / "train.py"), "--config", str(helpers.ROOT / "configs/vae.py"),
           "--workdir", str(workdir), *TINY_OVERRIDES, "--config.train_steps=20", "--config.kl_warmup_steps=5",
           "--config.log_every=5", "--config.eval_every=20", "--config.checkpoint_every=20",
           "--config.async_checkpoints=False"]
    result = subprocess.run(cmd, env=helpers.env(), capture_output=True, text=True, timeout=300, cwd=helpers.ROOT)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    if jax.default_backend() == "cpu":  # the config's XLA CPU options reached the loop's steps
        assert "XLA compiler options: {'xla_cpu_experimental_ynn_fusion_type'" in result.stdout, result.stdout
    records = helpers.metrics(workdir)
    losses = helpers.losses(workdir)
    assert len(losses) == 4 and losses[20] < losses[5], losses
    kl_weight = json.loads((workdir / "config.json").read_text())["kl_weight"]
    assert 0 < kl_weight <= 1 and [r["train/beta"] for r in records if "train/beta" in r][-1] == kl_weight
    final = records[-1]
    assert all(math.isfinite(final[f"eval/{k}"]) for k in ("loss", "recon", "kl", "iwae_nll")), final
    export = workdir / "export"
    config = json.loads((export / "config.json").read_text())
    assert config["model_name"] == "vae" and (export / "params").is_dir()
    info = json.loads((export / "images.json").read_text())
    assert info["likelihood"] == "bernoulli" and info["image_shape"] == [28, 28, 1]
    assert info["class_names"][-1] == "Ankle boot" and len(info["captions"]) == len(info["caption_classes"])
    assert info["captions"][info["caption_classes"].index(9)] == "an ankle boot"
    table = np.load(export / info["embeddings"])
    assert table.dtype == np.float16 and table.shape == (len(info["captions"]), 384)
    # What a sampler does: rebuild the model from the export alone and draw an image of a caption.
    from zoo import export as export_lib
    from zoo.models import build
    from zoo.models.vae import ConvVAE
    model = build(ConvVAE, config_lib.from_json(json.dumps(config)), nnx.Rngs(0), **info["model_dims"])
    graphdef, params = nnx.split(model, nnx.Param)
    model = nnx.merge(graphdef, export_lib.load_params(export, nnx.to_pure_dict(params)))
    images = model.sample(jnp.asarray(table[:2], jnp.float32), jax.random.key(0))
    assert images.shape == (2, 28, 28, 1) and bool(jnp.isfinite(images).all())
    # The ex-post latent mixtures: one per class, fit to the training images' posterior means, which they
    # score far better than the prior N(0, I) does; the sampler draws from the named class's mixture.
    assert info["latent_mixture"] == export_lib.LATENT_MIXTURE and info["latent_mixture_components"] == 10
    with np.load(export / info["latent_mixture"]) as f:
        mixture = dict(f)
    assert mixture["log_weights"].shape == (10, 10) and mixture["chol"].shape == (10, 10, 8, 8)
    np.testing.assert_allclose(np.exp(mixture["log_weights"]).sum(axis=1), 1.0, rtol=1e-5)
    from zoo.models import vae_mixture
    from zoo.sample.images import VAESampler
    data = image_data.load_images("fashion_mnist")
    rows = np.flatnonzero(data.test_labels == 9)[:200]
    x = (np.random.default_rng(0).random((200, 28, 28, 1)) * 255 < data.test_images[rows]).astype(np.float32)
    mu = np.asarray(model.encode(jnp.asarray(x), jnp.tile(jnp.asarray(table[info["caption_classes"].index(9)],
                                                                      jnp.float32), (200, 1)))[0])
    boot = {k: v[9] for k, v in mixture.items()}
    assert float(vae_mixture.log_prob(boot, jnp.asarray(mu)).mean()) > float(
        jax.scipy.stats.norm.logpdf(mu).sum(axis=1).mean()) + 5
    sampler = VAESampler(export)
    assert sampler.default_temperature == config["sample_temperature"] == info["sample_temperature"]
    cond = np.tile(sampler.class_condition(9)[None], (4, 1))
    drawn = sampler.sample_cond(cond, 3, classes=np.full(4, 9))
    assert np.array_equal(np.stack(drawn), np.stack(sampler.sample_cond(cond, 3, classes=np.full(4, 9))))
    assert not np.array_equal(np.stack(drawn), np.stack(sampler.sample_cond(cond, 3)))  # vs the model's prior
    hot = sampler.sample_cond(cond, 3, temperature=1.0, classes=np.full(4, 9))  # the default is the export's
    assert not np.array_equal(np.stack(drawn), np.stack(hot)) or config["sample_temperature"] == 1.0


def test_kl_to_a_moved_prior():
    """The conditional prior's KL: zero against itself, 0.5 * d^2 per dimension for a mean moved by d, and
    the standard-normal formula when the prior is N(0, I)."""
    mu, logvar = jnp.array([[0.3, -1.0]]), jnp.array([[0.2, -0.5]])
    np.testing.assert_allclose(vae.gaussian_kl(mu, logvar, mu, logvar), [0.0], atol=1e-6)
    np.testing.assert_allclose(vae.gaussian_kl(jnp.zeros((1, 2)), jnp.zeros((1, 2)), 1.5, 0.0), [2 * 0.5 * 1.5**2],
                               rtol=1e-6)
    np.testing.assert_allclose(vae.gaussian_kl(mu, logvar, 0.0, 0.0), vae.gaussian_kl(mu, logvar), rtol=1e-6)


def _mixture_model(k: int = 3) -> ConvVAE:
    """A tiny VAE whose K-component prior has random (non-zero) caption weights, so every output moves."""
    model = _model(conditional_prior=True, prior_components=k)
    kernel = model.prior_net.kernel
    kernel[...] = 0.3 * jax.random.normal(jax.random.key(4), kernel.shape)
    return model


def test_mixture_prior_density_by_hand():
    """log p(z | c) of the mixture prior is log sum_k w_k N(z; mu_k, diag exp(logvar_k)), weights summing to 1;
    with one component it is the Gaussian's, and its KL is then the closed form."""
    model = _mixture_model()
    cond = jax.random.normal(jax.random.key(1), (4, 384))
    z = jax.random.normal(jax.random.key(2), (4, 8))
    log_w, mu, logvar = (np.asarray(v, np.float64) for v in model.prior(cond))
    assert log_w.shape == (4, 3) and mu.shape == logvar.shape == (4, 3, 8)
    np.testing.assert_allclose(np.exp(log_w).sum(axis=1), 1.0, rtol=1e-6)
    assert np.ptp(log_w) > 0.01 and np.ptp(mu[:, 0] - mu[:, 1]) > 0.01  # weights and means vary
    zz = np.asarray(z, np.float64)[:, None]
    dens = np.exp(log_w) * np.prod(np.exp(-0.5 * (zz - mu) ** 2 / np.exp(logvar)) / np.sqrt(2 * np.pi * np.exp(logvar)),
                                   axis=-1)
    np.testing.assert_allclose(model.prior_log_prob(z, cond), np.log(dens.sum(axis=1)), rtol=1e-5)

    single = _model(conditional_prior=True)
    q_mu, q_logvar = jnp.full((4, 8), 0.3), jnp.full((4, 8), -0.4)
    log_w1, mu1, logvar1 = single.prior(cond)
    assert log_w1.shape == (4, 1) and float(jnp.abs(log_w1).max()) == 0.0
    np.testing.assert_allclose(vae.kl_estimate(single, z, q_mu, q_logvar, cond),
                               vae.gaussian_kl(q_mu, q_logvar, mu1[:, 0], logvar1[:, 0]), rtol=1e-6)
    assert vae.analytic_kl(model, q_mu, q_logvar, cond) is None


def test_mixture_kl_estimate():
    """The one-sample KL estimate log q(z) - log p(z) is unbiased: with all K components equal to one Gaussian
    p, its mean over 20,000 draws z ~ q is the closed-form KL(q || p) within Monte Carlo error; it is exactly
    0 at every z when that Gaussian is q itself; and for a real mixture it is log q - log p by hand."""
    model = _mixture_model()
    n = 20000
    cond = jnp.tile(jax.random.normal(jax.random.key(1), (1, 384)), (n, 1))
    q_mu, q_logvar = jnp.full((n, 8), 0.2), jnp.full((n, 8), -0.5)
    z = q_mu + jnp.exp(0.5 * q_logvar) * jax.random.normal(jax.random.key(3), q_mu.shape)

    def set_components(m: ConvVAE, mean: float, logvar: float) -> ConvVAE:
        bias = np.array(m.prior_net.bias[...])
        bias[:3 * 8], bias[3 * 8:6 * 8] = mean, logvar
        m.prior_net.bias[...] = jnp.asarray(bias)
        m.prior_net.kernel[...] = jnp.zeros(m.prior_net.kernel.shape)
        return m

    one_gaussian = set_components(_mixture_model(), -0.4, 0.3)
    estimate = np.asarray(vae.kl_estimate(one_gaussian, z, q_mu, q_logvar, cond), np.float64)
    exact = float(vae.gaussian_kl(q_mu[:1], q_logvar[:1], -0.4, 0.3)[0])
    assert exact > 1.0 and estimate.std() > 0.1  # a real divergence, estimated with noise
    assert abs(estimate.mean() - exact) < 4 * estimate.std() / np.sqrt(n), (estimate.mean(), exact)
    same = set_components(_mixture_model(), 0.2, -0.5)
    np.testing.assert_allclose(vae.kl_estimate(same, z[:50], q_mu[:50], q_logvar[:50], cond[:50]), 0.0, atol=1e-4)

    kl = np.asarray(vae.kl_estimate(model, z[:500], q_mu[:500], q_logvar[:500], cond[:500]), np.float64)
    log_w, mu, logvar = (np.asarray(v[0], np.float64) for v in model.prior(cond[:1]))
    zz = np.asarray(z[:500], np.float64)[:, None]
    log_p = np.log(np.sum(np.exp(log_w - 0.5 * np.sum((zz - mu) ** 2 / np.exp(logvar) + logvar
                                                       + np.log(2 * np.pi), axis=-1)), axis=1))
    log_q = -0.5 * np.sum((np.asarray(z[:500]) - 0.2) ** 2 / np.exp(-0.5) - 0.5 + np.log(2 * np.pi), axis=1)
    np.testing.assert_allclose(kl, log_q - log_p, rtol=1e-4, atol=1e-4)


def test_mixture_prior_sampling_follows_the_weights():
    """sample_latent picks component k with probability w_k and scales the draw by the temperature."""
    model = _mixture_model()
    bias = np.zeros(model.prior_net.bias.shape, np.float32)
    bias[0:3 * 8:8] = [-20.0, 0.0, 20.0]  # component k's first coordinate sits at -20, 0, 20
    bias[3 * 8:6 * 8] = np.log(0.01)  # sd 0.1
    bias[6 * 8:] = np.log([0.2, 0.3, 0.5])
    model.prior_net.bias[...] = jnp.asarray(bias)
    model.prior_net.kernel[...] = jnp.zeros(model.prior_net.kernel.shape)
    cond = jnp.zeros((4000, 384))
    sample = nnx.jit(lambda m, c, k, t: m.sample_latent(c, k, t), static_argnums=3)
    z = np.asarray(sample(model, cond, jax.random.key(0), 1.0))
    picks = np.round(z[:, 0] / 20).astype(int) + 1
    np.testing.assert_allclose(np.bincount(picks, minlength=3) / len(z), [0.2, 0.3, 0.5], atol=0.03)
    np.testing.assert_allclose(z[:, 1:].std(), 0.1, rtol=0.05)
    np.testing.assert_allclose(np.asarray(sample(model, cond, jax.random.key(0), 0.5))[:, 1:].std(), 0.05, rtol=0.05)
    with pytest.raises(ValueError, match="conditional_prior"):
        ConvVAE(**TINY_MODEL, prior_components=2, rngs=nnx.Rngs(0))
