"""The model families' NNX modules, one file per family (lm, textgan, music, dcgan, vae).

`build` is how training and sampling both construct one, so both always build the same architecture.
"""

from __future__ import annotations

import inspect
from typing import Any

from zoo.errors import UsageError


def build(model_class: type, config: Any, rngs: Any, **dims: Any) -> Any:
    """`model_class` called with `config.model`, the config's compute dtype and `dims` known only from the
    data (e.g. vocab_size). Impossible shapes are a UsageError."""
    import jax.numpy as jnp

    try:
        dtype = jnp.dtype(config.get("compute_dtype", "float32"))
    except TypeError:
        raise UsageError(f"unknown compute_dtype {config.compute_dtype!r}: use float32 or bfloat16") from None
    accepted = inspect.signature(model_class.__init__).parameters
    unknown = sorted(set(config.model) - set(accepted))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        raise UsageError(f"bad model config: {model_class.__name__} takes no {', '.join(unknown)}")
    try:
        return model_class(dtype=dtype, rngs=rngs, **config.model.to_dict(), **dims)
    except ValueError as e:  # impossible shapes, e.g. embed_dim not divisible by num_heads
        raise UsageError(f"bad model config: {e}") from None
