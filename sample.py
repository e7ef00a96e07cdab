"""Turn a text prompt into a poem (and, as families land, an image or a MIDI file).

    python sample.py --model poem --prompt "summer beach"
    python sample.py --model poem-zh --prompt "春江" --num 4 --out poems/

Without --checkpoint the embedded model in zoo/pretrained/MODEL is used. Same --seed => same output.
"""

from __future__ import annotations

from zoo import cli
from zoo.errors import UsageError

MAX_PROMPT_CHARS = 2000


def check_prompt(prompt: str) -> str:
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("the prompt is not valid UTF-8 text") from None
    if not prompt.strip():
        raise UsageError("the prompt is empty; give some words, e.g. --prompt \"summer beach\"")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise UsageError(f"the prompt is {len(prompt)} characters long; at most {MAX_PROMPT_CHARS} are accepted")
    if any(ord(c) < 32 and c not in "\n\t" for c in prompt):
        raise UsageError("the prompt contains control characters")
    return prompt


def main(argv: list[str]) -> int:
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--out", default=None, help="a file, or a directory (ending in /) for one file per sample")
    parser.add_argument("--num", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default=None, help="an export dir or finished workdir (default: embedded)")
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--top_k", type=int, default=None)
    parser.add_argument("--top_p", type=float, default=None)
    parser.add_argument("--max_tokens", type=int, default=None, help="most tokens to add to the prompt")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    args = parser.parse_args(argv)

    from zoo import registry
    from zoo.sample import writers
    from zoo.train import export as export_lib

    entry = registry.get(args.model)
    prompt = check_prompt(args.prompt)
    if not 0 <= args.seed < 2**32:
        raise UsageError(f"--seed must be in [0, 2**32), got {args.seed}")
    if not 1 <= args.num <= 1024:
        raise UsageError(f"--num must be between 1 and 1024, got {args.num}")
    if args.temperature is not None and args.temperature < 0:
        raise UsageError("--temperature must be >= 0")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise UsageError("--top_p must be in (0, 1]")
    if args.top_k is not None and args.top_k < 0:
        raise UsageError("--top_k must be >= 0")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise UsageError("--max_tokens must be positive")
    if args.out is not None:
        writers.check_writable(writers.planned_paths(args.out, args.num, entry.output), args.overwrite)

    sampler_factory = registry.load_sampler(entry)
    export_dir = export_lib.find_export(args.checkpoint or entry.pretrained_dir)
    trained_as = export_lib.load_config(export_dir).get("model_name", "")
    if trained_as not in registry.MODELS or registry.MODELS[trained_as].sampler != entry.sampler:
        raise UsageError(f"{export_dir} holds a {trained_as or 'unknown'!s} model, not a {args.model} model")

    sampler = sampler_factory(export_dir)
    samples = sampler.sample(prompt, args.num, args.seed, temperature=args.temperature, top_k=args.top_k,
                             top_p=args.top_p, max_new_tokens=args.max_tokens)
    for path in writers.write_texts(samples, args.out, args.overwrite):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    cli.run(main)
