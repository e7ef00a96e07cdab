"""Next-token language modelling: the objective of the `poem` and `poem-zh` models.

Loss is the mean cross-entropy per token in nats. Evaluation also reports bits per character, which
compares runs across tokenizers (a BPE token spans several characters, a char token one).

The data is a corpus spec (zoo/data/sources.py), tokenized here in memory, or `tokens:DIR`, shards that
`python -m zoo.prepare` wrote (zoo/data/tokens.py), memory-mapped so a corpus may exceed memory.
"""

from __future__ import annotations

import logging
import math
import pathlib

import jax
import ml_collections
import numpy as np
import optax
from etils import epath
from flax import nnx

from zoo import export, storage
from zoo.data import sources, tokens
from zoo.data.lm import TokenWindows
from zoo.errors import UsageError
from zoo.models import build
from zoo.models.lm import GPT
from zoo.objectives.common import SingleModelTask, gradient_step, init_model_state, top1_correct
from zoo.text import tokenizer as tokenizer_lib
from zoo.train import mesh as mesh_lib
from zoo.train.optim import make_optimizer

log = logging.getLogger(__name__)
Tokenizer = tokenizer_lib.PreTrainedTokenizerFast



def lm_loss(graphdef: nnx.GraphDef, params: dict, tokens: jax.Array,
            key: jax.Array | None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean next-token cross-entropy (nats) of windows `tokens` [B, T+1]; dropout on iff `key` is given."""
    model = nnx.merge(graphdef, params)
    rngs = None if key is None else nnx.Rngs(dropout=key)
    logits = model(tokens[:, :-1], deterministic=key is None, rngs=rngs)
    targets = tokens[:, 1:]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
    return loss, {"accuracy": top1_correct(logits, targets).mean()}


def prepare_tokenizer(config: ml_collections.ConfigDict, workdir: epath.Path, train_docs: list[str],
                      min_count: int = tokenizer_lib.DEFAULT_MIN_COUNT,
                      prepared: Tokenizer | None = None) -> Tokenizer:
    """The run's tokenizer, saved into the workdir. Resume and fine-tuning must reuse the tokenizer they
    started with; only a new run trains one (from `train_docs`, with the config's `tokenizer` kind).
    `tokenizer.json` is written last and marks a complete tokenizer (a run stopped mid-write retrains it:
    training is deterministic). `prepared` is the tokenizer that token shards were written with: a new run
    adopts it, and a resumed or fine-tuned one must already use it, or the shards' ids would mean other text."""
    mine = workdir / export.TOKENIZER
    if (mine / tokenizer_lib.FILE).is_file():
        return _same_as_prepared(tokenizer_lib.load_tokenizer(storage.local_dir(mine)), prepared,
                                 f"this run's tokenizer ({mine})")
    if config.get("init_from"):
        tok = _same_as_prepared(tokenizer_lib.load_tokenizer(export.resolve(config.init_from) / export.TOKENIZER),
                                prepared, f"the tokenizer of --config.init_from={config.init_from}")
    elif prepared is not None:
        tok = prepared
    else:
        tok = tokenizer_lib.train_tokenizer(train_docs, config.tokenizer, config.get("vocab_size", 0),
                                            min_count=min_count)
    mesh_lib.sync("tokenizer")  # every process has decided before process 0 writes the directory
    if jax.process_index() == 0:
        with storage.writable_dir(mine, last=tokenizer_lib.FILE) as directory:
            tokenizer_lib.save_tokenizer(tok, directory)
    return tok


def _same_as_prepared(tok: Tokenizer, prepared: Tokenizer | None, what: str) -> Tokenizer:
    if prepared is not None and tok.backend_tokenizer.to_str() != prepared.backend_tokenizer.to_str():
        raise UsageError(f"the token shards were written with another tokenizer than {what}; "
                         "prepare them again with that tokenizer's kind and vocabulary, or start a new workdir")
    return tok


def _document_tokens(config: ml_collections.ConfigDict, workdir: epath.Path
                     ) -> tuple[Tokenizer, np.ndarray, np.ndarray, float]:
    """(tokenizer, train ids, validation ids, tokens per character) of a corpus spec, tokenized in memory."""
    docs = sources.load_documents(config.data)
    train_docs, val_docs = sources.split_documents(docs, config.get("val_fraction", 0.05))
    tok = prepare_tokenizer(config, workdir, train_docs)
    if not val_docs:
        log.warning("%s has too few documents for a validation split: evaluating on training text", config.data)
        val_docs = train_docs[-50:]
    train_tokens = tokenizer_lib.encode_documents(tok, train_docs)
    val_tokens = tokenizer_lib.encode_documents(tok, val_docs)
    # Each document also contributes one end-of-text "character" so char and BPE runs compare fairly.
    return tok, train_tokens, val_tokens, len(val_tokens) / sum(len(d) + 1 for d in val_docs)


def _shard_tokens(config: ml_collections.ConfigDict, workdir: epath.Path
                  ) -> tuple[Tokenizer, np.ndarray, np.ndarray, float]:
    """The same for `tokens:DIR`: memory maps of the prepared shards, and the tokenizer that wrote them.

    The shards fix the tokenizer, so the config's `tokenizer` and `vocab_size` are not used (logged, not
    refused: the family's config file names its own defaults, which a prepared corpus need not repeat)."""
    shards = tokens.open_shards(config.data)
    prepared = tokenizer_lib.load_tokenizer(shards.tokenizer_dir)
    meta = shards.meta
    if len(prepared) != meta["tokenizer"]["vocab_size"]:
        raise UsageError(f"{shards.tokenizer_dir} has {len(prepared)} tokens but {tokens.META} says "
                         f"{meta['tokenizer']['vocab_size']}; prepare {shards.directory} again")
    log.info("%s: tokenizer from %s (%s, %d tokens); the config's tokenizer=%s and vocab_size=%s are not used",
             config.data, shards.tokenizer_dir, meta["tokenizer"]["kind"], len(prepared),
             config.get("tokenizer"), config.get("vocab_size"))
    tok = prepare_tokenizer(config, workdir, [], prepared=prepared)
    val_tokens, val_chars = shards.val, meta["characters"]["val"]
    if len(val_tokens) < config.model.context_length + 2:
        log.warning("%s has too few validation tokens: evaluating on training text", config.data)
        val_tokens, val_chars = shards.train, meta["characters"]["train"]
    return tok, shards.train, val_tokens, len(val_tokens) / val_chars


class LMTask(SingleModelTask):
    """Data, state and steps of a decoder-only LM for the shared loop."""

    family = "lm"

    def __init__(self, config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
        workdir = storage.as_path(workdir)
        load = _shard_tokens if tokens.is_spec(config.data) else _document_tokens
        self.tokenizer, train_tokens, val_tokens, self.tokens_per_char = load(config, workdir)
        self.vocab_size = len(self.tokenizer)
        context = config.model.context_length
        try:
            self.train_data = TokenWindows(train_tokens, context, config.batch_size, config.seed)
            self.val_data = TokenWindows(val_tokens, context, config.batch_size, config.seed)
        except ValueError as e:
            raise UsageError(f"{config.data}: {e}; use a larger corpus or a smaller context_length") from None
        self.eval_batch_count = config.get("eval_batches", 8)
        self._set_model(config)
        log.info("%s: %d train / %d val tokens, vocab %d", config.data, len(train_tokens), len(val_tokens),
                 self.vocab_size)

    @classmethod
    def without_data(cls, config: ml_collections.ConfigDict, vocab_size: int) -> LMTask:
        """The task's state and steps for a `vocab_size` vocabulary, with no corpus or tokenizer: what
        benchmarks/plan.py compiles to size a model it never trains. Batches, evaluation and assets need the
        data this skips."""
        task = cls.__new__(cls)
        task.vocab_size = vocab_size
        task._set_model(config)
        return task

    def _set_model(self, config: ml_collections.ConfigDict) -> None:
        """The optimizer and the model's graph, all that init_state and train_step use besides vocab_size."""
        self.tx = make_optimizer(config)
        self.config = config
        self.graphdef = nnx.graphdef(nnx.eval_shape(
            lambda: build(GPT, config, nnx.Rngs(0), **self.model_dims)))

    @property
    def model_dims(self) -> dict:
        """The data-dependent constructor arguments (what `zoo.models.build` takes as **dims)."""
        return {"vocab_size": int(self.vocab_size)}

    def init_state(self, key: jax.Array) -> dict:
        model = build(GPT, self.config, nnx.Rngs(params=key), **self.model_dims)
        return init_model_state(model, self.tx)

    def train_step(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        return gradient_step(state, self.tx, lambda p: lm_loss(self.graphdef, p, batch["tokens"], key))

    def eval_step(self, state: dict, batch: dict) -> dict:
        loss, metrics = lm_loss(self.graphdef, state["params"], batch["tokens"], None)
        return {"loss": loss, "bits_per_char": loss * self.tokens_per_char / math.log(2), **metrics}

    def save_assets(self, directory: pathlib.Path, params: dict) -> None:
        tokenizer_lib.save_tokenizer(self.tokenizer, pathlib.Path(directory) / export.TOKENIZER)


def build_task(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> LMTask:
    return LMTask(config, workdir)
