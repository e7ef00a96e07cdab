"""What every PyTorch twin shares: the zoo's optimizer and schedule, batch conversion, the Twin surface."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np
import torch


class Twin(Protocol):
    """One family's PyTorch side, built from the JAX config (`build(config, dims, seed)` in each module)."""

    def step(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        """One training step (every optimizer the JAX task steps) on the JAX task's batch; returns the
        detached scalar the JAX step logs as `loss`."""

    def num_params(self) -> int:
        """Trainable parameters, to check against the JAX model's count."""

    def compile(self) -> None:
        """Wrap the step's model calls in `torch.compile` (the harness's `torch_compile` column)."""

    def sample(self, count: int, seed: int) -> Any:
        """The family's sampling, `count` outputs (tokens, images or melodies), as the harness times it."""


def learning_rate(config: Any, step: int, peak: float | None = None) -> float:
    """zoo.train.optim.learning_rate_schedule at `step`: linear warm-up from 0, then constant, cosine or
    linear decay to `min_learning_rate_ratio` x peak over the remaining steps (optax's definitions)."""
    peak = config.learning_rate if peak is None else peak
    warmup = min(config.get("warmup_steps", 0), config.train_steps)
    if step < warmup:
        return peak * step / warmup
    decay_steps = max(config.train_steps - warmup, 1)
    t = min(step - warmup, decay_steps) / decay_steps
    end = peak * config.get("min_learning_rate_ratio", 0.1)
    kind = config.get("lr_schedule", "cosine")
    if kind == "constant":
        return peak
    if kind == "cosine":
        return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * t))
    return peak + (end - peak) * t


class ZooOptimizer:
    """zoo.train.optim.make_optimizer in PyTorch: global-norm clipping (`grad_clip_norm`, 0 = off), then
    AdamW with decoupled weight decay on parameters of 2+ dimensions only, and the zoo's schedule.
    `step()` sets the learning rate for the step count so far, clips, steps and zeroes the gradients."""

    def __init__(self, params: Iterable[torch.nn.Parameter], config: Any, *, peak: float | None = None,
                 b1: float | None = None, b2: float | None = None, clip: float | None = None,
                 weight_decay: float | None = None, schedule: bool = True):
        params = [p for p in params if p.requires_grad]
        self.params, self.config, self.peak, self.schedule = params, config, peak, schedule
        self.clip = config.get("grad_clip_norm", 1.0) if clip is None else clip
        decay = config.get("weight_decay", 0.0) if weight_decay is None else weight_decay
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        self.optimizer = torch.optim.AdamW(
            [g for g in groups if g["params"]], lr=peak if peak is not None else config.learning_rate,
            betas=(config.get("adam_b1", 0.9) if b1 is None else b1, config.get("adam_b2", 0.99) if b2 is None else b2),
            eps=1e-8, foreach=True)
        self.count = 0

    def step(self) -> None:
        if self.schedule:
            lr = learning_rate(self.config, self.count, self.peak)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip, foreach=True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.count += 1


def tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """A JAX task's numpy batch as torch tensors (int32 ids become int64, as torch indexing wants)."""
    out = {}
    for key, value in batch.items():
        t = torch.from_numpy(np.ascontiguousarray(value))
        out[key] = t.long() if t.dtype == torch.int32 else t
    return out


TRUNCATED_STD = 0.87962566103423978  # sd of a unit normal truncated to [-2, 2] (Flax's variance_scaling)


def lecun_normal_(weight: torch.Tensor, fan_in: int) -> None:
    """Flax's lecun_normal (the default kernel init of nnx.Linear and nnx.Conv): a normal truncated to
    +-2 sd, rescaled so the variance is exactly 1 / fan_in. Torch's layouts differ, so callers give fan_in."""
    std = (1.0 / fan_in) ** 0.5 / TRUNCATED_STD
    torch.nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)


def count_params(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)
