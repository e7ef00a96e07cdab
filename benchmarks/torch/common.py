"""What every PyTorch twin shares: the zoo's optimizer and schedule, batch conversion, the Twin surface."""

from __future__ import annotations

import contextlib
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


def default_device() -> torch.device:
    """CUDA when present, else the CPU: where a twin runs unless its build() is told otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(config: Any, device: torch.device) -> contextlib.AbstractContextManager:
    """The twins' counterpart of the JAX config's `compute_dtype`: bfloat16 autocast (parameters stay
    float32; normalisation statistics and losses in float32, as in the Flax models) or a no-op for float32."""
    dtype = str(config.get("compute_dtype", "float32"))
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"unknown compute_dtype {dtype!r}")
    return torch.autocast(device.type, torch.bfloat16, enabled=dtype == "bfloat16")


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


def load_flax_params(module: torch.nn.Module, params: dict, stats: dict | None = None,
                     permute: dict[str, Any] | None = None) -> None:
    """Copies a Flax model's pure-dict params into the twin with the same module names (parity checks):
    Linear kernels [in, out] -> weight [out, in]; Conv HWIO -> OIHW (1-D: WIO -> OIW); ConvTranspose
    HWIO -> [in, out, kh, kw] with the spatial flip (lax correlates, torch's transposed conv convolves);
    Embed `embedding` -> weight; LayerNorm and BatchNorm scale/bias and, given `stats`, BatchNorm's running
    mean/var. `permute[name]` rearranges a kernel first (e.g. NHWC-flattened rows of a dense layer after a
    conv, which the twin flattens NCHW). `params` may also be one module's own dict, for `module` itself."""
    permute = permute or {}

    def lookup(tree: Any, name: str) -> Any:
        for part in filter(None, name.split(".")):  # "" is `module` itself
            tree = tree[int(part)] if part.isdigit() else tree[part]
        return tree

    with torch.no_grad():
        for name, m in module.named_modules():
            if isinstance(m, torch.nn.Linear | torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.ConvTranspose2d):
                d = lookup(params, name)
                k = np.asarray(permute.get(name, lambda x: x)(np.asarray(d["kernel"], np.float32)))
                if isinstance(m, torch.nn.Linear):
                    w = k.T
                elif isinstance(m, torch.nn.ConvTranspose2d):
                    w = k[::-1, ::-1].transpose(2, 3, 0, 1)
                else:  # Conv [*window, in, out] -> [out, in, *window]
                    w = k.transpose(k.ndim - 1, k.ndim - 2, *range(k.ndim - 2))
                if w.shape != tuple(m.weight.shape):
                    raise ValueError(f"{name}: Flax kernel gives {w.shape}, the twin has {tuple(m.weight.shape)}")
                m.weight.copy_(torch.from_numpy(np.array(w, np.float32, order="C")))  # a writable copy
                if m.bias is not None:
                    m.bias.copy_(torch.from_numpy(np.array(d["bias"], np.float32)))
            elif isinstance(m, torch.nn.Embedding):
                m.weight.copy_(torch.from_numpy(np.array(lookup(params, name)["embedding"], np.float32)))
            elif isinstance(m, torch.nn.BatchNorm2d | torch.nn.LayerNorm):
                d = lookup(params, name)
                m.weight.copy_(torch.from_numpy(np.array(d["scale"], np.float32)))
                m.bias.copy_(torch.from_numpy(np.array(d["bias"], np.float32)))
                if isinstance(m, torch.nn.BatchNorm2d) and m.track_running_stats and stats is not None:
                    s = lookup(stats, name)
                    m.running_mean.copy_(torch.from_numpy(np.array(s["mean"], np.float32)))
                    m.running_var.copy_(torch.from_numpy(np.array(s["var"], np.float32)))


def nhwc_rows_to_nchw(kernel: np.ndarray, c: int, h: int, w: int) -> np.ndarray:
    """A dense kernel whose first c*h*w rows read an NHWC-flattened feature map -> rows in NCHW order
    (the rows past c*h*w, e.g. a concatenated caption, are kept)."""
    k = np.asarray(kernel)
    flat = c * h * w
    head = k[:flat].reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(flat, -1)
    return np.concatenate([head, k[flat:]], 0)
