"""Fine-tuning on what a person kept: the settings a folder of their own files gets.

A config is written for its corpus: thousands of poems, tunes or pictures and thousands of steps. On a
folder of 30 kept samples those steps are hundreds of epochs, the model learns the folder by heart and
forgets the rest. So when `config.data` is a person's folder (`text:`, `midi:`, `images:`) and the command
line does not set them itself, `adapt` sets (for up to `MAX_ITEMS` items; more is a corpus of one's own,
trained with the config's settings):

- `train_steps`: `EPOCHS` passes over the training items (at least `MIN_STEPS`, at most the config's own);
- `eval_every` and `checkpoint_every`: one pass;
- `early_stop`: `PATIENCE` evaluations on the held-out item(s) without a better loss end the run, and the
  export keeps the best step (zoo/train/loop.py);
- `warmup_steps`: at most a tenth of the run;
- `latent_mixture_components` (a VAE's per-class sampling mixture): 1, a Gaussian per class;
- `learning_rate`: `FINETUNE_LR` of the config's when the run starts from a trained model (`init_from`):
  the configs' rates are for training from scratch, and at full rate 30 kept jigs pull `music`'s held-out
  loss on them up after 6 steps instead of down (0.743 -> 0.698 at a tenth).

The batches already come epoch by epoch (each item once per pass, zoo.data.batching.EpochOrder), and
every family holds out at least one item once there are two. What was chosen is logged, and saved in the
run's config.json like any setting.
"""

from __future__ import annotations

import math

import ml_collections

from zoo.errors import UsageError

USER_PREFIXES = ("text:", "midi:", "images:")
EPOCHS = 30
MIN_STEPS = 60
PATIENCE = 4
MAX_ITEMS = 500  # more than this is a corpus, trained with the config's own settings
FINETUNE_LR = 0.1


def count_items(spec: str) -> int | None:
    """The items (documents, tunes, pictures) in a person's folder spec; None for a corpus."""
    if spec.startswith("text:"):
        from zoo.data.sources import load_documents

        return len(load_documents(spec))
    if spec.startswith(("midi:", "images:")):
        from zoo.data.kept import list_files

        return len(list_files(spec))
    return None


def adapt(config: ml_collections.ConfigDict, overridden: set[str]) -> list[str]:
    """Sets the small-set settings on `config` in place (see the module docstring); returns what it set."""
    spec = str(config.get("data", ""))
    if not spec.startswith(USER_PREFIXES):
        return []
    items = count_items(spec)
    if not items:
        raise UsageError(f"{spec} is empty: nothing to fine-tune on")
    if items > MAX_ITEMS:  # a corpus of one's own, not a handful of kept samples: the config's settings
        return []
    if spec.startswith("text:"):  # an LM reads windows of tokens: count a document as one row
        per_epoch = max(1, math.ceil(items / config.batch_size))
    else:
        per_epoch = max(1, math.ceil(max(1, items - 1) / config.batch_size))
    chosen = {"train_steps": min(config.train_steps, max(MIN_STEPS, EPOCHS * per_epoch))}
    chosen["eval_every"] = max(1, min(chosen["train_steps"] // 10, max(per_epoch, MIN_STEPS // 10)))
    chosen["checkpoint_every"] = chosen["eval_every"]
    chosen["early_stop"] = PATIENCE
    if "warmup_steps" in config:
        chosen["warmup_steps"] = min(config.warmup_steps, chosen["train_steps"] // 10)
    if config.get("init_from"):
        chosen["learning_rate"] = config.learning_rate * FINETUNE_LR
    if config.get("latent_mixture_components", 0) > 1:  # a VAE's per-class mixture needs many pictures a class
        chosen["latent_mixture_components"] = 1
    notes = []
    for key, value in chosen.items():
        if key in overridden:
            continue
        config[key] = value
        notes.append(f"{key}={value}")
    if not notes:
        return []
    return [f"{spec} holds {items} items: a small set, so {', '.join(notes)} (set any of them with --config.KEY)"]
