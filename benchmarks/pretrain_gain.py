"""What pretraining on general English buys a verse model: held-out verse, samples, and what it forgets.

    python -m benchmarks.pretrain_gain --arm verse-only=runs/poem-verse --arm pretrained=runs/poem-pretrain \\
        --arm fine-tuned=runs/poem [--poems-per-prompt 10] [--json [PATH]]

Each ARM is a name and an export (an export dir, a finished workdir, or `pretrained:NAME`). For each:

- held-out verse: bits per character on `verse-en`'s validation poems (the split every poem run holds
  out), over evenly spaced non-overlapping windows of the model's context, as the training loop evaluates;
  bits per character compares models whose tokenizers differ;
- held-out English: the same on `english`'s validation documents: how much of the general corpus a
  fine-tuned model still knows (its forgetting), beside the pretrained model's own figure;
- samples: poems at sample.py's default settings, PROMPTS x --poems-per-prompt seeds (50 by default).
  Judged by the dictionary-word share of the words the model wrote (not the prompt's), against SCOWL's
  169,564-word British English list (Debian `wbritish-large`), which has the words verse uses ("thee",
  "hath", "whither"): held-out verse itself scores 94% there, but only 87% against the 20,000 whole words of
  MiniLM's WordPiece vocabulary (selection_gain's judge, also reported), too few to tell verse from salad.
  And by their lines: words per line against the held-out verse's own.

The weights are the export's (bfloat16) widened to float32. Prints a Markdown table; --json writes every
figure (`--json` alone: benchmarks/results/pretrain_gain_cpu.json).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks import record
from benchmarks.selection_gain import dictionary_words
from zoo import cli, export, registry
from zoo import config as config_lib
from zoo.data import sources
from zoo.data.lm import TokenWindows
from zoo.errors import UsageError
from zoo.objectives.lm import lm_loss
from zoo.sample.lm import PoemSampler
from zoo.text import tokenizer as tokenizer_lib

PROMPTS = ("summer beach", "The sea", "Autumn leaves", "Love", "The night")
# The held-out split of each corpus is the one its training config holds out.
CONFIG_OF = {"verse-en": "poem.py", "english": "poem_pretrain.py"}
EVAL_BATCH = 32
WORD_LIST = Path("/usr/share/dict/british-english-large")
WORD_LIST_INSTALL = "sudo apt-get install wbritish-large"


def split(spec: str) -> tuple[list[str], list[str]]:
    """(training, validation) documents of a corpus, split as its training config splits it."""
    fraction = config_lib.load_config_file(registry.REPO_ROOT / "configs" / CONFIG_OF[spec]).val_fraction
    return sources.split_documents(sources.load_documents(spec), fraction)


def held_out(spec: str) -> list[str]:
    """The validation documents of a corpus: what no run of its config trained on."""
    return split(spec)[1]


def scowl_words() -> set[str]:
    """SCOWL's large British English word list, lower-cased, possessives and hyphenated entries dropped."""
    if not WORD_LIST.is_file():
        raise UsageError(f"the dictionary-word judge needs {WORD_LIST}: {WORD_LIST_INSTALL}")
    words = WORD_LIST.read_text("utf-8", errors="replace").split()
    return {w.lower() for w in words if w.isalpha() and w.isascii()}


def bits_per_char(sampler: PoemSampler, docs: Sequence[str]) -> float:
    """Cross-entropy in bits per character of `docs`: every document followed by end-of-text (one character
    more), scored in non-overlapping windows of the model's context, as zoo.objectives.lm evaluates."""
    ids = tokenizer_lib.encode_documents(sampler.tokenizer, docs)
    windows = TokenWindows(ids, sampler.context_length, EVAL_BATCH, seed=0)
    params = jax.tree.map(lambda x: x.astype(jnp.float32), sampler.params)
    loss_fn = jax.jit(lambda p, t: lm_loss(sampler.graphdef, p, t, None)[0])
    losses = [float(loss_fn(params, b["tokens"])) for b in windows.eval_batches(len(ids))]
    return statistics.fmean(losses) * len(ids) / sum(len(d) + 1 for d in docs) / math.log(2)


def words_per_line(texts: Sequence[str]) -> list[int]:
    """Words in each non-blank line of `texts`: verse keeps its lines short, prose runs on."""
    return [len(line.split()) for text in texts for line in text.split("\n") if line.strip()]


def sample_poems(sampler: PoemSampler, per_prompt: int) -> list[tuple[str, str]]:
    """(prompt, poem) pairs: per_prompt poems for each prompt, one draw of seed s per poem."""
    return [(p, sampler.sample(p, 1, seed)[0]) for p in PROMPTS for seed in range(per_prompt)]


def judge_samples(poems: Sequence[tuple[str, str]], dictionaries: dict[str, set[str]]) -> dict[str, float]:
    """Dictionary-word shares of what the model wrote (after each prompt) and the poems' line lengths."""
    written = [poem[len(prompt):] for prompt, poem in poems]
    words = [w for text in written for w in re.findall(r"[a-z]+", text.lower())]
    lines = words_per_line([poem for _, poem in poems])
    shares = {f"dictionary_share_{name}": sum(w in d for w in words) / max(1, len(words))
              for name, d in dictionaries.items()}
    return {**shares, "words": len(words), "lines": len(lines),
            "words_per_line_mean": statistics.fmean(lines) if lines else float("nan"),
            "words_per_line_median": statistics.median(lines) if lines else float("nan"),
            "long_lines": sum(n > 14 for n in lines) / max(1, len(lines))}


def run(arms: dict[str, str], per_prompt: int) -> dict[str, Any]:
    verse, english = held_out("verse-en"), held_out("english")
    dictionaries = {"scowl": scowl_words(), "minilm": dictionary_words()}
    out: dict[str, Any] = {"prompts": list(PROMPTS), "poems_per_prompt": per_prompt, "arms": {},
                           "verse_reference": judge_samples([("", d) for d in verse], dictionaries)}
    for name, source in arms.items():
        directory = export.resolve(source)
        sampler = PoemSampler(directory)
        poems = sample_poems(sampler, per_prompt)
        out["arms"][name] = {"export": source, "vocab": len(sampler.tokenizer),
                             "verse_bits_per_char": bits_per_char(sampler, verse),
                             "english_bits_per_char": bits_per_char(sampler, english),
                             **judge_samples(poems, dictionaries),
                             "example": poems[per_prompt][1]}  # "The sea", seed 0
    return out


def report(out: dict[str, Any]) -> str:
    ref = out["verse_reference"]
    n = len(out["prompts"]) * out["poems_per_prompt"]
    rows = ["| model | held-out verse, bits/char | held-out English, bits/char | dictionary words, SCOWL "
            f"({n} poems) | MiniLM's words | words per line | lines over 14 words |",
            "|---|---|---|---|---|---|---|"]
    for name, a in [*out["arms"].items(), ("held-out verse itself", {"verse_bits_per_char": math.nan,
                                                                      "english_bits_per_char": math.nan, **ref})]:
        bits = [f"{a[k]:.3f}" if math.isfinite(a[k]) else "" for k in ("verse_bits_per_char", "english_bits_per_char")]
        rows.append(f"| {name} | {' | '.join(bits)} | {100 * a['dictionary_share_scowl']:.1f}% | "
                    f"{100 * a['dictionary_share_minilm']:.1f}% | {a['words_per_line_mean']:.1f} | "
                    f"{100 * a['long_lines']:.1f}% |")
    return "\n".join(rows)


def _arm(text: str) -> tuple[str, str]:
    name, sep, source = text.partition("=")
    if not sep or not name or not source:
        raise UsageError(f"--arm {text!r}: expected NAME=EXPORT, e.g. fine-tuned=runs/poem")
    return name, source


def main(argv: Sequence[str]) -> None:
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arm", action="append", required=True, metavar="NAME=EXPORT")
    parser.add_argument("--poems-per-prompt", type=int, default=10)
    parser.add_argument("--json", nargs="?", const="", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    if args.poems_per_prompt < 1:
        raise UsageError("--poems-per-prompt must be at least 1")
    result = run(dict(_arm(a) for a in args.arm), args.poems_per_prompt)
    print(report(result))
    if args.json is not None:
        record.write(Path(args.json) if args.json else record.RESULTS / "pretrain_gain_cpu.json", result)


if __name__ == "__main__":
    cli.run(main)
