"""The `music` family's PyTorch twin: zoo.models.music.MelodyRNN trained as zoo.objectives.music does.

Model. zoo's cell is the textbook LSTM with gates in torch's order (i, f, g, o) and the same update, so
the recurrence is `torch.nn.LSTM` (fused cuDNN kernel on GPU, as a PyTorch user would write it), with two
adjustments that make it compute exactly the JAX function with exactly its parameters:

* The caption's gate term `cond W_c`, added to layer 0's gate pre-activations at every step, is the same as
  appending `cond` to every input of layer 0, so layer 0 reads `[embedding, cond]` and its `weight_ih_l0`
  is `[w_x | cond_gates]` stacked (E + cond_dim input columns). Cost: the caption's part of the (non-
  recurrent) input matmul is recomputed for every step, where the JAX model computes it once per tune.
* zoo has one gate bias per layer (in `w_x`, the forget gate's quarter at 1); torch has `bias_ih` and
  `bias_hh`. `bias_ih` is zoo's bias, `bias_hh` is zeroed and frozen, so it neither trains nor counts.

Around it, as in JAX: the initial (h, c) of every layer is `tanh(Linear(cond))`, dropout on the embeddings
and after every layer (torch's `dropout=` covers the ones between layers), a linear head. Initialisation
follows the Flax code: embeddings N(0, 0.1); `w_x` Glorot-uniform over (in, 4H); `w_h` orthogonal;
`cond_gates`, `cond_init` and `head` lecun-normal (truncated); biases zero but the forget gate's.

Loss: masked mean next-event cross-entropy over `tokens[:, 1:]` weighted by `mask[:, 1:]` (dropout on), as
zoo.objectives.music.masked_loss with a key. Optimizer: zoo.train.optim.make_optimizer's (ZooOptimizer).
Sampling: zoo.sample.music's kernel (BOS primer, grammar-masked draws, 16 bars, its output length),
at temperature 1, with one random unit caption vector per call, as benchmarks.music_speed times it.
"""

from __future__ import annotations

import math
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
from zoo.melody.encoding import BOS, EOS
from zoo.melody.grammar import Grammar, state_after
from zoo.sample import music as music_sample


def _lecun_normal_(weight: torch.Tensor) -> None:
    """flax's lecun_normal on a torch [out, in] weight (fan_in = in)."""
    lecun_normal_(weight, weight.shape[1])


class MelodyLSTM(nn.Module):
    """Caption-conditioned multi-layer LSTM over melody events (see the module docstring)."""

    def __init__(self, *, vocab_size: int, embed_dim: int, hidden_dim: int, num_layers: int,
                 cond_dim: int = 384, dropout: float = 0.0):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.embed_dim, self.hidden_dim, self.num_layers = embed_dim, hidden_dim, num_layers
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.cond_init = nn.Linear(cond_dim, 2 * num_layers * hidden_dim)
        # torch applies `dropout` between layers only (and warns about it for one layer); `drop` does the rest.
        self.lstm = nn.LSTM(embed_dim + cond_dim, hidden_dim, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_dim, vocab_size)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        h, e = self.hidden_dim, self.embed_dim
        nn.init.normal_(self.embed.weight, std=0.1)
        for linear in (self.cond_init, self.head):
            _lecun_normal_(linear.weight)
            nn.init.zeros_(linear.bias)
        for layer in range(self.num_layers):
            w_ih, w_hh = self.lstm_weights(layer)
            b_ih, b_hh = getattr(self.lstm, f"bias_ih_l{layer}"), getattr(self.lstm, f"bias_hh_l{layer}")
            w_x = w_ih[:, :e] if layer == 0 else w_ih
            # Glorot over flax's (in, 4H) kernel: the limit is symmetric in fan_in/fan_out, so torch's
            # xavier on the transposed [4H, in] view draws the same distribution.
            nn.init.xavier_uniform_(w_x)
            if layer == 0:
                _lecun_normal_(w_ih[:, e:])  # zoo's cond_gates Linear (no bias)
            # flax's orthogonal (H, 4H) kernel has orthonormal rows; torch's [4H, H] transpose, orthonormal
            # columns: orthogonal_ on it draws the same (Haar) distribution.
            nn.init.orthogonal_(w_hh)
            b_ih.zero_()
            b_ih[h:2 * h] = 1.0  # forget gate
            b_hh.zero_()
            b_hh.requires_grad_(False)  # zoo's cell has one bias: this one stays zero and is not counted

    def lstm_weights(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight_ih [4H, in], weight_hh [4H, H]) of one layer."""
        return getattr(self.lstm, f"weight_ih_l{layer}"), getattr(self.lstm, f"weight_hh_l{layer}")

    def init_state(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h0, c0), each [num_layers, B, H], from the caption embedding cond [B, cond_dim]."""
        z = torch.tanh(self.cond_init(cond)).view(cond.shape[0], self.num_layers, 2, self.hidden_dim)
        return z[:, :, 0].transpose(0, 1).contiguous(), z[:, :, 1].transpose(0, 1).contiguous()

    def forward(self, tokens: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """tokens int64 [B, T], cond [B, cond_dim] -> float32 logits [B, T, vocab_size]."""
        h0, c0 = self.init_state(cond)
        x = self.drop(self.embed(tokens))
        x = torch.cat([x, cond[:, None, :].to(x.dtype).expand(-1, tokens.shape[1], -1)], dim=-1)
        x, _ = self.lstm(x, (h0.to(x.dtype), c0.to(x.dtype)))
        return self.head(self.drop(x)).float()

    def sampling_state(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(h, c, cond_gates [B, 4H]): MelodyRNN.init_state's state, the caption's gate term computed once."""
        h, c = self.init_state(cond)
        return h, c, F.linear(cond, self.lstm_weights(0)[0][:, self.embed_dim:])

    def step(self, token: torch.Tensor, h: torch.Tensor, c: torch.Tensor, cond_gates: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One token int64 [B] -> (float32 logits [B, V], h, c), no dropout: MelodyRNN.step, with the same
        fused [in, 4H] and [H, 4H] matmuls and the cell in float32 (bias_hh is zero, so it is left out)."""
        x = self.embed(token)
        hs, cs = [], []
        for layer in range(self.num_layers):
            w_ih, w_hh = self.lstm_weights(layer)
            b_ih = getattr(self.lstm, f"bias_ih_l{layer}")
            if layer == 0:
                gates = F.linear(x, w_ih[:, :self.embed_dim], b_ih) + cond_gates
            else:
                gates = F.linear(x, w_ih, b_ih)
            gates = (gates + F.linear(h[layer], w_hh)).float()
            i, f, g, o = gates.chunk(4, dim=-1)
            c_new = torch.sigmoid(f) * c[layer].float() + torch.sigmoid(i) * torch.tanh(g)
            x = (torch.sigmoid(o) * torch.tanh(c_new)).to(h.dtype)
            hs.append(x)
            cs.append(c_new.to(c.dtype))
        return self.head(x).float(), torch.stack(hs), torch.stack(cs)


def masked_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """zoo.objectives.music.masked_loss: mean cross-entropy per real event (mask[:, 1:]; BOS is never a
    target); dropout follows the model's train()/eval() mode."""
    tokens = batch["tokens"]
    logits = model(tokens[:, :-1], batch["cond"])
    mask = batch["mask"][:, 1:].float()
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none")
    return (nll * mask.reshape(-1)).sum() / mask.sum().clamp(min=1.0)


def load_jax_params(model: MelodyLSTM, params: dict) -> None:
    """Copies MelodyRNN's pure-dict params into the twin (parity checks). Both cells order the fused gates
    (i, f, g, o), so the 4H axis maps as is: weight_ih_l0 = [w_x | cond_gates] (kernels transposed),
    weight_ih_l{k>0} = w_x, weight_hh = w_h, bias_ih = w_x's bias, bias_hh stays zero; embed, cond_init
    and head map one to one."""
    def t(array: Any) -> torch.Tensor:
        return torch.from_numpy(np.array(array, np.float32))

    for name in ("embed", "cond_init", "head"):  # the one-to-one modules
        load_flax_params(getattr(model, name), params[name])
    with torch.no_grad():
        for layer in range(model.num_layers):
            p = params["layers"][layer]
            w_ih, w_hh = model.lstm_weights(layer)
            w_x = t(p["w_x"]["kernel"]).T
            if layer == 0:
                w_x = torch.cat([w_x, t(params["cond_gates"]["kernel"]).T], dim=1)
            w_ih.copy_(w_x)
            w_hh.copy_(t(p["w_h"]["kernel"]).T)
            getattr(model.lstm, f"bias_ih_l{layer}").copy_(t(p["w_x"]["bias"]))
            getattr(model.lstm, f"bias_hh_l{layer}").zero_()


class MusicTwin:
    """MelodyLSTM + AdamW with the zoo's schedule and clipping; see the module docstring."""

    # How often the sampler asks the device whether every melody has ended (zoo's while_loop checks on
    # device each step; a host sync per event would dominate a GPU step). Steps past the end only add EOS.
    DONE_CHECK_EVERY = 16

    def __init__(self, config: ml_collections.ConfigDict, dims: dict[str, Any], device: torch.device):
        self.config, self.device = config, device
        m = config.model
        self.model = MelodyLSTM(vocab_size=int(dims["vocab_size"]), cond_dim=int(dims.get("cond_dim", 384)),
                                embed_dim=m.embed_dim, hidden_dim=m.hidden_dim, num_layers=m.num_layers,
                                dropout=m.get("dropout", 0.0)).to(device)
        self.optimizer = ZooOptimizer(self.model.parameters(), config)
        self.grammar = Grammar(torch, asarray=lambda table: torch.as_tensor(table, device=device))  # as zoo samples
        self._loss = self._forward_loss
        self._probs, self._feed = self._sample_probs, self._sample_feed

    def _forward_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with autocast(self.config, self.device):
            return masked_loss(self.model, batch)

    def _sample_probs(self, logits: torch.Tensor, grammar: dict[str, torch.Tensor], done: torch.Tensor,
                      target: int) -> torch.Tensor:
        """Next-event probabilities at temperature 1 under zoo.sample.music's grammar mask. An ended
        melody's grammar allows nothing: it may draw anything (and gets EOS) rather than NaNs."""
        allowed = self.grammar.allowed(grammar, target) | done[:, None]
        return torch.softmax(logits.float().masked_fill(~allowed, -math.inf), dim=-1)

    def _sample_feed(self, token: torch.Tensor, grammar: dict[str, torch.Tensor], done: torch.Tensor,
                     h: torch.Tensor, c: torch.Tensor, cond_gates: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The drawn event (EOS once a melody ended) -> (event, grammar, done, next logits, h, c)."""
        token = torch.where(done, EOS, token)
        logits, h, c = self.model.step(token, h, c, cond_gates)
        return token, self.grammar.advance(grammar, token), done | (token == EOS), logits, h, c

    def step(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        t = tensors({k: batch[k] for k in ("tokens", "mask", "cond")})
        t = {k: v.to(self.device, non_blocking=True) for k, v in t.items()}
        self.model.train()
        loss = self._loss(t)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def num_params(self) -> int:
        return count_params(self.model)  # without the frozen zero bias_hh, as the JAX count

    def compile(self) -> None:
        """`torch.compile` the loss (embedding, caption projections, head, cross-entropy; dynamo leaves
        nn.LSTM's fused kernel to eager) and the sampler's two per-event pieces (grammar mask and softmax; grammar
        update, the hand-written cell and head), which leave only the draw itself eager."""
        self._loss = torch.compile(self._forward_loss)
        self._probs, self._feed = torch.compile(self._sample_probs), torch.compile(self._sample_feed)

    @torch.no_grad()
    def sample(self, count: int, seed: int, cond: np.ndarray | None = None) -> torch.Tensor:
        """int64 [count, length]: zoo.sample.music's draws after a BOS primer at temperature 1, 16 bars
        (its default), EOS after each melody's end; `length` is zoo's buffer for 16 bars (2048). `cond`
        [cond_dim] is the caption vector (default: a random unit vector drawn from `seed`)."""
        self.model.eval()
        generator = torch.Generator(self.device).manual_seed(seed)
        bars = music_sample.DEFAULTS["bars"]
        length = music_sample._bucket(bars * music_sample.TOKENS_PER_BAR + 16)
        if cond is None:
            cond_t = torch.randn(self.model.cond_init.in_features, generator=generator, device=self.device)
        else:
            cond_t = torch.as_tensor(cond, dtype=torch.float32, device=self.device)
        cond_t = (cond_t / cond_t.norm().clamp(min=1e-6)).expand(count, -1)
        primer = np.asarray([BOS], np.int64)
        grammar = {k: torch.full((count,), v, dtype=torch.long, device=self.device)
                   for k, v in state_after(primer).items()}
        target = int(state_after(primer)["bars"]) + bars
        out = torch.full((count, length), EOS, dtype=torch.long, device=self.device)
        done = torch.zeros(count, dtype=torch.bool, device=self.device)
        with autocast(self.config, self.device):
            h, c, cond_gates = self.model.sampling_state(cond_t)
            token = torch.full((count,), BOS, dtype=torch.long, device=self.device)
            logits, h, c = self.model.step(token, h, c, cond_gates)
            for i in range(length):
                probs = self._probs(logits, grammar, done, target)
                token = torch.multinomial(probs, 1, generator=generator)[:, 0]
                token, grammar, done, logits, h, c = self._feed(token, grammar, done, h, c, cond_gates)
                out[:, i] = token
                if (i + 1) % self.DONE_CHECK_EVERY == 0 and bool(done.all()):
                    break
        return out


def build(config: ml_collections.ConfigDict, dims: dict[str, Any], seed: int,
          device: str | torch.device | None = None) -> MusicTwin:
    """The music twin from configs/music.py and dims {"vocab_size": V, "cond_dim": 384} (what
    zoo.objectives.music passes to zoo.models.build; cond_dim defaults to 384); CUDA when present."""
    torch.manual_seed(seed)
    device = torch.device(device) if device else default_device()
    return MusicTwin(config, dims, device)
