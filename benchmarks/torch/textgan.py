"""The `textgan` family's PyTorch twin: zoo.models.textgan.TextGAN trained as zoo.objectives.textgan does.

Generator: the GPT twin (benchmarks.torch.gpt). Discriminator: RelGAN's multi-representation CNN, below.
`config.phase` picks the step, as on the JAX side:
- "mle": zoo.objectives.lm.lm_loss on the generator (dropout on) with the zoo's AdamW (common.ZooOptimizer).
- "adversarial": one RelGAN step per batch. Gumbel noise g [B, T, V]; a KV-cached rollout draws
  y_t = argmax(o_t + bias + g_t) from the batch's start tokens (no grad, no dropout); one teacher-forced
  pass recomputes the logits o of (start, y_1..y_{T-1}) WITH the gradient (generator in eval mode: the JAX
  step calls it deterministically); the relaxation softmax(beta * (o + bias + g)) is what D sees. D steps
  on the RSGAN loss softplus(D(fake) - D(real)), then G steps on softplus(D'(real) - D'(fake)) through the
  updated D' (its logits on the real rows without gradient), each with Adam behind global-norm clipping.
  D's dropout is on in all four of its calls. beta follows `inverse_temperature` over config.train_steps.
  `adversarial.straight_through` and `adversarial.mle_weight` are mirrored too.

The task's logit bias (-1e9 on `<unk>`, and on the end token for quatrains) is data-dependent: pass it in
`dims` (`task_dims(task)` gives everything); without it `logit_bias` rebuilds it from the zoo tokenizers'
fixed ids (end of text 0, char `<unk>` 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.torch.common import (
    ZooOptimizer,
    autocast,
    count_params,
    default_device,
    lecun_normal_,
    load_flax_params,
    tensors,
)
from benchmarks.torch.gpt import GPT, generate, generate_cached
from benchmarks.torch.gpt import load_jax_params as load_gpt_params
from benchmarks.torch.lm import build_gpt, lm_loss

MASKED = -1e9
SCHEDULES = ("constant", "linear", "exponential", "log", "quadratic", "sqrt")
# zoo.text.tokenizer: the end-of-text token is id 0 in both kinds; a char vocabulary's <unk> is id 1.
EOS_ID, CHAR_UNK_ID = 0, 1


def inverse_temperature(step: int, total: int, maximum: float, schedule: str) -> float:
    """zoo.objectives.textgan.inverse_temperature: RelGAN's beta, 1 at step 0 and `maximum` at `total`."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown temperature schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    frac = min(max(step / max(total, 1), 0.0), 1.0)
    if schedule == "constant":
        return float(maximum)
    if schedule == "exponential":
        return float(maximum) ** frac
    shape = {"linear": frac, "quadratic": frac ** 2, "sqrt": math.sqrt(frac),
             "log": math.log1p(frac * total) / math.log1p(max(total, 1))}[schedule]
    return 1.0 + (maximum - 1.0) * shape


def logit_bias(vocab_size: int, form: str, unk_id: int | None, eos_id: int) -> np.ndarray:
    """zoo.objectives.textgan.logit_bias from token ids: MASKED on `<unk>` and, for quatrains, the end token."""
    bias = np.zeros(vocab_size, np.float32)
    if unk_id is not None:
        bias[unk_id] = MASKED
    if form == "quatrains":
        bias[eos_id] = MASKED
    return bias


def task_dims(task: Any) -> dict[str, Any]:
    """`dims` for `build` from the JAX TextGANTask: its model_dims plus the facts the data decides."""
    return {**task.model_dims, "logit_bias": np.asarray(task.bias), "length": task.length,
            "start_token": task.tokenizer.eos_token_id}


def _lecun_normal_(weight: torch.Tensor) -> None:
    """Flax's default kernel init (nnx.Linear, nnx.Conv): truncated normal, variance 1 / fan_in, where
    fan_in = in_features (x kernel width for a conv): PyTorch's layouts put it in weight[0]."""
    lecun_normal_(weight, weight[0].numel())


class RelGANDiscriminator(nn.Module):
    """zoo.models.textgan.RelGANDiscriminator: num_rep embeddings of the (relaxed) one-hot rows, CNNs of
    several widths with max-over-time pooling, a highway layer, dropout, Linear(hidden), Linear(1): one
    real/fake logit per representation. Parameters in the JAX layout where it is not PyTorch's own
    (the embedding kernel is [V, num_rep * embed_dim], so ids index its rows)."""

    def __init__(self, *, vocab_size: int, max_length: int = 0, num_rep: int = 16, embed_dim: int = 32,
                 filter_sizes: Sequence[int] = (2, 3, 4, 5), num_filters: Sequence[int] = (64, 64, 64, 64),
                 hidden_dim: int = 100, dropout: float = 0.25):
        super().__init__()
        filter_sizes, num_filters = tuple(int(f) for f in filter_sizes), tuple(int(n) for n in num_filters)
        if len(filter_sizes) != len(num_filters) or not filter_sizes:
            raise ValueError("filter_sizes and num_filters must be non-empty lists of the same length")
        self.num_rep, self.embed_dim, self.filter_sizes = num_rep, embed_dim, filter_sizes
        self.embed = nn.Parameter(torch.empty(vocab_size, num_rep * embed_dim))
        self.positions = nn.Parameter(torch.empty(max_length, embed_dim)) if max_length else None
        self.convs = nn.ModuleList([nn.Conv1d(embed_dim, n, f) for f, n in zip(filter_sizes, num_filters,
                                                                                 strict=True)])
        features = sum(num_filters)
        self.highway = nn.Linear(features, features)
        self.drop = nn.Dropout(dropout)
        self.hidden = nn.Linear(features, hidden_dim)
        self.out = nn.Linear(hidden_dim, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Embeddings N(0, 1/embed_dim) as the JAX model sets them; the rest Flax's defaults."""
        for p in (self.embed, self.positions):
            if p is not None:
                nn.init.normal_(p, 0.0, 1.0 / math.sqrt(self.embed_dim))
        for m in (*self.convs, self.highway, self.hidden, self.out):
            _lecun_normal_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x float [B, T, V] (rows sum to 1) or int64 ids [B, T] (their one-hot rows, by lookup) ->
        float32 logits [B, num_rep]."""
        b, t = x.shape[:2]
        if t < max(self.filter_sizes):
            raise ValueError(f"sequences of {t} tokens are shorter than the widest filter {max(self.filter_sizes)}")
        emb = x @ self.embed if x.is_floating_point() else self.embed[x]
        emb = emb.view(b, t, self.num_rep, self.embed_dim)
        if self.positions is not None:
            emb = emb + self.positions[:t, None, :]
        emb = emb.permute(0, 2, 3, 1).reshape(b * self.num_rep, self.embed_dim, t)  # Conv1d's [N, C, T]
        pooled = torch.cat([F.relu(conv(emb)).amax(dim=2) for conv in self.convs], dim=-1)
        h = self.highway(pooled)
        gate = torch.sigmoid(h)
        h = self.drop(gate * F.relu(h) + (1.0 - gate) * pooled)
        return self.out(self.hidden(h)).float().view(b, self.num_rep)


@torch.no_grad()
def rollout(generator: GPT, start: torch.Tensor, gumbel: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """zoo.objectives.textgan.rollout: int64 [B, T], y_t = argmax(logits_t + bias + gumbel[:, t]) fed back
    through the KV cache from `start` [B] (the Gumbel-max trick: exact samples of softmax(logits + bias))."""
    batch, length, _ = gumbel.shape
    cache = generator.init_cache(batch, length)
    token, out = start[:, None], []
    for t in range(length):
        logits = generator.decode(token, cache, t)[:, 0]
        token = (logits + bias + gumbel[:, t]).argmax(-1, keepdim=True)
        out.append(token)
    return torch.cat(out, dim=1)


class TextGANTwin:
    """Generator, discriminator and the optimizers of `config.phase`; see the module docstring."""

    def __init__(self, config: ml_collections.ConfigDict, vocab_size: int, bias: np.ndarray, length: int,
                 start_token: int, device: torch.device):
        self.config, self.device, self.length, self.start_token = config, device, length, start_token
        self.phase = config.phase
        if self.phase not in ("mle", "adversarial"):
            raise ValueError(f"unknown textgan phase {self.phase!r}")
        self.generator = build_gpt(config, vocab_size).to(device)
        d_config = {"max_length": config.model.context_length, **dict(config.model.get("discriminator") or {})}
        self.discriminator = RelGANDiscriminator(vocab_size=vocab_size, **d_config).to(device)
        self.bias = torch.as_tensor(bias, dtype=torch.float32, device=device)
        adv = config.adversarial
        inverse_temperature(0, 1, adv.temperature_max, adv.temperature_schedule)  # validates the name early
        if self.phase == "mle":
            self.mle_opt = ZooOptimizer(self.generator.parameters(), config)
        else:  # optax.chain(clip_by_global_norm(clip), adam(lr, b1, b2)): no decay, no schedule
            def adam(module: nn.Module, lr: float) -> ZooOptimizer:
                return ZooOptimizer(module.parameters(), config, peak=lr, b1=adv.adam_b1, b2=adv.adam_b2,
                                    clip=adv.get("grad_clip_norm", 5.0), weight_decay=0.0, schedule=False)

            self.g_opt = adam(self.generator, adv.g_learning_rate)
            self.d_opt = adam(self.discriminator, adv.d_learning_rate)
        self.count = 0  # the JAX state's "step": beta's clock
        self.metrics: dict[str, Any] = {}  # the adversarial step's other JAX metrics, detached, for checks
        self._g, self._d = self.generator, self.discriminator

    def step(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        tokens = tensors(batch)["tokens"].to(self.device, non_blocking=True)
        loss = self._mle_step(tokens) if self.phase == "mle" else self._adversarial_step(tokens)
        self.count += 1
        return loss

    def _mle_step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.generator.train()
        with autocast(self.config, self.device):
            loss = lm_loss(self._g, tokens)
        loss.backward()
        self.mle_opt.step()
        return loss.detach()

    def _adversarial_step(self, tokens: torch.Tensor) -> torch.Tensor:
        adv, bias = self.config.adversarial, self.bias
        beta = inverse_temperature(self.count, self.config.train_steps, adv.temperature_max,
                                   adv.temperature_schedule)
        batch, length, vocab = tokens.shape[0], tokens.shape[1] - 1, bias.shape[0]
        # jax.random.gumbel: -log(-log(u)), u uniform in [tiny, 1)
        u = torch.rand(batch, length, vocab, device=self.device).clamp_(min=torch.finfo(torch.float32).tiny)
        gumbel = -torch.log(-torch.log(u))
        start = tokens[:, 0]
        self.generator.eval()  # rollout and the relaxed pass: the JAX step runs G deterministically
        self.discriminator.train()  # ... and D with dropout, in every call
        with autocast(self.config, self.device):
            fake_tokens = rollout(self.generator, start, gumbel, bias)
            logits = self._g(torch.cat([start[:, None], fake_tokens[:, :-1]], dim=1))
            fake = F.softmax(beta * (logits + bias + gumbel), dim=-1)
            if adv.get("straight_through", False):  # one-hot forward, relaxed gradient
                fake = F.one_hot(fake_tokens, vocab).to(fake.dtype) + fake - fake.detach()
            real = tokens[:, 1:]  # D looks one-hot rows up by id

            r, f = self._d(real), self._d(fake.detach())
            d_loss = F.softplus(f - r).mean()
        d_loss.backward()
        self.d_opt.step()

        with autocast(self.config, self.device):
            with torch.no_grad():
                r_new = self._d(real)
            g_loss = F.softplus(r_new - self._d(fake)).mean()
            total = g_loss
            mle_weight = float(adv.get("mle_weight", 0.0))
            if mle_weight:
                self.generator.train()
                total = total + mle_weight * lm_loss(self._g, tokens)
        total.backward(inputs=list(self.generator.parameters()))  # G's gradient only: D stays as stepped
        self.g_opt.step()
        self.metrics = {"g_loss": g_loss.detach(), "d_loss": d_loss.detach(), "d_real": r.detach().mean(),
                        "d_fake": f.detach().mean(), "d_accuracy": (r > f).float().mean(), "beta": beta}
        return g_loss.detach()

    def num_params(self) -> int:
        return count_params(self.generator, self.discriminator)  # the whole TextGAN, as the JAX model

    def compile(self) -> None:
        """`torch.compile` the generator's full-sequence pass and the discriminator; the rollout's one-token
        decode steps stay eager (a growing cache slice would recompile at every position)."""
        self._g, self._d = torch.compile(self.generator), torch.compile(self.discriminator)

    def sample(self, count: int, seed: int, cached: bool = True) -> torch.Tensor:
        """int64 [count, length]: poems drawn from the generator after the start token, at the config's
        sampling temperature with the logit bias, as zoo.sample.textgan (KV-cached; cached=False for
        nanoGPT's uncached `generate`). Rows of free-length forms are filled with the end token after it."""
        generator = torch.Generator(self.device).manual_seed(seed)
        prompt = torch.full((count, 1), self.start_token, dtype=torch.long, device=self.device)
        sampler = generate_cached if cached else generate
        rows = sampler(self.generator, prompt, self.length, temperature=self.config.sample.get("temperature", 1.0),
                       generator=generator, logit_bias=self.bias)[:, 1:]
        if self.config.data != "quatrains":
            rows = rows.masked_fill((rows == self.start_token).cumsum(dim=1) > 0, self.start_token)
        return rows


def load_jax_params(twin: TextGANTwin, g_params: dict, d_params: dict) -> None:
    """Copies the JAX TextGAN's pure-dict params into the twin (parity checks): the generator as
    gpt.load_jax_params does; the discriminator's layers by name, and its embeddings (plain parameters,
    in the JAX layout) as they are."""
    load_gpt_params(twin.generator, g_params)
    d = twin.discriminator
    load_flax_params(d, d_params)  # convs, highway, hidden, out
    with torch.no_grad():
        d.embed.copy_(torch.from_numpy(np.array(d_params["embed"]["kernel"], np.float32)))
        if d.positions is not None:
            d.positions.copy_(torch.from_numpy(np.array(d_params["positions"], np.float32)))


def build(config: ml_collections.ConfigDict, dims: dict[str, Any], seed: int,
          device: str | torch.device | None = None) -> TextGANTwin:
    """The textgan twin from configs/textgan.py (either phase) and dims (`task_dims(task)`, or at least
    {"vocab_size": V}: then the bias, length and start token follow from the config); CUDA when present."""
    torch.manual_seed(seed)
    vocab_size = int(dims["vocab_size"])
    bias = dims.get("logit_bias")
    if bias is None:
        unk = CHAR_UNK_ID if config.get("tokenizer", "char") == "char" else None
        bias = logit_bias(vocab_size, config.data, unk, EOS_ID)
    length = dims.get("length")
    if length is None:
        from zoo.data.poem_forms import QUATRAIN_LENGTH

        length = QUATRAIN_LENGTH if config.data == "quatrains" else config.get("max_chars", 48)
    return TextGANTwin(config, vocab_size, bias, int(length), int(dims.get("start_token", EOS_ID)),
                       torch.device(device) if device else default_device())
