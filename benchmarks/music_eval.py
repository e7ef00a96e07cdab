"""Evaluation of the text-conditioned folk-melody model (`music`): held-out likelihood and prompt control.

    python -m benchmarks.music_eval [--checkpoint zoo/pretrained/music] [--samples 50] [--seed 0]
                                    [--conditioning prompt|neighbours|blend|all] [--json [PATH]]

Prints Markdown tables; `--json PATH` also writes every figure (`--json` alone:
benchmarks/results/eval_music_DEVICE.json). The tunes are those the export was trained on (its config's
`data`, `max_tunes`, `val_fraction`), split exactly as training split them.

Figures
-------
* Held-out NLL (nats/event): mean next-event cross-entropy on the validation tunes, whole tunes in their
  notated key, conditioned on the embedding of `caption(tune)`; targets are every token after BOS, EOS
  included (training's eval crops tunes to `max_len`, so its eval/loss differs slightly). Beside it, on
  the same targets, add-0.1 unigram and bigram models fit on the training tunes' tokens: the model should
  beat the bigram clearly. exp(unigram NLL) is about the number of tokens in common use. Accuracy: share
  of events whose most likely token (argmax) is the true one.
* Reference (the analysis itself errs): music21's key analysis (`analyze('key')`, Aarden-Essen) of real
  tunes; recall = share of the tunes notated minor (major) that it analyses as minor (major). The pool is
  the validation tunes, topped up to 100 tunes per mode with training tunes of that mode (a fixed random
  sample) when the validation tunes hold fewer. In-key share = share of notes whose pitch class is in the
  analysed key's scale, on a fixed random sample of 300 training tunes.
* Prompt control, per conditioning ("prompt": the prompt's embedding; "neighbours": the mean of its
  nearest training captions; "blend": their normalised sum, see zoo/sample/music.py) and per prompt,
  over `--samples` 16-bar melodies at the sampler's default temperature: share analysed minor / major,
  share whose header (the KEY token the model chose) says minor / major, share in 6/8 and in any compound
  meter (6/8, 9/8, 12/8), the commonest header keys, and the in-key note share. Criterion (must hold for
  the model to count as steerable): minor prompts: share analysed minor / reference minor recall >= 0.90;
  major prompts likewise with major; jig prompts: 6/8 share >= 0.75. "summer beach" has no criterion: its
  nearest captions and what its melodies turned out to be show how a prompt without musical words is read.
* Timing: wall time of the whole evaluation, and sampling speed in melodies/s (all calls, and without
  the first, which compiles the sampler).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from zoo import allocator
from zoo.data import music as music_data
from zoo.melody import encoding
from zoo.objectives.music import encodable_tunes, masked_loss
from zoo.sample.music import CONDITIONINGS, MelodySampler

PROMPTS = (("a sad air in A minor", "minor"), ("a reel in E minor", "minor"), ("a jig in D minor", "minor"),
           ("a reel in D major", "major"), ("a hornpipe in G major", "major"), ("a jig in C major", "major"),
           ("a jig", "jig"), ("a lively Irish jig", "jig"), ("summer beach", "free"))
FREE_PROMPT = "summer beach"
MODE_RATIO, JIG_SHARE = 0.90, 0.75  # must-show thresholds
COMPOUND = ("6/8", "9/8", "12/8")
BARS, BATCH, SMOOTHING = 16, 32, 0.1
REFERENCE_TUNES, REFERENCE_MIN, REFERENCE_SEED = 300, 100, 0


def held_out_split(config: Any) -> tuple[list[music_data.Tune], list[music_data.Tune]]:
    """(train, validation) tunes exactly as zoo.objectives.music.MusicTask made them, so the held-out
    figures are on tunes the model never saw."""
    _, tunes, _, _ = encodable_tunes(config)
    return music_data.split_tunes(tunes, config.get("val_fraction", 0.05))


def model_nll(sampler: MelodySampler, tunes: Sequence[music_data.Tune]) -> tuple[float, float, int]:
    """(NLL nats/event, next-event accuracy, events) of the model on whole tunes, with training's own loss
    (`masked_loss`) on length-sorted batches padded to power-of-two lengths, so XLA compiles a few shapes."""
    encoded = [encoding.encode(t) for t in tunes]
    order = sorted(range(len(tunes)), key=lambda i: len(encoded[i]))
    # float16 round trip: training conditioned on the float16 caption table (embed_captions)
    cond = sampler.encoder.embed([music_data.caption(tunes[i]) for i in order]).astype(np.float16)
    forward = jax.jit(lambda params, batch: masked_loss(sampler.graphdef, params, batch, None))
    sums = np.zeros(3)  # nll, correct, events
    for start in range(0, len(order), BATCH):
        chunk = [encoded[i] for i in order[start:start + BATCH]]
        width = max(64, 1 << (max(map(len, chunk)) - 2).bit_length()) + 1  # inputs: a power of two
        batch = {"tokens": np.zeros((BATCH, width), np.int32), "mask": np.zeros((BATCH, width), np.float32),
                 "cond": np.zeros((BATCH, cond.shape[1]), np.float32)}
        for row, seq in enumerate(chunk):
            batch["tokens"][row, :len(seq)], batch["mask"][row, :len(seq)] = seq, 1.0
        batch["cond"][:len(chunk)] = cond[start:start + BATCH]
        count = float(batch["mask"][:, 1:].sum())
        loss, metrics = forward(sampler.params, batch)
        sums += (float(loss) * count, float(metrics["accuracy"]) * count, count)
    nll_sum, correct, events = sums
    return float(nll_sum / events), float(correct / events), int(events)


def ngram_baselines(train: Sequence[np.ndarray], val: Sequence[np.ndarray], k: float = SMOOTHING) -> dict:
    """NLL and accuracy of add-k unigram and bigram models fit on the training tokens, on the model's
    targets: the floor a caption-conditioned LSTM has to clear to have learnt more than local statistics."""
    vocab = encoding.VOCAB
    unigram, bigram = np.full(vocab, k), np.full((vocab, vocab), k)
    for seq in train:
        np.add.at(unigram, seq[1:], 1.0)
        np.add.at(bigram, (seq[:-1], seq[1:]), 1.0)
    unigram, bigram = unigram / unigram.sum(), bigram / bigram.sum(axis=1, keepdims=True)
    prev, target = np.concatenate([s[:-1] for s in val]), np.concatenate([s[1:] for s in val])
    return {"unigram": float(-np.log(unigram[target]).mean()), "bigram": float(-np.log(bigram[prev, target]).mean()),
            "unigram_accuracy": float((target == unigram.argmax()).mean()),
            "bigram_accuracy": float((bigram.argmax(axis=1)[prev] == target).mean()), "events": int(target.size)}


def analyse(melody: encoding.Melody) -> tuple[str, str, int, int]:
    """(analysed mode, analysed key, notes in its scale, notes) of one melody by music21's key analysis
    (what `stream.analyze('key')` answers)."""
    from music21 import key as m21key
    from music21.analysis.discrete import AardenEssen

    from zoo.critics.music import note_stream

    pitches = [p % 12 for p, _ in melody.notes if p is not None]
    if not pitches:
        return "none", "none", 0, 0
    part = note_stream(melody)
    # = part.analyze("key") (AardenEssen().getSolution) without its 24 alternative Key objects: ~3x faster
    (tonic, mode, _), _color = AardenEssen().process(part)
    key = m21key.Key(tonic, mode)
    scale = {p.pitchClass for p in key.pitches}
    return key.mode, f"{key.tonic.name.replace('-', 'b')} {key.mode}", sum(p in scale for p in pitches), len(pitches)


def reference(val: Sequence[music_data.Tune], train: Sequence[music_data.Tune]) -> dict:
    """How often the key analysis recognises the notated mode of real tunes (the ceiling for the prompt
    criterion: a model cannot be asked to beat its judge), and real tunes' in-key note share."""
    shuffled = [train[i] for i in np.random.default_rng(REFERENCE_SEED).permutation(len(train))]
    sample, pool = shuffled[:REFERENCE_TUNES], list(val)
    for mode in ("minor", "major"):  # top up a mode the validation tunes hold too few of, for a stable recall
        pool += [t for t in shuffled if t.mode == mode][:max(0, REFERENCE_MIN - sum(t.mode == mode for t in val))]
    results = {id(t): analyse(t.melody) for t in {id(t): t for t in pool + sample}.values()}
    extra = len(pool) - len(val)
    out: dict[str, Any] = {"pool": f"validation + {extra} training tunes" if extra else "validation"}
    for mode in ("minor", "major"):
        hits = [results[id(t)][0] == mode for t in pool if t.mode == mode]
        out[f"{mode}_recall"], out[f"{mode}_tunes"] = (float(np.mean(hits)) if hits else math.nan), len(hits)
    for mode in ("all", "minor", "major"):
        chosen = [results[id(t)] for t in sample if mode in ("all", t.mode)]
        out[f"in_key_{mode}"] = sum(r[2] for r in chosen) / max(1, sum(r[3] for r in chosen))
    out["in_key_tunes"] = len(sample)
    return out


def prompt_stats(melodies: Sequence[encoding.Melody], group: str, ref: dict) -> dict:
    """What `melodies` sampled for one prompt turned out to be, and whether the prompt's criterion holds."""
    analyses = [analyse(m) for m in melodies]
    n = max(1, len(melodies))
    share = lambda hits: sum(hits) / n  # noqa: E731
    stats = {"samples": len(melodies),
             "analysed_minor": share(a[0] == "minor" for a in analyses),
             "analysed_major": share(a[0] == "major" for a in analyses),
             "header_minor": share(m.mode == "minor" for m in melodies),
             "header_major": share(m.mode == "major" for m in melodies),
             "six_eight": share(m.meter == "6/8" for m in melodies),
             "compound": share(m.meter in COMPOUND for m in melodies),
             "in_key": sum(a[2] for a in analyses) / max(1, sum(a[3] for a in analyses)),
             "header_keys": Counter(m.key_name for m in melodies).most_common(),
             "meters": Counter(m.meter for m in melodies).most_common(),
             "analysed_keys": Counter(a[1] for a in analyses).most_common()}
    if group in ("minor", "major"):
        stats["criterion"] = f"analysed {group} / recall >= {MODE_RATIO:.2f}"
        recall = ref[f"{group}_recall"]
        stats["value"] = stats[f"analysed_{group}"] / recall if recall > 0 else math.nan
        stats["pass"] = bool(stats["value"] >= MODE_RATIO)
    elif group == "jig":
        stats["criterion"], stats["value"] = f"6/8 share >= {JIG_SHARE:.2f}", stats["six_eight"]
        stats["pass"] = bool(stats["value"] >= JIG_SHARE)
    return stats


def run(checkpoint: Path, samples: int, seed: int, conditionings: Sequence[str]) -> dict:
    """Every figure of the module docstring, as one JSON-able dict."""
    start = time.perf_counter()
    sampler = MelodySampler(checkpoint)
    train, val = held_out_split(sampler.config)
    val = val or train[-8:]  # as training does when a tiny corpus leaves no validation tune
    model, accuracy, events = model_nll(sampler, val)
    ngrams = ngram_baselines([encoding.encode(t) for t in train], [encoding.encode(t) for t in val])
    assert ngrams["events"] == events, (ngrams["events"], events)
    out: dict[str, Any] = {"nll": {"model": model, "accuracy": accuracy, **ngrams, "val_tunes": len(val),
                                   "train_tunes": len(train)}}
    # The split is by title AND notes, so another setting of a training tune can sit in validation: the
    # validation tunes whose title no training tune has are the strictly unseen ones.
    seen = {t.title.strip().lower() for t in train}
    unseen = [t for t in val if t.title.strip().lower() not in seen]
    out["nll"]["unseen_title_tunes"] = len(unseen)
    out["nll"]["model_unseen_titles"] = model_nll(sampler, unseen)[0] if unseen else float("nan")
    timing = {"nll_s": time.perf_counter() - start}
    out["reference"] = ref = reference(val, train)
    timing["reference_s"] = time.perf_counter() - start - timing["nll_s"]
    out["prompts"], calls, analysis = {}, [], 0.0
    for conditioning in conditionings:
        out["prompts"][conditioning] = {}
        for prompt, group in PROMPTS:  # the same seed for every prompt: differences come from the prompt
            t0 = time.perf_counter()
            melodies = sampler.sample(prompt, samples, seed, conditioning=conditioning, bars=BARS)
            t1 = time.perf_counter()
            out["prompts"][conditioning][prompt] = {"group": group, **prompt_stats(melodies, group, ref)}
            calls.append(t1 - t0)
            analysis += time.perf_counter() - t1
    nearest = sampler.read_prompt(FREE_PROMPT, conditionings[0]).nearest[:5]
    out["summer_beach"] = beach = {"nearest": [{"caption": c, "similarity": s} for c, s in nearest]}
    for conditioning in conditionings:
        stats = out["prompts"][conditioning][FREE_PROMPT]
        beach[conditioning] = {k: stats[k] for k in ("meters", "header_keys", "analysed_keys", "analysed_minor",
                                                     "analysed_major")}
    warm = calls[1:] or calls
    out["sampling"] = {"melodies_per_s": samples * len(calls) / sum(calls),
                       "melodies_per_s_warm": samples * len(warm) / sum(warm), "first_call_s": calls[0]}
    out["timing"] = {**timing, "sampling_s": sum(calls), "sample_analysis_s": analysis}
    out["seconds"] = time.perf_counter() - start
    return out


def _pct(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.0f}%"


def _top(counts: Sequence[tuple[str, int]], n: int = 3) -> str:
    return ", ".join(f"{k} ({v})" for k, v in counts[:n])


def report(out: dict) -> str:
    """The figures as Markdown tables, in the order of the module docstring."""
    nll, ref = out["nll"], out["reference"]
    lines = [f"## Held-out likelihood ({nll['val_tunes']} validation tunes, {nll['events']} events; "
             f"n-grams fit on {nll['train_tunes']} training tunes)", "",
             "| | model | bigram (add-0.1) | unigram (add-0.1) |", "|---|---|---|---|",
             f"| NLL (nats/event) | {nll['model']:.3f} | {nll['bigram']:.3f} | {nll['unigram']:.3f} |",
             f"| next-event accuracy | {nll['accuracy']:.3f} | {nll['bigram_accuracy']:.3f} "
             f"| {nll['unigram_accuracy']:.3f} |", "",
             f"On the {nll['unseen_title_tunes']} validation tunes whose title no training tune has: model NLL "
             f"{nll['model_unseen_titles']:.3f} nats/event.", "",
             f"## Reference: the key analysis on real tunes ({ref['pool']})", "",
             "| notated | tunes | analysed as notated |", "|---|---|---|",
             f"| minor | {ref['minor_tunes']} | {_pct(ref['minor_recall'])} |",
             f"| major | {ref['major_tunes']} | {_pct(ref['major_recall'])} |", "",
             f"In-key note share of {ref['in_key_tunes']} training tunes: {_pct(ref['in_key_all'])} "
             f"(notated minor {_pct(ref['in_key_minor'])}, major {_pct(ref['in_key_major'])})."]
    for conditioning, prompts in out["prompts"].items():
        lines += ["", f"## Prompt control, conditioning \"{conditioning}\" "
                      f"({next(iter(prompts.values()))['samples']} melodies of {BARS} bars per prompt)", "",
                  "| prompt | analysed minor | analysed major | header minor | header major | 6/8 | compound "
                  "| in-key | header keys | criterion | value | result |", "|" + "---|" * 12]
        for prompt, s in prompts.items():
            verdict = ("PASS" if s["pass"] else "FAIL") if "pass" in s else "-"
            value = f"{s['value']:.2f}" if "value" in s else "-"
            lines.append(f"| {prompt} | {_pct(s['analysed_minor'])} | {_pct(s['analysed_major'])} "
                         f"| {_pct(s['header_minor'])} | {_pct(s['header_major'])} | {_pct(s['six_eight'])} "
                         f"| {_pct(s['compound'])} | {_pct(s['in_key'])} | {_top(s['header_keys'])} "
                         f"| {s.get('criterion', '-')} | {value} | {verdict} |")
    beach = out["summer_beach"]
    lines += ["", f"## \"{FREE_PROMPT}\"", "", "Nearest training captions: "
              + "; ".join(f"\"{n['caption']}\" ({n['similarity']:.2f})" for n in beach["nearest"]) + ".", "",
              "| conditioning | meters | header keys | analysed keys |", "|---|---|---|---|"]
    for conditioning in out["prompts"]:
        b = beach[conditioning]
        lines.append(f"| {conditioning} | {_top(b['meters'], 5)} | {_top(b['header_keys'], 5)} "
                     f"| {_top(b['analysed_keys'], 5)} |")
    sampling, timing = out["sampling"], out["timing"]
    lines += ["", f"Wall time {out['seconds']:.1f} s (NLL {timing['nll_s']:.1f} s, reference "
                  f"{timing['reference_s']:.1f} s, sampling {timing['sampling_s']:.1f} s, key analysis of the "
                  f"samples {timing['sample_analysis_s']:.1f} s). Sampling: {sampling['melodies_per_s']:.1f} "
                  f"melodies/s, {sampling['melodies_per_s_warm']:.1f} after the first call (which compiled, "
                  f"{sampling['first_call_s']:.1f} s)."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("zoo/pretrained/music"), help="an export dir")
    parser.add_argument("--samples", type=int, default=50, help="melodies per prompt and conditioning")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (the same for every prompt)")
    parser.add_argument("--conditioning", choices=(*CONDITIONINGS, "all"), default="all")
    parser.add_argument("--json", type=Path, nargs="?", const=True,
                        help="also write every figure here (no PATH: benchmarks/results/eval_music_DEVICE.json)")
    args = parser.parse_args(argv)
    conditionings = CONDITIONINGS if args.conditioning == "all" else (args.conditioning,)
    out = run(args.checkpoint, args.samples, args.seed, conditionings)
    print(report(out))
    if args.json is True:  # --json alone: the name docs/benchmarks.md quotes
        args.json = Path(__file__).resolve().parent / "results" / f"eval_music_{jax.default_backend()}.json"
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    allocator.restart_with_fast_malloc()  # as train.py runs
    main()
