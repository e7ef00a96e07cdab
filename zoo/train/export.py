"""Writes the export (its format, and the reading side, are zoo/export.py): only what sampling needs."""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp

from zoo import config as config_lib
from zoo import export, storage
from zoo.train import card
from zoo.train import mesh as mesh_lib
from zoo.train.task import PyTree


def save_export(directory: str | os.PathLike, params: PyTree, config: ml_collections.ConfigDict,
                info: dict[str, Any], save_assets: Callable[[pathlib.Path, PyTree], None]) -> None:
    """Writes the bundle (on disk or in a bucket). `params` may be sharded; every process must call this.

    config.json is written last: it is what marks a directory as a complete export (zoo.export.is_export),
    so a run killed while exporting leaves no half an export that a sampler would take for a whole one. The
    model card is rewritten from this run; hand-written sections after its generated part are kept."""
    directory = storage.as_path(directory)
    if jax.process_index() == 0:  # an export being replaced stops counting as one before its params change
        (directory / export.CONFIG).unlink(missing_ok=True)
    mesh_lib.sync("export-unmarked")
    dtype = jnp.dtype(config.get("export_dtype", "bfloat16"))
    params = jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, params)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(directory / export.PARAMS, params, force=True)
    checkpointer.wait_until_finished()
    if jax.process_index() == 0:
        with storage.writable_dir(directory) as local:  # the export's folder exists: files land in place
            save_assets(local, params)
        storage.write_atomic(directory / export.INFO, json.dumps(info, indent=2, sort_keys=True))
        card_path = directory / export.CARD
        previous = card_path.read_text(encoding="utf-8") if card_path.exists() else None  # hand-written parts stay
        storage.write_atomic(card_path, card.with_hand_sections(card.render(config, info, params), previous))
        storage.write_atomic(directory / export.CONFIG, config_lib.to_json(config))
