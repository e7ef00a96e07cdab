"""A RelGAN-style text GAN on fixed-form poems: the `textgan` objective.

Two phases, as in RelGAN, each its own run (`config.phase`), the second starting from the first's export:

1. "mle": maximum likelihood. The generator (zoo.models.lm.GPT) learns next-token prediction on the
   training poems (zoo.objectives.lm.lm_loss, with dropout) with the shared AdamW, warm-up and cosine
   schedule (zoo.train.optim). This run's export is also the MLE-only baseline the GAN is compared with.
2. "adversarial" (`init_from` = the MLE run): adversarial training (Nie et al. 2019, RelGAN):
   - Sampling. The generator draws a batch of sequences token by token with its KV cache (`lax.scan`):
     y_t = argmax(o_t + g_t), g_t ~ Gumbel(0, 1) [B, V], an exact sample of softmax(o_t) (the Gumbel-max
     trick), and y_t is fed back as the next input.
   - Relaxation. D sees y_hat_t = softmax(beta * (o_t + g_t)), the Gumbel-softmax relaxation of the one-hot
     y_t, with the SAME noise; as beta grows it approaches the one-hot. beta is the inverse temperature
     annealed from 1 to `temperature_max` over the run's steps (`inverse_temperature`: RelGAN's
     constant / linear / exponential / log / quadratic / sqrt schedules).
   - Gradients flow from D's logits through y_hat into the logits o_t. Since the inputs y_t are discrete
     (no gradient flows through them, as in RelGAN), the logits of all T positions are those of ONE
     teacher-forced pass over (start, y_1, ..., y_{T-1}): the step recomputes them in parallel with the
     gradient, instead of differentiating through the T sequential cached decode steps.
   - Loss: relativistic standard GAN (Jolicoeur-Martineau 2019), real and fake paired by batch row and
     by each of D's `num_rep` representations:
         L_D = softplus(-(D(x) - D(G(z)))),     L_G = softplus(-(D(G(z)) - D(x)))
   - D, then G, in one step on the same sample: D's update, then G's loss through the NEW D pulled back
     through the generator's saved forward pass (`jax.vjp`). Each has its own Adam (lr 1e-4, RelGAN's)
     behind gradient clipping; both optimizer states live in the one train state (and checkpoint).
   - `adversarial.mle_weight` = w > 0 adds w x the MLE loss gradient on the real batch to G's adversarial
     gradient (MLE regularisation, as in SeqGAN/LeakGAN's interleaved teacher forcing). Without it the
     generator drifts from the data (NLL_gen and BLEU both worsen); with w = 1 it stays near the data while
     the adversarial term sharpens it (zoo/pretrained/textgan/README.md).

Why two runs rather than one run switching phase with `lax.cond` on the step: as a branch of a conditional
the adversarial step runs 4.3x slower on the CPU, and a separate run is what RelGAN does too (pretrain,
save, then train adversarially from the saved generator).

Tokens the data never has at a position (the tokenizer's `<unk>`; for quatrains also the end token,
which pads nothing in a form of fixed length) get -1e9 added to their logits everywhere: in sampling
here, in the sampler and in evaluation's NLL alike (zoo.sample.textgan uses `zoo.text.forms.logit_bias`).

Evaluation: `loss` = NLL_gen, the generator's negative log-likelihood of the test poems in nats per token
(the text-GAN literature's NLL_gen / NLL-test), and next-token accuracy. BLEU and Self-BLEU of samples
are reported by benchmarks/textgan_eval.py (zoo.metrics.bleu).
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from zoo import export, storage
from zoo.data import poem_forms
from zoo.errors import UsageError
from zoo.models import build
from zoo.models.textgan import TextGAN
from zoo.objectives.common import top1_correct
from zoo.objectives.lm import lm_loss, prepare_tokenizer
from zoo.text import forms
from zoo.text import tokenizer as tokenizer_lib
from zoo.train.optim import make_optimizer
from zoo.train.task import EVAL_WEIGHT

log = logging.getLogger(__name__)

PyTree = Any
PHASES = ("mle", "adversarial")
SCHEDULES = ("constant", "linear", "exponential", "log", "quadratic", "sqrt")


def inverse_temperature(step: jax.Array | int, total: int, maximum: float, schedule: str) -> jax.Array:
    """RelGAN's annealed inverse temperature beta_n for adversarial step n of N = `total`: 1 at n = 0,
    `maximum` at n = N (and after):
        constant: max          linear: 1 + (max - 1) n / N       exponential: max ** (n / N)
        log: 1 + (max - 1) log(n + 1) / log(N + 1)   quadratic: 1 + (max - 1) (n / N)^2
        sqrt: 1 + (max - 1) sqrt(n / N)."""
    if schedule not in SCHEDULES:
        raise UsageError(f"unknown temperature schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    frac = jnp.clip(jnp.asarray(step, jnp.float32) / max(total, 1), 0.0, 1.0)
    if schedule == "constant":
        return jnp.asarray(maximum, jnp.float32) + 0.0 * frac
    if schedule == "exponential":
        return jnp.asarray(maximum, jnp.float32) ** frac
    shape = {"linear": frac, "quadratic": frac ** 2, "sqrt": jnp.sqrt(frac),
             "log": jnp.log1p(frac * total) / math.log1p(max(total, 1))}[schedule]
    return 1.0 + (maximum - 1.0) * shape


def rsgan_losses(real: jax.Array, fake: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(L_D, L_G) of the relativistic standard GAN for paired logits real, fake [B, R]."""
    return jax.nn.softplus(fake - real).mean(), jax.nn.softplus(real - fake).mean()


def rollout(generator: nnx.Module, start: jax.Array, gumbel: jax.Array, bias: jax.Array) -> jax.Array:
    """Sequences int32 [B, T]: y_t = argmax(logits_t + bias + gumbel[:, t]) fed back through the KV cache,
    from `start` int32 [B] (a draw from the generator's softmax when gumbel is standard Gumbel noise)."""
    batch, length, _ = gumbel.shape
    cache = generator.init_cache(batch, length)

    def body(carry, inputs):
        token, cache = carry
        t, noise = inputs
        logits, cache = generator.decode(token[:, None], cache, t)
        token = jnp.argmax(logits[:, 0] + bias + noise, axis=-1).astype(jnp.int32)
        return (token, cache), token

    _, tokens = jax.lax.scan(body, (start.astype(jnp.int32), cache),
                             (jnp.arange(length, dtype=jnp.int32), gumbel.swapaxes(0, 1)))
    return tokens.swapaxes(0, 1)


def masked_nll(graphdef: nnx.GraphDef, params: PyTree, tokens: jax.Array, bias: jax.Array,
               mask: jax.Array) -> dict[str, jax.Array]:
    """Mean next-token NLL (nats) and accuracy over the real rows (`mask`) of `tokens` [B, T + 1]."""
    logits = nnx.merge(graphdef, params)(tokens[:, :-1]) + bias
    targets = tokens[:, 1:]
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean(axis=1)
    acc = top1_correct(logits, targets).mean(axis=1)
    rows = mask.astype(jnp.float32)
    n = jnp.maximum(rows.sum(), 1.0)
    return {"loss": (nll * rows).sum() / n, "accuracy": (acc * rows).sum() / n, EVAL_WEIGHT: rows.sum()}


class TextGANTask:
    """Data, state and steps of the text GAN for the shared loop (zoo.train.task.Task)."""

    family = "textgan"

    def __init__(self, config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
        workdir = storage.as_path(workdir)
        self.config = config
        self.poems = poem_forms.load_poem_set(config.data, config.get("test_fraction", 0.1),
                                              config.get("max_chars", 48))
        # One character vocabulary over train and test alike (as the text-GAN benchmarks build theirs), so
        # NLL_gen never meets an unknown character.
        self.tokenizer = prepare_tokenizer(config, workdir, self.poems.train + self.poems.test, min_count=1)
        self.vocab_size = len(self.tokenizer)
        self.length = self.poems.length
        if config.model.context_length < self.length + 1:
            raise UsageError(f"context_length {config.model.context_length} < {self.length + 1}: a {config.data} "
                             "sequence and its start token do not fit")
        self.bias = forms.logit_bias(self.tokenizer, config.data)
        try:
            train = poem_forms.encode_fixed(self.tokenizer, self.poems.train, self.length)
            test = poem_forms.encode_fixed(self.tokenizer, self.poems.test, self.length)
        except ValueError as e:
            raise UsageError(f"{config.data}: {e}") from None
        self.train_data = poem_forms.SequenceBatches(train, config.batch_size, config.seed)
        self.val_data = poem_forms.SequenceBatches(test, config.batch_size, config.seed, stream=1)
        self.eval_batch_count = config.get("eval_batches", 100)

        self.phase = config.phase
        if self.phase not in PHASES:
            raise UsageError(f"unknown textgan phase {self.phase!r}; valid: {', '.join(PHASES)}")
        if self.phase == "adversarial" and not config.get("init_from"):
            log.warning("adversarial training from a random generator: set --config.init_from to the MLE run")
        adv = config.adversarial
        inverse_temperature(0, 1, adv.temperature_max, adv.temperature_schedule)  # validates the name early
        self.mle_tx = make_optimizer(config)

        def adam(lr: float) -> optax.GradientTransformation:
            clip = adv.get("grad_clip_norm", 5.0)
            return optax.chain(optax.clip_by_global_norm(clip) if clip else optax.identity(),
                               optax.adam(lr, b1=adv.adam_b1, b2=adv.adam_b2))

        self.g_tx, self.d_tx = adam(adv.g_learning_rate), adam(adv.d_learning_rate)
        abstract = nnx.eval_shape(lambda: self._build(nnx.Rngs(0)))
        self.g_def = nnx.graphdef(abstract.generator)
        self.d_def = nnx.graphdef(abstract.discriminator)
        log.info("%s: %d train / %d test poems of %d tokens, vocab %d; %s phase", config.data, len(train),
                 len(test), self.length, self.vocab_size, self.phase)

    @property
    def model_dims(self) -> dict:
        return {"vocab_size": self.vocab_size}

    def _build(self, rngs: nnx.Rngs) -> nnx.Module:
        return build(TextGAN, self.config, rngs, **self.model_dims)

    # ------------------------------------------------------------------------------------------ state

    def init_state(self, key: jax.Array) -> dict[str, PyTree]:
        model = self._build(nnx.Rngs(params=key))
        g = nnx.to_pure_dict(nnx.state(model.generator, nnx.Param))
        d = nnx.to_pure_dict(nnx.state(model.discriminator, nnx.Param))
        return {"g_params": g, "d_params": d, "mle_opt_state": self.mle_tx.init(g),
                "g_opt_state": self.g_tx.init(g), "d_opt_state": self.d_tx.init(d),
                "step": jnp.zeros((), jnp.int32)}

    # ------------------------------------------------------------------------------------------ steps

    def _mle_step(self, state: dict, tokens: jax.Array, key: jax.Array) -> tuple[dict, dict]:
        (loss, aux), grads = jax.value_and_grad(
            lambda p: lm_loss(self.g_def, p, tokens, key), has_aux=True)(state["g_params"])
        updates, opt_state = self.mle_tx.update(grads, state["mle_opt_state"], state["g_params"])
        new = {**state, "g_params": optax.apply_updates(state["g_params"], updates), "mle_opt_state": opt_state}
        return new, {"loss": loss, "accuracy": aux["accuracy"], "grad_norm": optax.tree.norm(grads)}

    def _adversarial_step(self, state: dict, tokens: jax.Array, key: jax.Array) -> tuple[dict, dict]:
        adv = self.config.adversarial
        batch = tokens.shape[0]
        bias = jnp.asarray(self.bias)
        beta = inverse_temperature(state["step"], self.config.train_steps, adv.temperature_max,
                                   adv.temperature_schedule)
        noise_key, d_key, g_key, mle_key = jax.random.split(key, 4)
        gumbel = jax.random.gumbel(noise_key, (batch, self.length, self.vocab_size), jnp.float32)
        start = tokens[:, 0]
        fake_tokens = jax.lax.stop_gradient(
            rollout(nnx.merge(self.g_def, state["g_params"]), start, gumbel, bias))

        def relaxed(g_params: PyTree) -> jax.Array:
            inputs = jnp.concatenate([start[:, None], fake_tokens[:, :-1]], axis=1)
            logits = nnx.merge(self.g_def, g_params)(inputs)
            soft = jax.nn.softmax(beta * (logits + bias + gumbel), axis=-1)
            if not adv.get("straight_through", False):
                return soft
            hard = jax.nn.one_hot(fake_tokens, self.vocab_size, dtype=soft.dtype)
            return hard + soft - jax.lax.stop_gradient(soft)  # one-hot forward, relaxed gradient

        fake, g_pullback = jax.vjp(relaxed, state["g_params"])
        real = tokens[:, 1:]  # D looks one-hot rows up by id

        def discriminate(d_params: PyTree, x: jax.Array, k: jax.Array) -> jax.Array:
            return nnx.merge(self.d_def, d_params)(x, deterministic=False, rngs=nnx.Rngs(dropout=k))

        def d_loss_fn(d_params: PyTree) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
            k1, k2 = jax.random.split(d_key)
            r, f = discriminate(d_params, real, k1), discriminate(d_params, jax.lax.stop_gradient(fake), k2)
            return rsgan_losses(r, f)[0], (r, f)

        (d_loss, (r, f)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state["d_params"])
        d_updates, d_opt_state = self.d_tx.update(d_grads, state["d_opt_state"], state["d_params"])
        d_params = optax.apply_updates(state["d_params"], d_updates)

        k1, k2 = jax.random.split(g_key)
        r_new = jax.lax.stop_gradient(discriminate(d_params, real, k1))

        def g_loss_fn(x: jax.Array) -> jax.Array:  # G's loss as a function of its relaxed sequences
            return rsgan_losses(r_new, discriminate(d_params, x, k2))[1]

        g_loss, fake_grads = jax.value_and_grad(g_loss_fn)(fake)
        (g_grads,) = g_pullback(fake_grads)
        adv_grad_norm = optax.tree.norm(g_grads)  # the Gumbel-softmax gradient alone, before any MLE term
        mle_weight = float(adv.get("mle_weight", 0.0))
        mle_metrics = {}
        if mle_weight:
            (mle_loss, _), mle_grads = jax.value_and_grad(
                lambda p: lm_loss(self.g_def, p, tokens, mle_key), has_aux=True)(state["g_params"])
            g_grads = jax.tree.map(lambda a, b: a + mle_weight * b, g_grads, mle_grads)
            mle_metrics = {"mle_loss": mle_loss}
        g_updates, g_opt_state = self.g_tx.update(g_grads, state["g_opt_state"], state["g_params"])
        new = {**state, "g_params": optax.apply_updates(state["g_params"], g_updates), "d_params": d_params,
               "g_opt_state": g_opt_state, "d_opt_state": d_opt_state}
        return new, {"loss": g_loss, "g_loss": g_loss, "d_loss": d_loss, "d_real": r.mean(), "d_fake": f.mean(),
                     "d_accuracy": (r > f).mean(), "beta": beta, "g_grad_norm": optax.tree.norm(g_grads),
                     "g_adv_grad_norm": adv_grad_norm,
                     "d_grad_norm": optax.tree.norm(d_grads), **mle_metrics}

    def train_step(self, state: dict[str, PyTree], batch: dict[str, jax.Array], key: jax.Array
                   ) -> tuple[dict[str, PyTree], dict[str, jax.Array]]:
        step = self._mle_step if self.phase == "mle" else self._adversarial_step
        new, metrics = step(state, batch["tokens"], key)
        return {**new, "step": state["step"] + 1}, metrics

    def eval_step(self, state: dict[str, PyTree], batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
        return masked_nll(self.g_def, state["g_params"], batch["tokens"], jnp.asarray(self.bias), batch["mask"])

    # ------------------------------------------------------------------------------------ data, export

    def train_batch(self, step: int, process_index: int, process_count: int) -> dict[str, np.ndarray]:
        return self.train_data.batch(step, process_index, process_count)

    def eval_batches(self, process_index: int, process_count: int) -> Iterator[dict[str, np.ndarray]]:
        return self.val_data.eval_batches(self.eval_batch_count, process_index, process_count)

    def export_params(self, state: dict[str, PyTree]) -> PyTree:
        """The generator only (a GPT's params in its own layout)."""
        return state["g_params"]

    def load_params(self, state: dict[str, PyTree], params: PyTree) -> dict[str, PyTree]:
        """`state` with the generator replaced by exported `params` and its optimizer states reset."""
        return {**state, "g_params": params, "mle_opt_state": self.mle_tx.init(params),
                "g_opt_state": self.g_tx.init(params)}

    def save_assets(self, directory: pathlib.Path, params: dict) -> None:
        directory = pathlib.Path(directory)
        tokenizer_lib.save_tokenizer(self.tokenizer, directory / export.TOKENIZER)
        info = {"form": self.config.data, "length": self.length, "phase": self.phase, "model_dims": self.model_dims,
                "exported_module": "generator", "train_poems": len(self.train_data),
                "test_poems": len(self.val_data)}
        (directory / export.TEXTGAN).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")


def build_task(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> TextGANTask:
    return TextGANTask(config, workdir)
