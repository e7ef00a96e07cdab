"""Caption tables for prompt-conditioned families (music, dcgan, vae): each caption embedded once.

Models are conditioned on sentence embeddings of captions made from their data's labels, so that a
free prompt's embedding lands near the labels it names. Embedding tens of thousands of captions costs
minutes on a CPU, so the table is cached under `data_dir()/cache/`, keyed by a hash of the caption list:
a rerun, a resumed run and every process of a multi-host run read the same file instead of running the
encoder again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence

import numpy as np

from zoo.data.sources import data_dir

log = logging.getLogger(__name__)


def embed_captions(captions: Sequence[str]) -> np.ndarray:
    """float16 [len(captions), 384] sentence embeddings, cached on disk by a hash of the caption list."""
    digest = hashlib.sha256(json.dumps(list(captions), ensure_ascii=False).encode("utf-8")).hexdigest()[:16]
    path = data_dir() / "cache" / f"music-captions-{digest}.npy"  # all families: renaming orphans old caches
    if path.is_file():
        try:
            table = np.load(path)
            if table.shape[0] == len(captions):
                return table
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable caption cache %s: %s", path, e)
    from zoo.text.encoder import TextEncoder  # deferred: loads the encoder weights

    log.info("embedding %d captions with the text encoder (cached afterwards in %s)", len(captions), path)
    encoder = TextEncoder.load(cache_size=0)
    chunk = 4096
    parts = []
    for start in range(0, len(captions), chunk):
        parts.append(encoder.embed(list(captions[start:start + chunk])).astype(np.float16))
        if len(captions) > chunk:
            log.info("embedded %d/%d captions", min(start + chunk, len(captions)), len(captions))
    table = np.concatenate(parts) if parts else np.zeros((0, encoder.dim), np.float16)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy", delete=False) as f:
        np.save(f, table)
    os.replace(f.name, path)  # atomic: concurrent processes never see half a file
    return table

