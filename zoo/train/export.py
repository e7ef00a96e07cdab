"""The sampling bundle a training run leaves in `WORKDIR/export` (and the embedded `zoo/pretrained/NAME`).

    config.json   the full training config (the sampler rebuilds the model from it)
    info.json     step and final metrics, for the README and `sample.py` to report
    params/       an Orbax checkpoint of ONLY what sampling needs, stored in `export_dtype` (bf16)
    ...           the task's assets, e.g. tokenizer/

Loading needs no optimizer state, no training data and no network.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from zoo import config as config_lib
from zoo.errors import UsageError
from zoo.train.task import PyTree


def save_export(directory: pathlib.Path, params: PyTree, config: ml_collections.ConfigDict,
                info: dict[str, Any], save_assets) -> None:
    """Writes the bundle. `params` may be sharded; every process must call this."""
    directory = pathlib.Path(directory).absolute()
    dtype = jnp.dtype(config.get("export_dtype", "bfloat16"))
    params = jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, params)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(directory / "params", params, force=True)
    checkpointer.wait_until_finished()
    if jax.process_index() == 0:
        (directory / "config.json").write_text(config_lib.to_json(config))
        (directory / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True))
        save_assets(directory)


def is_export(directory: pathlib.Path) -> bool:
    directory = pathlib.Path(directory)
    return (directory / "config.json").is_file() and (directory / "params").is_dir()


def find_export(path: str | pathlib.Path) -> pathlib.Path:
    """An export dir itself, or a training workdir holding one; anything else is a UsageError."""
    path = pathlib.Path(path)
    for candidate in (path, path / "export"):
        if is_export(candidate):
            return candidate
    if not path.exists():
        raise UsageError(f"checkpoint directory {path} does not exist")
    raise UsageError(f"{path} holds no exported model (expected config.json and params/, or a training "
                     "workdir whose run finished and wrote export/)")


def load_config(directory: pathlib.Path) -> ml_collections.ConfigDict:
    try:
        return config_lib.from_json((pathlib.Path(directory) / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {directory}/config.json: {e}") from None


def load_params(directory: pathlib.Path, like: PyTree, source: str = "") -> PyTree:
    """The exported params as host numpy arrays in the structure and dtypes of `like`.

    Orbax hands back lists as dicts with "0", "1" ... keys, so leaves are matched by their key path; a
    checkpoint with other names or shapes is a UsageError naming the first difference.
    """
    source = source or str(directory)
    try:
        restored = ocp.StandardCheckpointer().restore(pathlib.Path(directory).absolute() / "params")
    except Exception as e:  # Orbax's errors for damaged files are of many types
        raise UsageError(f"cannot restore params from {directory}: {type(e).__name__}: {e}") from None
    have = {_path(k): v for k, v in jax.tree_util.tree_leaves_with_path(restored)}
    want = {_path(k): v for k, v in jax.tree_util.tree_leaves_with_path(like)}
    if want.keys() != have.keys():
        differing = sorted(want.keys() ^ have.keys())
        raise UsageError(f"{source} does not match this model: parameter {differing[0]} differs")
    wrong = [f"{k} is {tuple(np.shape(have[k]))}, expected {tuple(want[k].shape)}" for k in want
             if tuple(np.shape(have[k])) != tuple(want[k].shape)]
    if wrong:
        raise UsageError(f"{source} does not match this model: {wrong[0]} ({len(wrong)} mismatched)")
    leaves = [np.asarray(have[_path(k)]).astype(v.dtype) for k, v in jax.tree_util.tree_leaves_with_path(like)]
    return jax.tree.unflatten(jax.tree.structure(like), leaves)


def _path(keys: tuple) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in keys)
