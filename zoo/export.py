"""The export: what a training run leaves in `WORKDIR/export` and what ships in `zoo/pretrained/NAME`.

    config.json   the full training config (the sampler rebuilds the model from it); written last, so it
                  marks a complete export
    info.json     the step, the final metrics, the family, the command and the devices of the run
    README.md     the model card (zoo.train.card)
    params/       an Orbax checkpoint of ONLY what sampling needs, stored in the config's `export_dtype`
    ...           the family's own files, named in FAMILY_FILES

This module is the one place that names those files: training writes them (zoo.train.export and each
objective's `save_assets`), samplers read them, and neither imports the other. Loading needs no optimizer
state, no training data and no network; an export in a bucket (gs://) is downloaded once to a temporary
folder and read from there (zoo.storage).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pathlib
from collections.abc import Callable, Sequence
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

PyTree = Any

PRETRAINED_DIR = pathlib.Path(__file__).resolve().parent / "pretrained"

CONFIG = "config.json"
INFO = "info.json"
CARD = "README.md"
PARAMS = "params"

TOKENIZER = "tokenizer"  # a folder (zoo.text.tokenizer); its tokenizer.json is written last
TEXTGAN = "textgan.json"  # poem form, length, the exported module
IMAGES = "images.json"  # classes, captions, image shape and pixel scale, the exported module
CAPTION_EMBEDDINGS = "caption_embeddings.npy"  # float16 [N, dim]: row i embeds caption i (prompt matching)
LATENT_MIXTURE = "latent_mixture.npz"  # a VAE's per-class ex-post latent mixtures (optional)
MUSIC = "music.json"  # the melody encoding's version and vocabulary
MUSIC_CAPTIONS = "captions.json"  # the captions whose embeddings a prompt is matched against
CLASSES = "classes.json"  # a classifier's labels, input, backbone (and its fingerprint) and held-out scores

# The files each family's sampler needs beside config.json and params/.
FAMILY_FILES: dict[str, tuple[str, ...]] = {
    "lm": (TOKENIZER,),
    "textgan": (TOKENIZER, TEXTGAN),
    "music": (MUSIC, MUSIC_CAPTIONS, CAPTION_EMBEDDINGS),
    "dcgan": (IMAGES, CAPTION_EMBEDDINGS),
    "vae": (IMAGES, CAPTION_EMBEDDINGS),
    "classify": (CLASSES,),
}


def require(directory: pathlib.Path, family: str) -> None:
    """A UsageError naming the first file of `family`'s export that `directory` lacks."""
    for name in FAMILY_FILES[family]:
        if not (pathlib.Path(directory) / name).exists():
            raise UsageError(f"{directory} is not a complete {family} export: it lacks {name}")


def is_export(directory: str | os.PathLike) -> bool:
    directory = epath.Path(directory)
    return (directory / CONFIG).is_file() and (directory / PARAMS).is_dir()


def locate(path: str | os.PathLike) -> epath.Path | None:
    """The export at `path`: the folder itself, or a training workdir's export/, where it lies (nothing is
    downloaded); None where there is none."""
    path = storage.as_path(path)
    storage.check_reachable(path)
    return next((c for c in (path, path / "export") if is_export(c)), None)


def find_export(path: str | os.PathLike) -> pathlib.Path:
    """An export dir itself, or a training workdir holding one, as a local folder (an export in a bucket is
    downloaded); anything else is a UsageError."""
    found = locate(path)
    if found is not None:
        return storage.local_dir(found)
    path = storage.as_path(path)
    if not path.exists():
        raise UsageError(f"checkpoint directory {path} does not exist")
    raise UsageError(f"{path} holds no exported model (expected {CONFIG} and {PARAMS}/, or a training "
                     "workdir whose run finished and wrote export/)")


def resolve(source: str) -> pathlib.Path:
    """`pretrained:NAME` -> the embedded model NAME; otherwise an export dir or a finished workdir."""
    if source.startswith("pretrained:"):
        name = source.split(":", 1)[1]
        if not (PRETRAINED_DIR / name).is_dir():
            known = ", ".join(sorted(p.name for p in PRETRAINED_DIR.iterdir() if is_export(p)))
            raise UsageError(f"no embedded model {name!r}; embedded: {known}")
        return find_export(PRETRAINED_DIR / name)
    return find_export(source)


def load_info(directory: str | os.PathLike) -> dict[str, Any]:
    try:
        return json.loads((epath.Path(directory) / INFO).read_text())
    except (OSError, ValueError):
        return {}


def load_config(directory: pathlib.Path) -> ml_collections.ConfigDict:
    try:
        return config_lib.from_json((pathlib.Path(directory) / CONFIG).read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {directory}/{CONFIG}: {e}") from None


def shapes_by_path(tree: PyTree) -> dict[str, tuple[int, ...]]:
    """Leaf shapes keyed by "a/b/0/c" paths: Orbax hands lists and tuples back as dicts keyed "0", "1"..."""
    return {_path(k): tuple(v.shape) for k, v in jax.tree_util.tree_leaves_with_path(tree)}


def _path(keys: tuple) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in keys)


def load_params(directory: pathlib.Path, like: PyTree, source: str = "") -> PyTree:
    """The exported params as host numpy arrays in the structure and dtypes of `like`.

    Orbax hands back lists as dicts with "0", "1" ... keys, so leaves are matched by their key path; a
    checkpoint with other names or shapes is a UsageError naming the first difference.
    """
    source = source or str(directory)
    try:
        restored = ocp.StandardCheckpointer().restore(pathlib.Path(directory).absolute() / PARAMS)
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


def load_model(directory: pathlib.Path, config: ml_collections.ConfigDict, model_class: type,
               part: str | None = None, **dims: Any) -> tuple[Any, PyTree]:
    """(graphdef, params) of the exported model, ready for `nnx.merge`: `model_class` built from the config
    with the data-dependent `dims` (vocab_size, cond_dim ...) and the export's params in it. `part` names
    the one submodule the export holds (a GAN's "generator"); the model is then built for real (it
    initialises in milliseconds) so that the rest has values, which sampling never reads. Every sampler
    loads this way."""
    from flax import nnx

    from zoo.models import build

    source = f"checkpoint {directory}"
    if part is None:
        abstract = nnx.eval_shape(lambda: build(model_class, config, nnx.Rngs(0), **dims))
        graphdef, expected = nnx.split(abstract)
        return graphdef, jax.tree.map(jnp.asarray, load_params(directory, nnx.to_pure_dict(expected), source))
    model = build(model_class, config, nnx.Rngs(0), **dims)
    module = getattr(model, part)
    nnx.update(module, load_params(directory, nnx.to_pure_dict(nnx.state(module)), source))
    return nnx.split(model)


# ------------------------------------------------------------------ classifiers: a fine-tuned head on a base


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A classifier's pretrained encoder: where it comes from, how to build it, its params and its tokens.

    A text classifier's export holds only what fine-tuning changed; the rest is read back from `spec`
    ("minilm": the prompt encoder's package; "pretrained:NAME" or a directory: a zoo LM export), checked
    against the `fingerprint` recorded at training time."""

    spec: str
    kind: str  # "minilm" or "gpt": zoo.models.classify.TextClassifier's `backbone`
    encoder: dict[str, Any]  # the backbone's own arguments (zoo.models.classify.TextClassifier's `encoder`)
    params: PyTree  # host arrays
    tokenize: Callable[[str], list[int]]  # text -> at most `max_tokens` ids
    max_tokens: int

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, mask), int32 [N, max_tokens] each: the texts as a classifier on this backbone reads them."""
        ids, mask = np.zeros((len(texts), self.max_tokens), np.int32), np.zeros((len(texts), self.max_tokens), np.int32)
        for row, text in enumerate(texts):
            tokens = self.tokenize(text)[:self.max_tokens]
            ids[row, :len(tokens)], mask[row, :len(tokens)] = tokens, 1
        return ids, mask

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for leaf in jax.tree.leaves(self.params):
            digest.update(np.ascontiguousarray(leaf).tobytes())
        return digest.hexdigest()[:16]


@functools.cache
def load_backbone(spec: str, max_tokens: int) -> Backbone:
    """The pretrained encoder named by `spec`, its inputs cut at `max_tokens` tokens."""
    from flax import nnx

    if spec == "minilm":
        from tokenizers import Tokenizer

        from zoo.text.encoder import TOKENIZER_FILE, MiniLMConfig, find_encoder_dir, load_minilm

        directory = find_encoder_dir()
        config = MiniLMConfig.from_directory(directory)
        tok = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        tok.no_padding()
        length = min(max_tokens, config.max_tokens)
        tok.enable_truncation(max_length=length)
        params = nnx.to_pure_dict(nnx.state(load_minilm(directory, config), nnx.Param))
        return Backbone(spec, "minilm", dataclasses.asdict(config), jax.tree.map(np.asarray, params),
                        lambda text: tok.encode(text).ids, length)
    from zoo.models.lm import GPT
    from zoo.text.tokenizer import load_tokenizer

    directory = resolve(spec)
    config = load_config(directory)
    if config.get("model_name") not in ("poem", "poem-zh") and "context_length" not in config.model:
        raise UsageError(f"backbone {spec} is not a GPT language model export")
    tok = load_tokenizer(directory / TOKENIZER)
    _, params = load_model(directory, config, GPT, vocab_size=len(tok))
    encoder = {**config.model.to_dict(), "vocab_size": len(tok)}
    length = min(max_tokens, int(config.model.context_length))
    return Backbone(spec, "gpt", encoder, jax.tree.map(np.asarray, params),
                    lambda text: tok.encode(text, add_special_tokens=False)[:length], length)


@dataclasses.dataclass(frozen=True)
class Classifier:
    """A classifier export, loaded: its model (graphdef, params), labels and, for text, its backbone."""

    graphdef: Any
    params: PyTree
    info: dict[str, Any]  # classes.json
    backbone: Backbone | None

    @property
    def labels(self) -> list[str]:
        return list(self.info["labels"])

    @functools.cached_property
    def _forward(self) -> Callable[..., jax.Array]:
        from flax import nnx

        return jax.jit(lambda params, *inputs: jax.nn.softmax(nnx.merge(self.graphdef, params)(*inputs)))

    def probabilities(self, inputs: Sequence[str] | np.ndarray, batch: int = 64) -> np.ndarray:
        """float32 [N, len(labels)]: the class probabilities of texts, or of uint8 images [N, H, W, C], run
        in batches of `batch` rows (the last one padded), so any N costs one compilation."""
        if self.backbone is not None:
            columns = self.backbone.encode(list(inputs))
        else:
            columns = (np.asarray(inputs, np.float32) / 255,)
        n = len(columns[0])
        out = np.empty((n, len(self.labels)), np.float32)
        for start in range(0, n, batch):
            chunk = [c[start:start + batch] for c in columns]
            real = len(chunk[0])
            chunk = [np.concatenate([c, np.repeat(c[:1], batch - real, 0)]) if real < batch else c for c in chunk]
            out[start:start + real] = np.asarray(self._forward(self.params, *chunk))[:real]
        return out


def load_classifier(directory: pathlib.Path) -> Classifier:
    """A `classify` export with its frozen base filled in from the backbone it names."""
    from flax import nnx

    from zoo.models import build
    from zoo.models.classify import ImageClassifier, TextClassifier, merge_params

    require(directory, "classify")
    info = json.loads((pathlib.Path(directory) / CLASSES).read_text(encoding="utf-8"))
    config = load_config(directory)
    dims = {"num_classes": len(info["labels"])}
    backbone = None
    if info["input"] == "text":
        backbone = load_backbone(info["backbone"], int(info["max_tokens"]))
        if backbone.fingerprint != info["backbone_fingerprint"]:
            raise UsageError(f"{directory} was fine-tuned from another {info['backbone']} than the one installed "
                             f"(fingerprint {backbone.fingerprint}, expected {info['backbone_fingerprint']})")
        model_class, dims["backbone"], dims["encoder"] = TextClassifier, backbone.kind, backbone.encoder
    else:
        model_class, dims["in_channels"] = ImageClassifier, int(info["image_shape"][-1])
    abstract = nnx.eval_shape(lambda: build(model_class, config, nnx.Rngs(0), **dims))
    graphdef, state = nnx.split(abstract)
    flat = nnx.traversals.flatten_mapping(nnx.to_pure_dict(state))
    like = nnx.traversals.unflatten_mapping({k: v for k, v in flat.items() if abstract.is_trainable(k)})
    trainable = load_params(directory, like, f"checkpoint {directory}")
    frozen = {"encoder": backbone.params} if backbone is not None else {}
    params = jax.tree.map(jnp.asarray, merge_params(trainable, frozen))
    return Classifier(graphdef, params, info, backbone)
