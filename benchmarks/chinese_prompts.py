"""Chinese prompts against their English versions, by the judges that measure the English ones.

    python -m benchmarks.chinese_prompts --model music|dcgan|vae [--samples 50] [--json [PATH]]

The music and image models read a prompt with an English sentence encoder; a Chinese prompt is glossed
into English first (zoo.text.chinese). Each prompt below is the Chinese a person would type for its
English twin, written before any sample was drawn (not chosen for how it glosses). Both are sampled with
the same seed and the sampler's defaults and judged alike:

- music: `benchmarks/music_eval.py`'s prompts and criteria (the analysed mode over the reference recall for
  key prompts, the 6/8 share for jig prompts), `--samples` melodies per prompt;
- images: the class the sampler read the prompt as, and the share of `--samples` images that the
  benchmarks' classifier (trained apart) puts in the class the English prompt names.

The "glossed" column is the English the sampler read (zoo.text.encoder.english_reading, each word in the
sense nearest to the model's captions).

Prints a Markdown table; --json writes every figure (`--json` alone:
benchmarks/results/chinese_prompts_MODEL_cpu.json).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import record
from zoo import allocator, cli, export, registry
from zoo.text.encoder import english_reading

MUSIC = (("a sad air in A minor", "A小调的悲伤曲子"), ("a reel in E minor", "E小调的里尔舞曲"),
         ("a jig in D minor", "D小调的吉格舞曲"), ("a reel in D major", "D大调的里尔舞曲"),
         ("a hornpipe in G major", "G大调的角笛舞曲"), ("a jig in C major", "C大调的吉格舞曲"),
         ("a jig", "吉格舞曲"), ("a lively Irish jig", "欢快的爱尔兰吉格舞曲"), ("summer beach", "夏天的海边"))
# Fashion-MNIST's classes, in its label order, as a shopper would name them in each language.
IMAGES = (("a t-shirt", "一件T恤"), ("trousers", "一条裤子"), ("a pullover", "一件套头毛衣"),
          ("a dress", "连衣裙"), ("a coat", "一件外套"), ("a sandal", "凉鞋"), ("a shirt", "衬衫"),
          ("a sneaker", "运动鞋"), ("a bag", "一个包"), ("an ankle boot", "短靴"))


def run_music(sampler: Any, samples: int, seed: int) -> dict:
    from benchmarks import music_eval

    groups = dict(music_eval.PROMPTS)
    train, val = music_eval.held_out_split(sampler.config)
    ref = music_eval.reference(val, train)
    rows = []
    for english, chinese in MUSIC:
        row = {"english": english, "chinese": chinese,
               "gloss": english_reading(chinese, sampler.encoder, sampler.table)}
        for language, prompt in (("en", english), ("zh", chinese)):
            melodies = sampler.sample(prompt, samples, seed, bars=music_eval.BARS)
            stats = music_eval.prompt_stats(melodies, groups[english], ref)
            row[language] = {k: stats[k] for k in ("value", "pass", "criterion", "analysed_minor", "analysed_major",
                                                   "six_eight", "meters") if k in stats}
            row[language]["nearest"] = sampler.read_prompt(prompt).nearest[0][0]
        rows.append(row)
    return {"rows": rows}


def run_images(sampler: Any, samples: int, seed: int) -> dict:
    from benchmarks.image_classifier import load_classifier
    from zoo.critics.images import centre_crop

    logits_fn, _ = load_classifier(str(sampler.info["data"]))
    rows = []
    for class_index, (english, chinese) in enumerate(IMAGES):
        row = {"class": sampler.class_names[class_index], "english": english, "chinese": chinese}
        for language, prompt in (("en", english), ("zh", chinese)):
            reading = sampler.read_prompt(prompt)
            images = np.stack(sampler.sample(prompt, samples, seed))
            logits = np.asarray(logits_fn(centre_crop(images, sampler.info["source_shape"])))
            row[language] = {"read_as": sampler.class_names[reading.class_index],
                             "read_right": reading.class_index == class_index,
                             "judge_class_rate": float(np.mean(np.argmax(logits, axis=1) == class_index))}
        row["gloss"] = english_reading(chinese, sampler.encoder, sampler.table)
        rows.append(row)
    return {"rows": rows, "summary": {lang: {
        "read_right": float(np.mean([r[lang]["read_right"] for r in rows])),
        "judge_class_rate": float(np.mean([r[lang]["judge_class_rate"] for r in rows]))} for lang in ("en", "zh")}}


def run(name: str, samples: int, seed: int) -> dict:
    entry = registry.get(name)
    sampler = registry.load_sampler(entry)(export.find_export(entry.pretrained_dir))
    start = time.perf_counter()
    out = run_music(sampler, samples, seed) if entry.output == "mid" else run_images(sampler, samples, seed)
    return {"model": name, "samples": samples, "seed": seed, **out, "seconds": time.perf_counter() - start}


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def report(result: dict) -> str:
    n = result["samples"]
    if "summary" in result:
        lines = [f"`{result['model']}`, {n} images per prompt, judged by the benchmarks' classifier:", "",
                 "| class | English | read as | judge | Chinese | glossed | read as | judge |", "|---" * 8 + "|"]
        for r in result["rows"]:
            en, zh = r["en"], r["zh"]
            lines.append(f"| {r['class']} | {r['english']} | {en['read_as']} | {_pct(en['judge_class_rate'])} | "
                         f"{r['chinese']} | {r['gloss']} | {zh['read_as']} | {_pct(zh['judge_class_rate'])} |")
        s = result["summary"]
        lines.append(f"| **all** | | {s['en']['read_right']:.0%} right | **{s['en']['judge_class_rate']:.3f}** | | | "
                     f"{s['zh']['read_right']:.0%} right | **{s['zh']['judge_class_rate']:.3f}** |")
        return "\n".join(lines)
    lines = [f"`music`, {n} melodies of 16 bars per prompt (music_eval's criteria):", "",
             "| English | value | pass | Chinese | glossed | value | pass |", "|---" * 7 + "|"]
    for r in result["rows"]:
        en, zh = r["en"], r["zh"]
        lines.append(f"| {r['english']} | {_pct(en.get('value'))} | {en.get('pass', '')} | {r['chinese']} | "
                     f"{r['gloss']} | {_pct(zh.get('value'))} | {zh.get('pass', '')} |")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, choices=("music", "dcgan", "vae"))
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", nargs="?", const="", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    allocator.restart_with_fast_malloc()
    result = run(args.model, args.samples, args.seed)
    print(report(result))
    if args.json is not None:
        record.write(Path(args.json) if args.json else record.RESULTS / f"chinese_prompts_{args.model}_cpu.json",
                     result)


if __name__ == "__main__":
    cli.run(main)
