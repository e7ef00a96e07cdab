"""A model's condition vector: what the caption-conditioned image models (and their samplers) feed them.

Pure numpy and nothing else, so that a sampler builds conditions without importing the data layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def with_style(embeddings: np.ndarray, styles: np.ndarray | Sequence[int] | None, num_styles: int) -> np.ndarray:
    """A model's condition: caption embeddings [B, 384], then a one-hot [B, num_styles] of each row's artwork
    style when the data has several (`num_styles` > 0), so one model draws a concept in any of them."""
    embeddings = np.asarray(embeddings, np.float32)
    if not num_styles:
        return embeddings
    one_hot = np.eye(num_styles, dtype=np.float32)[np.asarray(styles, np.int64)]
    return np.concatenate([embeddings, one_hot], axis=-1)
