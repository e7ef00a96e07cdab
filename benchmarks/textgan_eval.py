"""Quality and diversity of text-GAN generators: BLEU, Self-BLEU, NLL_gen and form, against real poems.

    python -m benchmarks.textgan_eval --checkpoint runs/textgan-mle --checkpoint zoo/pretrained/textgan
                                      [--samples 1000] [--seed 0] [--json [PATH]]

Each checkpoint (an export dir or finished workdir of `textgan`) draws `--samples` poems with no opening
at temperature 1, or at each of `--temperature T ...` (TextGANSampler.generate_rows, seed `--seed`): a
lower temperature trades diversity for BLEU just as a GAN does, so an MLE row at the temperature whose
Self-BLEU matches the GAN's is the fair comparison (Caccia et al. 2018, "Language GANs falling short").
Figures, as Texygen (Zhu et al. 2018) defines them (zoo.metrics.bleu; units: a quatrain's Han characters, a
verse line's words):

* BLEU-2..4: each sample against ALL test poems as references, averaged (quality; higher is closer to
  the test set's n-gram statistics).
* Self-BLEU-2..4: each sample against all other samples (diversity; lower is more diverse).
* NLL_gen: the generator's negative log-likelihood of every test poem, nats per token (how much of the
  real distribution the generator still covers; lower is better).
* form: the share of samples that are well-formed (quatrains: 4 lines of 5 Han characters, each with its
  punctuation mark; verse lines: ended by the end token within the length).
* copied: the share of samples that are verbatim training poems (memorisation).
* distinct: the share of distinct samples.

Reference row "real": as many TRAINING poems (a fixed random subset, disjoint from the test set) scored
the same way: what a generator drawing exactly from the data distribution would get.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from zoo import allocator
from zoo.data import poem_forms
from zoo.errors import UsageError
from zoo.metrics.bleu import bleu, self_bleu
from zoo.text import forms

ORDERS = (2, 3, 4)
REAL_SEED = 3
NLL_BATCH = 256


def text_figures(texts: Sequence[str], form: str, test: Sequence[str], train: set[str]) -> dict:
    """BLEU/Self-BLEU/form/copied/distinct of `texts` (raw texts, quatrains without line breaks)."""
    units = [forms.words(t, form) for t in texts]
    refs = [forms.words(t, form) for t in test]
    well_formed = [forms.is_quatrain(t) if form == "quatrains" else 0 < len(t) for t in texts]
    return {"bleu": bleu(units, refs, ORDERS), "self_bleu": self_bleu(units, ORDERS),
            "form": float(np.mean(well_formed)), "copied": float(np.mean([t in train for t in texts])),
            "distinct": len(set(texts)) / len(texts), "examples": [forms.layout(t, form) for t in texts[:5]]}


def nll_gen(sampler, test: Sequence[str]) -> float:
    """Nats per token of the generator on every test poem."""
    from zoo.objectives.textgan import masked_nll

    rows = poem_forms.encode_fixed(sampler.tokenizer, test, sampler.length)
    fn = jax.jit(masked_nll, static_argnums=0)
    total = weight = 0.0
    for i in range(0, len(rows), NLL_BATCH):
        chunk = rows[i:i + NLL_BATCH]
        mask = np.arange(NLL_BATCH) < len(chunk)
        padded = np.concatenate([chunk, np.repeat(chunk[:1], NLL_BATCH - len(chunk), 0)])
        out = fn(sampler.graphdef, sampler.params, jnp.asarray(padded), jnp.asarray(sampler.bias), jnp.asarray(mask))
        total += float(out["loss"]) * float(out["weight"])
        weight += float(out["weight"])
    return total / weight


def evaluate(checkpoints: Sequence[Path], samples: int, seed: int, temperatures: Sequence[float] = (1.0,)) -> dict:
    from zoo import export
    from zoo.sample.textgan import TextGANSampler  # deferred: loads the model stack

    results, poems = [], None
    for checkpoint in checkpoints:
        start = time.perf_counter()
        sampler = TextGANSampler(export.find_export(checkpoint))
        if poems is None:
            poems = poem_forms.load_poem_set(sampler.form, sampler.config.get("test_fraction", 0.1),
                                             sampler.config.get("max_chars", 48))
        elif poems.form != sampler.form:
            raise UsageError(f"{checkpoint} models {sampler.form}, not {poems.form}: compare like with like")
        nll = nll_gen(sampler, poems.test)
        for temperature in temperatures:
            t0 = time.perf_counter()
            rows = sampler.generate_rows("", samples, seed, temperature=temperature)
            sample_s = time.perf_counter() - t0
            texts = sampler.texts(rows)
            name = str(checkpoint) if temperature == 1.0 else f"{checkpoint} at T={temperature:g}"
            results.append({"name": name, "temperature": temperature, "samples": samples,
                            **text_figures(texts, poems.form, poems.test, set(poems.train)), "nll_gen": nll,
                            "sample_s": sample_s, "seconds": time.perf_counter() - start})
    assert poems is not None
    pick = np.random.default_rng(REAL_SEED).permutation(len(poems.train))[:samples]
    real = [poems.train[i] for i in pick]
    results.append({"name": f"real ({len(real)} training poems)", "samples": len(real),
                    **text_figures(real, poems.form, poems.test, set()), "nll_gen": None})
    results[-1]["copied"] = None
    return {"form": poems.form, "test_poems": len(poems.test), "train_poems": len(poems.train), "seed": seed,
            "rows": results}


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def report(out: dict) -> str:
    lines = [f"{out['form']}: BLEU against the {out['test_poems']} test poems; seed {out['seed']}", "",
             "| generator | BLEU-2 | BLEU-3 | BLEU-4 | Self-BLEU-2 | Self-BLEU-3 | Self-BLEU-4 | NLL_gen | form | "
             "distinct | copied |", "|---" * 11 + "|"]
    for r in out["rows"]:
        b, s = r["bleu"], r["self_bleu"]
        lines.append(f"| {r['name']} ({r['samples']}) | {_f(b[2])} | {_f(b[3])} | {_f(b[4])} | {_f(s[2])} | "
                     f"{_f(s[3])} | {_f(s[4])} | {_f(r['nll_gen'])} | {r['form']:.1%} | {r['distinct']:.1%} | "
                     f"{'-' if r['copied'] is None else format(r['copied'], '.1%')} |")
    for r in out["rows"]:
        lines += ["", f"{r['name']}:", *("  " + e.replace("\n", " / ") for e in r["examples"])]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", required=True, type=Path)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, nargs="+", default=[1.0],
                        help="sampling temperatures, each a row per checkpoint (NLL_gen does not depend on it)")
    parser.add_argument("--json", type=Path, default=None, nargs="?", const=True,
                        help="also write every figure here (no PATH: benchmarks/results/eval_textgan_DEVICE.json)")
    args = parser.parse_args(argv)
    try:
        if args.samples < 2:
            raise UsageError("--samples must be at least 2")
        if min(args.temperature) <= 0:
            raise UsageError("--temperature must be positive")
        out = evaluate(args.checkpoint, args.samples, args.seed, args.temperature)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(report(out))
    if args.json is True:  # --json alone: the name docs/benchmarks.md quotes
        args.json = Path(__file__).resolve().parent / "results" / f"eval_textgan_{jax.default_backend()}.json"
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    allocator.restart_with_fast_malloc()  # as train.py runs
    main()
