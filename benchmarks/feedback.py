"""Does fine-tuning on the samples a person kept move the model? `music` before and after 30 kept jigs.

    python -m benchmarks.feedback [--kept 30] [--samples 100] [--json [PATH]]

The loop a person runs, end to end with the real commands:

1. `sample.py --model music --prompt "a jig in D major" --num 64 --out DIR/` draws candidates; the person
   keeps those that are jigs in D major (here: the first `--kept` whose header says 6/8 and D major, the
   rest deleted);
2. `train.py --config configs/music.py --config.init_from=pretrained:music --config.data=midi:DIR` fine-tunes
   on them with the small-set settings (zoo/train/small_data.py);
3. before and after, for prompts that ask for neither key nor meter, `--samples` melodies each: the share in
   6/8, in D major, and both; and the loss on `music`'s held-out folk tunes (what is forgotten).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import record
from zoo import cli, export, registry

ROOT = Path(__file__).resolve().parents[1]
NEUTRAL = ("a tune", "summer beach", "a melody for the evening")


def _shares(sampler, samples: int, seed: int) -> dict:
    out = {}
    for prompt in NEUTRAL:
        melodies = sampler.sample(prompt, samples, seed, bars=16)
        jig = [m.meter == "6/8" for m in melodies]
        d_major = [(m.tonic, m.mode) == (2, "major") for m in melodies]
        out[prompt] = {"six_eight": sum(jig) / samples, "d_major": sum(d_major) / samples,
                       "both": sum(a and b for a, b in zip(jig, d_major, strict=True)) / samples}
    return out


def _held_out_nll(sampler) -> float:
    from benchmarks.music_eval import held_out_split, model_nll
    from configs import music

    _, val = held_out_split(music.get_config())
    return model_nll(sampler, val)[0]


def run(kept: int, samples: int, seed: int) -> dict:
    from zoo.melody.midi import melody_from_midi
    from zoo.sample.music import MelodySampler

    entry = registry.get("music")
    before = MelodySampler(export.find_export(entry.pretrained_dir))
    work = Path(tempfile.mkdtemp(prefix="zoo-feedback-"))
    try:
        drawn, folder = work / "drawn", work / "kept"
        subprocess.run([sys.executable, str(ROOT / "sample.py"), "--model", "music", "--prompt", "a jig in D major",
                        "--num", "64", "--seed", str(seed), "--out", f"{drawn}/"], check=True, capture_output=True)
        folder.mkdir()
        chosen = [p for p in sorted(drawn.glob("*.mid"))
                  if (m := melody_from_midi(p)).meter == "6/8" and (m.tonic, m.mode) == (2, "major")][:kept]
        for path in chosen:  # kept as sample.py named them: each file carries its prompt as its caption
            shutil.copy(path, folder / path.name)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / "configs/music.py"),
                                 "--workdir", str(work / "run"), "--config.init_from=pretrained:music",
                                 f"--config.data=midi:{folder}"], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(result.stderr[-2000:])
        seconds = time.perf_counter() - start
        after = MelodySampler(export.find_export(work / "run"))
        log = [line for line in result.stdout.splitlines() + result.stderr.splitlines()
               if "small set" in line or "early stop" in line or line.startswith("done:")]
        return {"kept": len(chosen), "drawn": 64, "samples": samples, "seed": seed, "train_seconds": seconds,
                "train_log": log, "export_step": export.load_info(work / "run" / "export").get("step"),
                "before": {"shares": _shares(before, samples, seed), "held_out_nll": _held_out_nll(before)},
                "after": {"shares": _shares(after, samples, seed), "held_out_nll": _held_out_nll(after)}}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(result: dict) -> str:
    lines = [f"`music` fine-tuned on {result['kept']} kept jigs in D major (of {result['drawn']} drawn), "
             f"{result['train_seconds']:.0f} s of training on this CPU, the export at step {result['export_step']}; "
             f"{result['samples']} melodies per prompt:", "",
             "| prompt | 6/8 before | 6/8 after | D major before | D major after | both before | both after |",
             "|---" * 7 + "|"]
    for prompt in NEUTRAL:
        b, a = result["before"]["shares"][prompt], result["after"]["shares"][prompt]
        lines.append(f"| {prompt} | {b['six_eight']:.2f} | {a['six_eight']:.2f} | {b['d_major']:.2f} | "
                     f"{a['d_major']:.2f} | {b['both']:.2f} | {a['both']:.2f} |")
    lines += ["", f"Held-out folk tunes (what is forgotten): {result['before']['held_out_nll']:.4f} -> "
                  f"{result['after']['held_out_nll']:.4f} nats/event."]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kept", type=int, default=30)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", nargs="?", const="", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    result = run(args.kept, args.samples, args.seed)
    print(report(result))
    if args.json is not None:
        record.write(Path(args.json) if args.json else record.RESULTS / "feedback_music_cpu.json", result)


if __name__ == "__main__":
    cli.run(main)
