"""Supervised classification: the objective of the critics' models (the `classify` family).

Two inputs, one loss (softmax cross-entropy over the labels):
- `input="text"`: poems labelled with an emotion by a lexicon rule (zoo.data.emotion, the lexicon's `label`
  half), read by a pretrained encoder (`config.backbone`) of which only the top `model.trainable_layers`
  blocks and the head are fine-tuned. `balanced=True` weighs each class equally in the loss (Tang poems
  are 58% "like"). The frozen rest stays in the state, out of the optimizer, and out of
  the export. "Pretrain, then fine-tune": the base's weights come in through `Task.pretrained`.
- `input="image"`: an image dataset's class labels (zoo.data.images), a small CNN trained from scratch.

Held-out examples, never trained on (poems: a hash split by corpus document; images: the dataset's test
split), give eval/accuracy during training, and at export the held-out table in classes.json: accuracy,
the majority-class baseline, the balanced accuracy and each class's recall.
"""

from __future__ import annotations

import importlib.metadata
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
from zoo.data import emotion, sources
from zoo.data.batching import ArrayBatches
from zoo.data.images import load_images
from zoo.errors import UsageError
from zoo.models import build
from zoo.models.classify import ImageClassifier, TextClassifier, merge_params, split_params
from zoo.objectives.common import SingleModelTask, gradient_step, top1_correct
from zoo.train.optim import make_optimizer
from zoo.train.task import EVAL_WEIGHT

log = logging.getLogger(__name__)
INPUTS = ("text", "image")


def classify_loss(graphdef: nnx.GraphDef, params: dict, batch: dict, key: jax.Array | None
                  ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Cross-entropy (each row weighted by its `weight`, if any: class balancing) and accuracy, means over
    the batch's real rows (`mask`, 1 where absent)."""
    model = nnx.merge(graphdef, params)
    rngs = None if key is None else nnx.Rngs(dropout=key)
    inputs = (batch["tokens"], batch["token_mask"]) if "tokens" in batch else (batch["image"],)
    logits = model(*inputs, deterministic=key is None, rngs=rngs)
    real = batch.get("mask", jnp.ones(logits.shape[0]))
    total = jnp.maximum(real.sum(), 1.0)
    weight = real * batch.get("weight", jnp.ones(logits.shape[0]))
    loss = (optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]) * weight).sum() / total
    accuracy = (top1_correct(logits, batch["label"]) * real).sum() / total
    return loss, {"accuracy": accuracy}


class ClassifyTask(SingleModelTask):
    """Labelled texts or images, a classifier, and its held-out report, for the shared loop."""

    family = "classify"

    def __init__(self, config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
        if config.input not in INPUTS:
            raise UsageError(f"unknown classifier input {config.input!r}; choose one of: {', '.join(INPUTS)}")
        self.config = config
        self.backbone: export.Backbone | None = None
        if config.input == "text":
            train, val = self._text_examples(config)
        else:
            train, val = self._image_examples(config)
        counts = np.bincount(train["label"], minlength=len(self.labels))
        if config.get("balanced", False):  # every class weighs as much in the loss, whatever its count
            train["weight"] = (len(train["label"]) / (len(counts) * np.maximum(counts, 1)))[train["label"]]
            train["weight"] = train["weight"].astype(np.float32)
        self.train_data = ArrayBatches(train, config.batch_size, config.seed)
        self.val_data = ArrayBatches(val, config.batch_size, config.seed, stream=2)
        self.val_labels = val["label"]
        self.eval_batch_count = config.get("eval_batches", 8)
        self.tx = make_optimizer(config)
        self.graphdef = nnx.graphdef(nnx.eval_shape(lambda: self._build(nnx.Rngs(0))))
        log.info("%s: %d train / %d held-out examples; train labels %s", config.data, len(train["label"]),
                 len(val["label"]), dict(zip(self.labels, counts.tolist(), strict=True)))

    def _text_examples(self, config: ml_collections.ConfigDict) -> tuple[dict, dict]:
        language = config.data.removeprefix("emotion:")
        by_document = emotion.poems(language)
        train_docs, val_docs = sources.split_documents(list(by_document), config.get("val_fraction", 0.1))
        self.labels = list(emotion.EMOTIONS[language])
        self.backbone = export.load_backbone(config.backbone, config.max_tokens)
        self.model_class, self.dims = TextClassifier, {"backbone": self.backbone.kind, "encoder": self.backbone.encoder}

        def columns(docs: list[str]) -> tuple[dict[str, np.ndarray], list[str]]:
            texts = [t for d in docs for t in by_document[d]]
            labels = emotion.labels(texts, language, "label")
            texts = [t for t, y in zip(texts, labels, strict=True) if y >= 0]
            ids, mask = self.backbone.encode(texts)
            return {"tokens": ids, "token_mask": mask, "label": labels[labels >= 0]}, texts

        (train, _), (val, self.val_inputs) = columns(train_docs), columns(val_docs)
        return train, val

    def _image_examples(self, config: ml_collections.ConfigDict) -> tuple[dict, dict]:
        data = load_images(config.data)
        self.labels = list(data.class_names)
        self.model_class, self.dims = ImageClassifier, {"in_channels": int(data.train_images.shape[-1])}
        self.image_shape = list(data.train_images.shape[1:])

        def columns(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
            return {"image": images.astype(np.float32) / 255, "label": labels.astype(np.int32)}

        self.val_inputs = data.test_images
        return (columns(data.train_images, data.train_labels), columns(data.test_images, data.test_labels))

    def _build(self, rngs: nnx.Rngs) -> TextClassifier | ImageClassifier:
        return build(self.model_class, self.config, rngs, num_classes=len(self.labels), **self.dims)

    def init_state(self, key: jax.Array) -> dict:
        model = self._build(nnx.Rngs(params=key))
        trainable, frozen = split_params(model, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
        return {"params": trainable, "frozen": frozen, "opt_state": self.tx.init(trainable)}

    def pretrained(self) -> dict | None:
        """The backbone's pretrained params (host arrays), which `load_pretrained` puts under the head."""
        return None if self.backbone is None else {"encoder": self.backbone.params}

    def load_pretrained(self, state: dict, pretrained: dict) -> dict:
        whole = {**merge_params(state["params"], state["frozen"]), "encoder": pretrained["encoder"]}
        trainable, frozen = split_params(nnx.eval_shape(lambda: self._build(nnx.Rngs(0))), whole)
        return {"params": trainable, "frozen": frozen, "opt_state": self.tx.init(trainable)}

    def train_step(self, state: dict, batch: dict, key: jax.Array) -> tuple[dict, dict]:
        frozen = state["frozen"]
        new, metrics = gradient_step(
            state, self.tx, lambda p: classify_loss(self.graphdef, merge_params(p, frozen), batch, key))
        return {**new, "frozen": frozen}, metrics

    def eval_step(self, state: dict, batch: dict) -> dict:
        params = merge_params(state["params"], state["frozen"])
        loss, metrics = classify_loss(self.graphdef, params, batch, None)
        return {"loss": loss, **metrics, EVAL_WEIGHT: batch["mask"].sum()}

    def load_params(self, state: dict, params: dict) -> dict:
        return {"params": params, "frozen": state["frozen"], "opt_state": self.tx.init(params)}

    def held_out(self, params: dict) -> dict:
        """Accuracy on every held-out example against the rule's labels, the majority-class baseline (always
        answering the commonest training label) and each class's recall and count."""
        frozen = {"encoder": self.backbone.params} if self.backbone is not None else {}
        whole = jax.tree.map(lambda x: np.asarray(x, np.float32), merge_params(params, frozen))
        classifier = export.Classifier(self.graphdef, whole, {"labels": self.labels}, self.backbone)
        probs = classifier.probabilities(self.val_inputs)
        truth = self.val_labels
        predicted = probs.argmax(-1)
        majority = int(np.bincount(self.train_data.columns["label"]).argmax())
        recall = {name: round(float((predicted[truth == i] == i).mean()), 4) if (truth == i).any() else None
                  for i, name in enumerate(self.labels)}
        return {"examples": int(len(truth)), "accuracy": round(float((predicted == truth).mean()), 4),
                "majority_class": self.labels[majority],
                "majority_accuracy": round(float((truth == majority).mean()), 4),
                "balanced_accuracy": round(float(np.mean([r for r in recall.values() if r is not None])), 4),
                "recall": recall, "count": {n: int((truth == i).sum()) for i, n in enumerate(self.labels)}}

    def save_assets(self, directory: pathlib.Path, params: dict) -> None:
        info = {"input": self.config.input, "data": self.config.data, "labels": self.labels,
                "held_out": self.held_out(params)}
        if self.backbone is not None:
            language = self.config.data.removeprefix("emotion:")
            info.update(backbone=self.backbone.spec, backbone_fingerprint=self.backbone.fingerprint,
                        max_tokens=self.backbone.max_tokens, language=language, lexicon_half="label")
            if language == "zh":  # its t2s table decides which lexicon words a poem holds
                info["opencc"] = importlib.metadata.version("opencc")
        else:
            info["image_shape"] = self.image_shape
        (pathlib.Path(directory) / export.CLASSES).write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n",
                                                             encoding="utf-8")


def build_task(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> ClassifyTask:
    return ClassifyTask(config, workdir)
