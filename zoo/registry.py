"""Model name -> where its config, model, objective (training task) and sampler live.

Entries are import strings so that `sample.py --model nonsense` answers instantly, without importing JAX.
Adding a model family means one file named after it in each of zoo/models, zoo/objectives and zoo/sample,
its files in zoo.export.FAMILY_FILES, a config and one entry here (docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
from typing import Any

from zoo.errors import UsageError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    config: str  # file under configs/
    model: str  # "module:Class", an NNX module
    task: str  # "module:factory(config, workdir) -> Task": loss, steps and data for the training loop
    sampler: str  # "module:factory(export_dir) -> Sampler"
    output: str  # what the sampler writes: "txt", "png", "mid"
    summary: str  # one line for `sample.py --help`

    @property
    def config_path(self) -> pathlib.Path:
        return REPO_ROOT / "configs" / self.config

    @property
    def pretrained_dir(self) -> pathlib.Path:
        from zoo.export import PRETRAINED_DIR  # deferred: the registry answers without JAX

        return PRETRAINED_DIR / self.name


MODELS: dict[str, Entry] = {
    e.name: e
    for e in [
        Entry("poem", "poem.py", "zoo.models.lm:GPT", "zoo.objectives.lm:build_task",
              "zoo.sample.lm:PoemSampler", "txt",
              "English verse from a GPT (prompt: its opening words)"),
        Entry("poem-pretrain", "poem_pretrain.py", "zoo.models.lm:GPT", "zoo.objectives.lm:build_task",
              "zoo.sample.lm:PoemSampler", "txt",
              "general English (plays, the Bible, the Brown corpus): the GPT `poem` is fine-tuned from; "
              "not embedded, train it first"),
        Entry("poem-zh", "poem_zh.py", "zoo.models.lm:GPT", "zoo.objectives.lm:build_task",
              "zoo.sample.lm:PoemSampler", "txt",
              "Tang-style Chinese verse from a GPT (prompt: its opening characters, e.g. 春江)"),
        Entry("textgan", "textgan.py", "zoo.models.textgan:TextGAN", "zoo.objectives.textgan:build_task",
              "zoo.sample.textgan:TextGANSampler", "txt",
              "five-character Tang quatrains from a Gumbel-softmax GAN (prompt: up to 5 opening characters)"),
        Entry("music", "music.py", "zoo.models.music:MelodyRNN", "zoo.objectives.music:build_task",
              "zoo.sample.music:MelodySampler", "mid",
              "folk melodies as MIDI from an LSTM conditioned on the prompt's meaning (any English words)"),
        Entry("dcgan", "dcgan.py", "zoo.models.dcgan:DCGAN", "zoo.objectives.dcgan:build_task",
              "zoo.sample.images:DCGANSampler", "png",
              "32x32 Fashion-MNIST images (28x28, padded) from a conditional DCGAN (prompt: a garment, e.g. \"boot\")"),
        Entry("vae", "vae.py", "zoo.models.vae:ConvVAE", "zoo.objectives.vae:build_task",
              "zoo.sample.images:VAESampler", "png",
              "28x28 Fashion-MNIST images from a conditional VAE (prompt: a garment, e.g. \"sneaker\")"),
        Entry("dcgan-emoji", "dcgan_emoji.py", "zoo.models.dcgan:DCGAN", "zoo.objectives.dcgan:build_task",
              "zoo.sample.images:DCGANSampler", "png",
              "64x64 colour pictures of any prompt (emoji art of ~1,900 concepts, 5 styles) from a conditional "
              "DCGAN, e.g. \"summer beach\""),
        Entry("vae-emoji", "vae_emoji.py", "zoo.models.vae:ConvVAE", "zoo.objectives.vae:build_task",
              "zoo.sample.images:VAESampler", "png",
              "64x64 colour pictures of any prompt (emoji art of ~1,900 concepts, 5 styles) from a conditional VAE"),
        # The critics' classifiers: trained by train.py like any family, used by sample.py's --emotion and
        # --candidates, and write nothing of their own.
        Entry("emotion-en", "emotion_en.py", "zoo.models.classify:TextClassifier",
              "zoo.objectives.classify:build_task", "", "label",
              "the emotion of an English poem (MiniLM fine-tuned on NRC labels): poem --emotion"),
        Entry("emotion-zh", "emotion_zh.py", "zoo.models.classify:TextClassifier",
              "zoo.objectives.classify:build_task", "", "label",
              "the emotion of a Tang poem (poem-zh's GPT fine-tuned on DUTIR labels): poem-zh --emotion"),
        Entry("fashion-critic", "fashion_critic.py", "zoo.models.classify:ImageClassifier",
              "zoo.objectives.classify:build_task", "", "label",
              "the garment in a Fashion-MNIST image: dcgan and vae --candidates"),
    ]
}


def get(name: str) -> Entry:
    if name not in MODELS:
        raise UsageError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name]


def load_sampler(entry: Entry) -> Any:
    """The sampler factory of `entry`; a UsageError (not an ImportError) while its family has none yet."""
    if not entry.sampler:
        raise UsageError(f"{entry.name} is a critic and writes no samples: {entry.summary.split(': ')[-1]}")
    if importlib.util.find_spec(entry.sampler.split(":")[0]) is None:
        raise UsageError(f"sampling for {entry.name} is not available yet")
    return resolve(entry.sampler)


def resolve(target: str) -> Any:
    """Imports "package.module:attribute"."""
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)
