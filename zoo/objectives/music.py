"""Caption-conditioned next-event modelling: the objective of the `music` model (zoo.models.music).

Data: the folk-tune corpus of zoo.data.music, split by tune hash, encoded as melody events
(zoo.melody.encoding), randomly transposed per batch row (with a caption naming the transposed key),
batched by zoo.data.music_batches. Every unique caption is embedded
once with the pretrained text encoder (all-MiniLM-L6-v2) into an [N, 384] table, cached on disk
(zoo.text.captions), so a rerun does not run the encoder again.
Batches carry the rows of that table their captions pick (`cond`, gathered on the host: the table can
hold tens of thousands of captions and would be a needlessly large constant inside the jitted step).

Loss is the masked mean cross-entropy per event (nats), over real tokens only (the batch's `mask`
minus its first column: position 0, BOS, is never a target). Eval also reports accuracy.
"""

from __future__ import annotations

import json
import logging
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from zoo import export
from zoo.data import music as music_data
from zoo.data.music_batches import MelodyBatches
from zoo.errors import UsageError
from zoo.melody import encoding
from zoo.models import build
from zoo.models.music import MelodyRNN
from zoo.objectives.common import (
    SingleModelTask,
    WithCaptionEmbeddings,
    gradient_step,
    init_model_state,
    top1_correct,
)
from zoo.text.captions import embed_captions
from zoo.train.optim import make_optimizer
from zoo.train.task import EVAL_WEIGHT

log = logging.getLogger(__name__)

def encodable_tunes(config: ml_collections.ConfigDict, progress: bool = False
                    ) -> tuple[music_data.TuneCorpus, list[music_data.Tune], list[np.ndarray], int]:
    """(corpus, the tunes training uses, their tokens, how many could not be encoded): the encodable tunes
    of `config.data` in corpus order, capped at `config.max_tunes`. `music_data.split_tunes(tunes,
    config.val_fraction)` then gives the training split; evaluation calls this too, to hold out the same tunes."""
    limit = config.get("max_tunes", 0) or None
    corpus = music_data.load_corpus(config.data, limit=limit, progress=progress)
    tunes, encoded, bad = [], [], 0
    for tune in corpus.tunes:
        try:
            encoded.append(encoding.encode(tune))
            tunes.append(tune)
        except ValueError:
            bad += 1
    if not tunes:
        raise UsageError(f"music data {config.data!r} holds no usable tunes")
    return corpus, tunes[:limit], encoded[:limit], bad


def masked_loss(graphdef: nnx.GraphDef, params: dict, batch: dict, key: jax.Array | None
                ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Masked mean next-event cross-entropy (nats/event); dropout on iff `key` is given."""
    model = nnx.merge(graphdef, params)
    tokens = batch["tokens"]
    rngs = None if key is None else nnx.Rngs(dropout=key)
    logits = model(tokens[:, :-1], batch["cond"], deterministic=key is None, rngs=rngs)
    targets = tokens[:, 1:]
    mask = batch["mask"][:, 1:].astype(jnp.float32)
    count = jnp.maximum(mask.sum(), 1.0)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    loss = (nll * mask).sum() / count
    accuracy = (top1_correct(logits, targets) * mask).sum() / count
    return loss, {"accuracy": accuracy}


class MusicTask(SingleModelTask):
    """Data, state and steps of the caption-conditioned melody LSTM for the shared loop."""

    family = "music"

    def __init__(self, config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
        self.config = config
        corpus, tunes, encoded, bad = encodable_tunes(config, progress=jax.process_index() == 0)
        train, val = music_data.split_tunes(tunes, config.get("val_fraction", 0.05))
        if not val:
            log.warning("%s has too few tunes for a validation split: evaluating on training tunes", config.data)
            val = train[-8:]
        position = {id(t): i for i, t in enumerate(tunes)}
        self.captions, index = music_data.caption_table(tunes)
        self.embeddings = embed_captions(self.captions)
        rows = lambda part: [position[id(t)] for t in part]  # noqa: E731
        train_rows, val_rows = rows(train), rows(val)
        # What a sampler ships (the full table is ~49k rows, ~38 MB): the training tunes' captions in their
        # notated keys, to retrieve and report the captions nearest to a prompt.
        self.notated_caption_rows = sorted({int(index[i, 0]) for i in train_rows})
        max_len = config.get("max_len", 384)
        try:
            self.train_data = WithCaptionEmbeddings(MelodyBatches(
                [encoded[i] for i in train_rows], index[train_rows], max_len, config.batch_size, config.seed,
                tuple(config.get("transpose_range", (-5, 6)))), self.embeddings)
            self.val_data = WithCaptionEmbeddings(MelodyBatches(
                [encoded[i] for i in val_rows], index[val_rows], max_len, config.batch_size, config.seed,
                (0, 0)), self.embeddings)
        except ValueError as e:
            raise UsageError(f"music data {config.data!r}: {e}") from None
        self.eval_batch_count = config.get("eval_batches", 8)
        self.tx = make_optimizer(config)
        self.graphdef = nnx.graphdef(nnx.eval_shape(lambda: self._build(nnx.Rngs(0))))
        log.info("%s: %d train / %d val tunes (%d not encodable, %d skipped by the parser), %d captions",
                 config.data, len(train), len(val), bad, sum(corpus.skipped.values()), len(self.captions))

    @property
    def model_dims(self) -> dict:
        """The data-dependent constructor arguments (what `zoo.models.build` takes as **dims)."""
        return {"vocab_size": encoding.VOCAB, "cond_dim": int(self.embeddings.shape[1])}

    def _build(self, rngs: nnx.Rngs) -> nnx.Module:
        return build(MelodyRNN, self.config, rngs, **self.model_dims)

    def init_state(self, key: jax.Array) -> dict:
        return init_model_state(self._build(nnx.Rngs(params=key)), self.tx)

    def train_step(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        return gradient_step(state, self.tx, lambda p: masked_loss(self.graphdef, p, batch, key))

    def eval_step(self, state: dict, batch: dict) -> dict:
        loss, metrics = masked_loss(self.graphdef, state["params"], batch, None)
        return {"loss": loss, **metrics, EVAL_WEIGHT: batch["mask"][:, 1:].sum()}  # means per event, not per batch

    def save_assets(self, directory: pathlib.Path, params: dict) -> None:
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        info = {"encoding_version": encoding.VERSION, "vocab_size": encoding.VOCAB,
                "ticks_per_quarter": encoding.TICKS_PER_QUARTER, "token_names": list(encoding.TOKEN_NAMES),
                "data": self.config.data, "num_training_captions": len(self.captions)}
        (directory / export.MUSIC).write_text(json.dumps(info, indent=1) + "\n")
        rows = self.notated_caption_rows
        (directory / export.MUSIC_CAPTIONS).write_text(json.dumps([self.captions[i] for i in rows], ensure_ascii=False)
                                               + "\n", encoding="utf-8")
        np.save(directory / export.CAPTION_EMBEDDINGS, self.embeddings[rows].astype(np.float16))


def build_task(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> MusicTask:
    return MusicTask(config, workdir)
