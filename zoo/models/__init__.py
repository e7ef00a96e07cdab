"""The model families' NNX modules, one file per family (lm, textgan, music, dcgan, vae).

`build` is how training and sampling both construct one, so both always build the same architecture.
"""

from __future__ import annotations

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
    try:
        return model_class(dtype=dtype, rngs=rngs, **config.model.to_dict(), **dims)
    except (ValueError, TypeError) as e:  # e.g. embed_dim not divisible by num_heads, an unknown key
        raise UsageError(f"bad model config: {e}") from None
