"""The `music` model (zoo.models.music) and its objective (zoo.objectives.music) on the shared loop."""

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
from zoo.models.music import LSTMLayer, MelodyRNN, _cell


def _model(dropout: float = 0.0) -> MelodyRNN:
    return MelodyRNN(vocab_size=40, embed_dim=16, hidden_dim=24, num_layers=2, dropout=dropout,
                     rngs=nnx.Rngs(0))


def _textbook_cell(gates, c):
    i, f, g, o = jnp.split(gates.astype(jnp.float32), 4, axis=-1)
    c_new = jax.nn.sigmoid(f) * c.astype(jnp.float32) + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c_new), c_new


def test_cell_values_and_gradients_equal_autodiff():
    """The hand-written backward pass of the LSTM cell against autodiff of the textbook formula, with
    cotangents on both outputs (h goes up the stack, c along the recurrence)."""
    rng = np.random.default_rng(0)
    gates = jnp.asarray(3 * rng.normal(size=(5, 4 * 6)), jnp.float32)  # saturating and linear regions
    c = jnp.asarray(rng.normal(size=(5, 6)), jnp.float32)
    w_h, w_c = (jnp.asarray(rng.normal(size=(5, 6)), jnp.float32) for _ in range(2))
    for got, expected in zip(_cell(gates, c), _textbook_cell(gates, c), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)

    def loss(cell):
        return lambda g, c: jnp.sum(cell(g, c)[0] * w_h + cell(g, c)[1] * w_c)

    got = jax.grad(loss(_cell), argnums=(0, 1))(gates, c)
    expected = jax.grad(loss(_textbook_cell), argnums=(0, 1))(gates, c)
    for a, b in zip(got, expected, strict=True):
        assert float(jnp.abs(b).max()) > 0.1
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("steps", [1, 9])
def test_layer_gradients_equal_autodiff_of_the_textbook_scan(steps):
    """LSTMLayer.scan writes out both loops over the batch-major arrays and takes the recurrent kernel's
    gradient out of the backward loop (one matmul over all steps): its value and every gradient (kernel,
    input pre-activations, initial h and c) equal plain autodiff of a scan over the textbook cell, with
    cotangents on every step's h and on the final (h, c)."""
    layer = LSTMLayer(8, 6, jnp.float32, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(1)
    xg = jnp.asarray(2 * rng.normal(size=(3, steps, 24)), jnp.float32)
    state = tuple(jnp.asarray(rng.normal(size=(3, 6)), jnp.float32) for _ in range(2))
    w_hs, w_h, w_c = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in ((3, steps, 6), (3, 6), (3, 6)))

    def textbook(params, xg, state):
        kernel = params["w_h"]["kernel"][...]

        def body(carry, xg_t):
            h, c = _textbook_cell(xg_t + carry[0] @ kernel, carry[1])
            return (h, c), h
        (h, c), hs = jax.lax.scan(body, state, jnp.swapaxes(xg, 0, 1))
        return jnp.swapaxes(hs, 0, 1), (h, c)

    graphdef, params = nnx.split(layer)

    def ours(params, xg, state):
        return nnx.merge(graphdef, params).scan(xg, state)

    def loss(run):
        def f(params, xg, state):
            hs, (h, c) = run(params, xg, state)
            return jnp.sum(hs * w_hs) + jnp.sum(h * w_h) + jnp.sum(c * w_c)
        return f

    np.testing.assert_allclose(ours(params, xg, state)[0], textbook(params, xg, state)[0], atol=1e-6)
    got = jax.grad(loss(ours), argnums=(0, 1, 2))(params, xg, state)
    expected = jax.grad(loss(textbook), argnums=(0, 1, 2))(params, xg, state)
    assert float(jnp.abs(got[0]["w_h"]["kernel"][...]).max()) > 0.1  # the gradient moved out of the loop
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # A bf16 step: every gradient comes back in its primal's dtype (bf16 gates; the float32 state and
    # parameter stay float32) and close to the float32 ones.
    bf16_graphdef, bf16_params = nnx.split(LSTMLayer(8, 6, jnp.bfloat16, rngs=nnx.Rngs(0)))
    bf16 = jax.grad(loss(lambda p, x, st: nnx.merge(bf16_graphdef, p).scan(x, st)), argnums=(0, 1, 2))(
        bf16_params, xg.astype(jnp.bfloat16), state)
    assert bf16[1].dtype == jnp.bfloat16 and all(x.dtype == jnp.float32 for x in bf16[2])
    assert bf16[0]["w_h"]["kernel"][...].dtype == jnp.float32
    for a, b in zip(jax.tree.leaves((bf16[0]["w_h"], bf16[1], bf16[2])),
                    jax.tree.leaves((expected[0]["w_h"], expected[1], expected[2])), strict=True):
        np.testing.assert_allclose(np.asarray(a, np.float32), b, rtol=0.1, atol=0.1)


SHARDED_GRADIENT = """
import jax, jax.numpy as jnp, numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P
from zoo.models.music import LSTMLayer

graphdef, params = nnx.split(LSTMLayer(8, 16, jnp.float32, rngs=nnx.Rngs(0)))
mesh = jax.make_mesh((2,), ("data",))
rows = NamedSharding(mesh, P("data"))
xg, h, c = jnp.ones((8, 12, 64)), jnp.zeros((8, 16)), jnp.zeros((8, 16))
grad = jax.jit(jax.grad(lambda p, xg, h, c: jnp.sum(nnx.merge(graphdef, p).scan(xg, (h, c))[0] ** 2)),
               in_shardings=(NamedSharding(mesh, P()), rows, rows, rows))
print(grad.lower(params, xg, h, c).compile().as_text())
"""


def test_data_parallel_kernel_gradient_reduces_partial_sums_instead_of_gathering():
    """With the batch split over 2 devices, the kernel's gradient after the loop is each device's rows
    contracted and all-reduced: no all-gather of its operands (merging [T, B] into one row axis, time
    first, made XLA gather them; batch first, as now, keeps each device's rows contiguous)."""
    result = subprocess.run([sys.executable, "-c", SHARDED_GRADIENT], capture_output=True, text=True,
                            cwd=helpers.ROOT, env=helpers.env(2), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "all-reduce" in result.stdout and "all-gather" not in result.stdout


def test_step_by_step_equals_full_forward():
    model = _model(dropout=0.1)
    tokens = jax.random.randint(jax.random.key(1), (3, 12), 0, 40)
    cond = jax.random.normal(jax.random.key(2), (3, 384))
    full = model(tokens, cond)
    assert full.shape == (3, 12, 40) and full.dtype == np.float32
    state = model.init_state(cond)
    step = nnx.jit(lambda m, tok, st: m.step(tok, st))
    stepped = []
    for t in range(tokens.shape[1]):
        logits, state = step(model, tokens[:, t], state)
        stepped.append(logits)
    np.testing.assert_allclose(np.stack(stepped, axis=1), full, atol=1e-5)
    # the model holds only parameters; dropout is drawn from call-time rngs
    assert jax.tree.structure(nnx.to_pure_dict(nnx.state(model))) == \
        jax.tree.structure(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    dropped = model(tokens, cond, deterministic=False, rngs=nnx.Rngs(dropout=0))
    assert not np.allclose(dropped, full)


def test_conditioning_changes_the_logits():
    model = _model()
    tokens = jax.random.randint(jax.random.key(1), (2, 6), 0, 40)
    a = jax.random.normal(jax.random.key(3), (1, 384))
    b = jax.random.normal(jax.random.key(4), (1, 384))
    logits = model(tokens, np.concatenate([a, b]))
    assert np.abs(logits[0] - logits[1]).max() > 1e-3
    same = model(tokens, np.concatenate([a, a]))
    np.testing.assert_allclose(same[0], model(tokens[:1], a)[0], atol=1e-5)
    assert not np.allclose(same[0], same[1])  # different tokens, same caption


def test_train_music_end_to_end(tmp_path):
    pytest.importorskip("music21")
    workdir = tmp_path / "run"
    cmd = [sys.executable, str(helpers.ROOT / "train.py"), "--config", str(helpers.ROOT / "configs/music.py"),
           "--workdir", str(workdir), "--config.data=oneills1850", "--config.max_tunes=40",
           "--config.train_steps=30", "--config.batch_size=8", "--config.max_len=128",
           "--config.model.embed_dim=32", "--config.model.hidden_dim=64", "--config.log_every=5",
           "--config.eval_every=30", "--config.eval_batches=2", "--config.warmup_steps=5",
           "--config.checkpoint_every=30", "--config.async_checkpoints=False"]
    result = subprocess.run(cmd, env=helpers.env(), capture_output=True, text=True, timeout=300,
                                    cwd=helpers.ROOT)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    losses = helpers.losses(workdir)
    assert len(losses) >= 4, losses
    first, last = losses[min(losses)], losses[max(losses)]
    assert last < first - 0.5, losses
    evals = [r for r in helpers.metrics(workdir) if "eval/loss" in r]
    assert evals and np.isfinite(evals[-1]["eval/loss"]) and "eval/accuracy" in evals[-1]
    export = workdir / "export"
    assert (export / "params").is_dir() and json.loads((export / "config.json").read_text())["model_name"] == "music"
    captions = json.loads((export / "captions.json").read_text())
    table = np.load(export / "caption_embeddings.npy")
    assert table.dtype == np.float16 and table.shape == (len(captions), 384)
    np.testing.assert_allclose(np.linalg.norm(table.astype(np.float32), axis=1), 1.0, atol=1e-2)
    assert json.loads((export / "music.json").read_text())["encoding_version"] >= 1
