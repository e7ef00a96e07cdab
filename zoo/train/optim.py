"""Optimizers from config keys every family shares: schedule, warm-up, clipping, weight decay."""

from __future__ import annotations

import jax
import ml_collections
import optax

from zoo.errors import UsageError


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
    """`constant`, `cosine` or `linear` decay after a linear warm-up of `warmup_steps`."""
    peak = config.learning_rate
    warmup = min(config.get("warmup_steps", 0), config.train_steps)
    decay_steps = max(config.train_steps - warmup, 1)
    end = peak * config.get("min_learning_rate_ratio", 0.1)
    kind = config.get("lr_schedule", "cosine")
    if kind == "constant":
        decay = optax.constant_schedule(peak)
    elif kind == "cosine":
        decay = optax.cosine_decay_schedule(peak, decay_steps, alpha=end / peak if peak else 0.0)
    elif kind == "linear":
        decay = optax.linear_schedule(peak, end, decay_steps)
    else:
        raise UsageError(f"unknown lr_schedule {kind!r}: use constant, cosine or linear")
    if warmup == 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), decay], [warmup])


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """AdamW (decoupled weight decay on matrices only) behind global-norm gradient clipping."""
    schedule = learning_rate_schedule(config)
    clip = config.get("grad_clip_norm", 1.0)
    return optax.chain(
        optax.clip_by_global_norm(clip) if clip else optax.identity(),
        optax.adamw(schedule, b1=config.get("adam_b1", 0.9), b2=config.get("adam_b2", 0.99),
                    weight_decay=config.get("weight_decay", 0.0),
                    mask=lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)),
    )
