"""The sampling bundle a training run leaves in `WORKDIR/export` (and the embedded `zoo/pretrained/NAME`).

    config.json   the full training config (the sampler rebuilds the model from it)
    info.json     step and final metrics, for the README and `sample.py` to report
    params/       an Orbax checkpoint of ONLY what sampling needs, stored in `export_dtype` (bf16)
    ...           the task's assets, e.g. tokenizer/

Loading needs no optimizer state, no training data and no network. An export in a bucket (gs://) is
downloaded once to a temporary folder and read from there (zoo/storage.py).
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from zoo import config as config_lib
from zoo import storage
from zoo.errors import UsageError
from zoo.train import mesh as mesh_lib
from zoo.train.checkpoint import shapes_by_path
from zoo.train.task import PyTree


def save_export(directory: str | os.PathLike, params: PyTree, config: ml_collections.ConfigDict,
                info: dict[str, Any], save_assets: Callable[[pathlib.Path, PyTree], None]) -> None:
    """Writes the bundle (on disk or in a bucket). `params` may be sharded; every process must call this.

    config.json is written last: it is what marks a directory as a complete export (`is_export`), so a run
    killed while exporting leaves no half an export that a sampler would take for a whole one."""
    directory = storage.as_path(directory)
    if jax.process_index() == 0:  # an export being replaced stops counting as one before its params change
        (directory / "config.json").unlink(missing_ok=True)
    mesh_lib.sync("export-unmarked")
    dtype = jnp.dtype(config.get("export_dtype", "bfloat16"))
    params = jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, params)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(directory / "params", params, force=True)
    checkpointer.wait_until_finished()
    if jax.process_index() == 0:
        with storage.writable_dir(directory) as local:  # the export's folder exists: files land in place
            save_assets(local, params)
        storage.write_atomic(directory / "info.json", json.dumps(info, indent=2, sort_keys=True))
        storage.write_atomic(directory / "config.json", config_lib.to_json(config))


def is_export(directory: str | os.PathLike) -> bool:
    directory = epath.Path(directory)
    return (directory / "config.json").is_file() and (directory / "params").is_dir()


def find_export(path: str | os.PathLike) -> pathlib.Path:
    """An export dir itself, or a training workdir holding one, as a local folder (an export in a bucket is
    downloaded); anything else is a UsageError."""
    path = storage.as_path(path)
    storage.check_reachable(path)
    for candidate in (path, path / "export"):
        if is_export(candidate):
            return storage.local_dir(candidate)
    if not path.exists():
        raise UsageError(f"checkpoint directory {path} does not exist")
    raise UsageError(f"{path} holds no exported model (expected config.json and params/, or a training "
                     "workdir whose run finished and wrote export/)")


def load_info(directory: str | os.PathLike) -> dict[str, Any]:
    try:
        return json.loads((epath.Path(directory) / "info.json").read_text())
    except (OSError, ValueError):
        return {}


def resolve_init_from(source: str) -> pathlib.Path:
    """`pretrained:NAME` -> the embedded model; otherwise an export dir or a finished workdir."""
    if source.startswith("pretrained:"):
        from zoo import registry
        return find_export(registry.get(source.split(":", 1)[1]).pretrained_dir)
    return find_export(source)


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
    have_shapes, want_shapes = shapes_by_path(restored), shapes_by_path(like)
    if have_shapes != want_shapes:
        differing = sorted(k for k in have_shapes.keys() | want_shapes.keys()
                           if have_shapes.get(k) != want_shapes.get(k))
        raise UsageError(f"{source} does not match this model: {differing[0]} is "
                         f"{have_shapes.get(differing[0])}, expected {want_shapes.get(differing[0])}")
    have = dict(zip(have_shapes, jax.tree.leaves(restored), strict=True))
    leaves = [np.asarray(have[k]).astype(v.dtype) for k, v in zip(want_shapes, jax.tree.leaves(like), strict=True)]
    return jax.tree.unflatten(jax.tree.structure(like), leaves)


def load_model(directory: pathlib.Path, config: ml_collections.ConfigDict, part: str | None = None,
               **dims: Any) -> tuple[Any, PyTree]:
    """(graphdef, params) of the exported model, ready for `nnx.merge`: the config's model built with the
    data-dependent `dims` (vocab_size, cond_dim ...) and the export's params in it. `part` names the one
    submodule the export holds (a GAN's "generator"); the model is then built for real (it initialises in
    milliseconds) so that the rest has values, which sampling never reads. Every sampler loads this way."""
    from flax import nnx

    from zoo import registry

    source = f"checkpoint {directory}"
    if part is None:
        abstract = nnx.eval_shape(lambda: registry.build_model(config, nnx.Rngs(0), **dims))
        graphdef, expected = nnx.split(abstract)
        return graphdef, jax.tree.map(jnp.asarray, load_params(directory, nnx.to_pure_dict(expected), source))
    model = registry.build_model(config, nnx.Rngs(0), **dims)
    module = getattr(model, part)
    nnx.update(module, load_params(directory, nnx.to_pure_dict(nnx.state(module)), source))
    return nnx.split(model)

