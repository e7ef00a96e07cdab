"""Next-token language modelling: the objective of the `poem` and `poem-zh` models.

Loss is the mean cross-entropy per token in nats. Evaluation also reports bits per character, which
compares runs across tokenizers (a BPE token spans several characters, a char token one).
"""

from __future__ import annotations

import logging
import math
import pathlib
from collections.abc import Iterator

import jax
import ml_collections
import numpy as np
import optax
from flax import nnx

from zoo import registry
from zoo.data import sources
from zoo.data.lm import TokenWindows
from zoo.objectives.common import gradient_step, init_model_state
from zoo.text import tokenizer as tokenizer_lib
from zoo.train.optim import make_optimizer

log = logging.getLogger(__name__)

TOKENIZER_DIR = "tokenizer"


def build_model(config: ml_collections.ConfigDict, vocab_size: int, rngs: nnx.Rngs) -> nnx.Module:
    """The model a config describes (also used by the sampler)."""
    import jax.numpy as jnp
    model_class = registry.resolve(registry.get(config.model_name).model)
    return model_class(vocab_size=vocab_size, dtype=jnp.dtype(config.get("compute_dtype", "float32")),
                       rngs=rngs, **config.model.to_dict())


def _tokenizer_for(config: ml_collections.ConfigDict, workdir: pathlib.Path, train_docs: list[str]):
    """Resume and fine-tuning must reuse the tokenizer they started with; only a new run trains one."""
    if (workdir / TOKENIZER_DIR).is_dir():
        return tokenizer_lib.load_tokenizer(workdir / TOKENIZER_DIR)
    if config.get("init_from"):
        from zoo.train.loop import resolve_init_from
        return tokenizer_lib.load_tokenizer(resolve_init_from(config.init_from) / TOKENIZER_DIR)
    return tokenizer_lib.train_tokenizer(train_docs, config.tokenizer, config.get("vocab_size", 0))


class LMTask:
    """Data, state and steps of a decoder-only LM for the shared loop."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
        workdir = pathlib.Path(workdir)
        docs = sources.load_documents(config.data)
        train_docs, val_docs = sources.split_documents(docs, config.get("val_fraction", 0.05))
        self.tokenizer = _tokenizer_for(config, workdir, train_docs)
        if jax.process_count() > 1:  # every process has decided before process 0 writes the directory
            from jax.experimental import multihost_utils
            multihost_utils.sync_global_devices("tokenizer")
        if jax.process_index() == 0:
            tokenizer_lib.save_tokenizer(self.tokenizer, workdir / TOKENIZER_DIR)
        self.vocab_size = len(self.tokenizer)
        train_tokens = tokenizer_lib.encode_documents(self.tokenizer, train_docs)
        val_tokens = tokenizer_lib.encode_documents(self.tokenizer, val_docs or train_docs[-50:])
        # Each document also contributes one end-of-text "character" so char and BPE runs compare fairly.
        val_chars = sum(len(d) + 1 for d in (val_docs or train_docs[-50:]))
        self.tokens_per_char = len(val_tokens) / val_chars
        context = config.model.context_length
        self.train_data = TokenWindows(train_tokens, context, config.batch_size, config.seed)
        self.val_data = TokenWindows(val_tokens, context, config.batch_size, config.seed)
        self.eval_batch_count = config.get("eval_batches", 8)
        self.tx = make_optimizer(config)
        self.config = config
        self.graphdef = nnx.graphdef(nnx.eval_shape(lambda: build_model(config, self.vocab_size, nnx.Rngs(0))))
        log.info("%s: %d train / %d val tokens, vocab %d", config.data, len(train_tokens), len(val_tokens),
                 self.vocab_size)

    def init_state(self, key: jax.Array) -> dict:
        return init_model_state(build_model(self.config, self.vocab_size, nnx.Rngs(params=key)), self.tx)

    def _loss(self, params, tokens: jax.Array, key: jax.Array | None) -> tuple[jax.Array, dict]:
        model = nnx.merge(self.graphdef, params)
        rngs = None if key is None else nnx.Rngs(dropout=key)
        logits = model(tokens[:, :-1], deterministic=key is None, rngs=rngs)
        targets = tokens[:, 1:]
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
        accuracy = (logits.argmax(-1) == targets).mean()
        return loss, {"accuracy": accuracy}

    def train_step(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        return gradient_step(state, self.tx, lambda p: self._loss(p, batch["tokens"], key))

    def eval_step(self, state: dict, batch: dict) -> dict:
        loss, metrics = self._loss(state["params"], batch["tokens"], None)
        return {"loss": loss, "bits_per_char": loss * self.tokens_per_char / math.log(2), **metrics}

    def train_batch(self, step: int, process_index: int, process_count: int) -> dict[str, np.ndarray]:
        return self.train_data.batch(step, process_index, process_count)

    def eval_batches(self, process_index: int, process_count: int) -> Iterator[dict[str, np.ndarray]]:
        return self.val_data.eval_batches(self.eval_batch_count, process_index, process_count)

    def export_params(self, state: dict) -> dict:
        return state["params"]

    def load_params(self, state: dict, params: dict) -> dict:
        return {"params": params, "opt_state": self.tx.init(params)}

    def save_assets(self, directory: pathlib.Path) -> None:
        tokenizer_lib.save_tokenizer(self.tokenizer, pathlib.Path(directory) / TOKENIZER_DIR)


def build_task(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> LMTask:
    return LMTask(config, workdir)
