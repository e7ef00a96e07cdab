"""The `poem` family's PyTorch twin: the GPT twin (benchmarks.torch.gpt) trained as zoo.objectives.lm does.

Loss: the mean next-token cross-entropy (nats) of the task's windows `tokens` [B, T+1] with dropout on, as
zoo.objectives.lm.lm_loss with a key. Optimizer: zoo.train.optim.make_optimizer's (common.ZooOptimizer).
Sampling: nanoGPT's `generate` (no cache) from a one-token prompt, or `generate_cached`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_collections
import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.torch.common import ZooOptimizer, autocast, count_params, default_device, tensors
from benchmarks.torch.gpt import GPT, generate, generate_cached

# zoo.sample.lm primes with the end-of-text token; both zoo tokenizers (char and BPE) give it id 0.
PROMPT_TOKEN = 0


def build_gpt(config: ml_collections.ConfigDict, vocab_size: int) -> GPT:
    """The GPT twin of `config.model` (zoo.models.build's arguments, less dtype)."""
    m = config.model
    return GPT(vocab_size=vocab_size, context_length=m.context_length, num_layers=m.num_layers,
               num_heads=m.num_heads, embed_dim=m.embed_dim, dropout=m.get("dropout", 0.0))


def lm_loss(model: Callable[[torch.Tensor], torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """zoo.objectives.lm.lm_loss: mean cross-entropy of tokens[:, 1:] given tokens[:, :-1] (int64 [B, T+1]);
    dropout follows the model's train()/eval() mode. `model` is a GPT or its `torch.compile`d wrapper."""
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), tokens[:, 1:].reshape(-1))


class LMTwin:
    """GPT + AdamW with the zoo's schedule and clipping; see the module docstring."""

    def __init__(self, config: ml_collections.ConfigDict, vocab_size: int, device: torch.device):
        self.config, self.device = config, device
        self.model = build_gpt(config, vocab_size).to(device)
        self.optimizer = ZooOptimizer(self.model.parameters(), config)
        self.new_tokens = 256  # sample()'s default length, past the context: generate crops, as nanoGPT's
        self._loss = self._forward_loss

    def _forward_loss(self, tokens: torch.Tensor) -> torch.Tensor:
        with autocast(self.config, self.device):
            return lm_loss(self.model, tokens)

    def step(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        tokens = tensors(batch)["tokens"].to(self.device, non_blocking=True)
        self.model.train()
        loss = self._loss(tokens)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def num_params(self) -> int:
        return count_params(self.model)  # the tied embedding once, as the JAX count

    def compile(self) -> None:
        """Forward and loss in one `torch.compile` graph (nanoGPT compiles the model; the loss fuses in)."""
        self._loss = torch.compile(self._forward_loss)

    def sample(self, count: int, seed: int, new_tokens: int | None = None, cached: bool = False) -> torch.Tensor:
        """int64 [count, new_tokens] drawn at temperature 1 after a one-token prompt (PROMPT_TOKEN):
        nanoGPT's `generate` (every token re-runs the whole cropped context), or with cached=True the
        KV-cached `generate_cached`."""
        generator = torch.Generator(self.device).manual_seed(seed)
        prompt = torch.full((count, 1), PROMPT_TOKEN, dtype=torch.long, device=self.device)
        sampler = generate_cached if cached else generate
        out = sampler(self.model, prompt, self.new_tokens if new_tokens is None else new_tokens,
                      temperature=1.0, generator=generator)
        return out[:, 1:]


def build(config: ml_collections.ConfigDict, dims: dict[str, Any], seed: int,
          device: str | torch.device | None = None) -> LMTwin:
    """The poem twin from configs/poem.py and dims {"vocab_size": V}; CUDA when present."""
    torch.manual_seed(seed)
    return LMTwin(config, int(dims["vocab_size"]), torch.device(device) if device else default_device())
