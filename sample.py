"""Turn a text prompt into a poem, a melody or an image.

    python sample.py --model poem --prompt "summer beach"
    python sample.py --model poem-zh --prompt "春江" --num 4 --out poems/
    python sample.py --model music --prompt "summer beach" --out beach.mid --wav --png
    python sample.py --model music --prompt "a jig" --primer hummed.wav --out jig.mid
    python sample.py --model dcgan --prompt "ankle boot" --num 16 --out grid.png
    python sample.py --model vae --interpolate "sneaker" "sandal" --num 8
    python sample.py --model poem --prompt "summer beach" --candidates 16 --num 2 --scores scores.jsonl

Without --checkpoint the embedded model in zoo/pretrained/MODEL is used. Same --seed => same output.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
from typing import Any

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


# CLI flag -> the sampler option it sets; a sampler lists the options it takes in `options`.
SAMPLER_OPTIONS = {"temperature": "temperature", "top_k": "top_k", "top_p": "top_p",
                   "max_tokens": "max_new_tokens", "bars": "bars", "primer": "primer", "interpolate": "interpolate",
                   "init": "init", "style": "style"}


def build_parser() -> cli.ArgumentParser:
    """The command line, every flag saying what it does and for which models; the models come from the
    registry, so a new family shows up here by its entry alone."""
    from zoo import registry

    width = max(map(len, registry.MODELS))
    models = "\n".join(f"  {name:<{width}} {e.summary} [.{e.output}]" for name, e in registry.MODELS.items())
    parser = cli.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"models:\n{models}\n\nWithout --checkpoint the model embedded in zoo/pretrained/MODEL is used; "
               "--card prints its model card. The same --seed gives the same output.")
    parser.add_argument("--model", required=True, metavar="MODEL", help="which model: one of the names below")
    parser.add_argument("--prompt", default=None, help="the text that opens a poem, or that a melody or image "
                        "should express (all models); required unless --interpolate or --card is given")
    parser.add_argument("--card", action="store_true", help="print the model card (data, licence, command, "
                        "evaluation, limitations) and exit")
    parser.add_argument("--out", default=None, help="a file, or a directory (ending in /) for one file per "
                        "sample; without it text goes to stdout, images to one grid and melodies to a file "
                        "(several: a folder) named after the prompt")
    parser.add_argument("--num", type=int, default=None, help="how many samples (1-1024, default 1); images: "
                        "the steps of --interpolate, or one grid of them all; --interactive: proposals per line "
                        "(default 3)")
    parser.add_argument("--interactive", action="store_true", help="poem, poem-zh: write a poem with the model "
                        "line by line (you type a line, it proposes the next; /help lists the commands); reads "
                        "a terminal or a pipe; --prompt is the first line, --out where the poem is saved")
    parser.add_argument("--seed", type=int, default=0, help="fixes every random choice: same seed, same bytes")
    parser.add_argument("--checkpoint", default=None, help="an export directory, a finished training workdir or "
                        "gs://BUCKET/PATH to sample from instead of the embedded model")
    parser.add_argument("--temperature", type=float, default=None, help="randomness: 0 is greedy, higher is "
                        "wilder; text and music: of the next token, images: the spread of the latent noise "
                        "(default: the model's own)")
    parser.add_argument("--top_k", type=int, default=None, help="text, music: draw only among the K most "
                        "likely next tokens (0: all)")
    parser.add_argument("--top_p", type=float, default=None, help="text, music: nucleus sampling, draw among "
                        "the most likely tokens holding probability P (1: all)")
    parser.add_argument("--max_tokens", type=int, default=None, help="poem, poem-zh: most tokens to add to the "
                        "prompt")
    parser.add_argument("--bars", type=int, default=None, help="music: length of each melody in bars")
    parser.add_argument("--primer", default=None, help="music: a MIDI file, or a recording (WAV, FLAC, OGG, MP3: "
                        "anything librosa reads) of one hummed, sung or played line, whose tune the melodies "
                        "continue; a recording is transcribed and what was heard is printed")
    parser.add_argument("--tempo", type=float, default=None, help="music, with --primer AUDIO: its tempo in "
                        "quarter notes per minute (default: estimated)")
    parser.add_argument("--meter", default=None, help="music, with --primer AUDIO: its meter, e.g. 6/8 "
                        "(default: estimated)")
    parser.add_argument("--primer_only", action="store_true", help="music: write the --primer AUDIO's "
                        "transcription as MIDI instead of continuing it")
    parser.add_argument("--wav", action="store_true", help="music: also write a WAV rendering of each melody")
    parser.add_argument("--png", action="store_true", help="music: also write a piano-roll PNG of each melody")
    parser.add_argument("--interpolate", nargs=2, metavar=("FROM", "TO"), default=None,
                        help="dcgan, vae: images from one prompt's reading to another's in --num steps, the "
                        "noise fixed; vae: FROM and TO may be your own pictures (PNG, JPEG ...)")
    parser.add_argument("--init", default=None, metavar="IMAGE", help="vae: --num variations of your own picture "
                        "(any size or colour: converted, cropped and resized, and said so); --temperature sets "
                        "how far they stray (0: the model's reconstruction; default 0.5); --prompt is optional "
                        "and fixes the class")
    parser.add_argument("--style", default=None, metavar="NAME", help="dcgan-emoji, vae-emoji: the artwork "
                        "style of every image (google, twitter, openmoji, fluent-flat, fluent-modern; default: the "
                        "images go through them in turn)")
    parser.add_argument("--scale", type=int, default=None, metavar="K", help="images: enlarge K times (1-16), "
                        "each pixel a KxK block, for viewing")
    parser.add_argument("--candidates", type=int, default=None, metavar="N", help="draw N samples, score each "
                        "with the critics and keep the best --num, different from each other (a table of their "
                        "scores goes to stderr)")
    parser.add_argument("--critic", default=None, metavar="NAME", help="with --candidates: rank by this one "
                        "score instead of all of them (poems: fluency, form, novelty, copied, relevance, emotion; "
                        "melodies: key, meter, in_key, structure, range, novelty, copied; images: confidence, "
                        "novelty)")
    parser.add_argument("--emotion", default=None, metavar="NAME", help="poem, poem-zh, textgan: keep poems in "
                        "this mood, as the emotion classifiers judge it, of --candidates (default 16 per poem); "
                        "English: anger, anticipation, disgust, fear, joy, sadness, trust; Chinese: joy, like, "
                        "sadness, disgust, fear")
    parser.add_argument("--script", default=None, choices=("simplified", "traditional"), help="poem-zh, "
                        "textgan: print the poems in this script (default: the prompt's; the models write the Tang "
                        "corpus's traditional characters, and read a simplified prompt through OpenCC)")
    parser.add_argument("--scores", default=None, metavar="FILE", help="with --candidates: write every "
                        "candidate's scores as JSON lines")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files (never by "
                        "default)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    from zoo import registry
    from zoo.sample import writers

    entry = registry.get(args.model)
    if args.card:
        print(_card(args.checkpoint, entry), end="")
        return 0
    if args.num is None:
        args.num = 3 if args.interactive else 1
    if not 0 <= args.seed < 2**32:
        raise UsageError(f"--seed must be in [0, 2**32), got {args.seed}")
    if not 1 <= args.num <= 1024:
        raise UsageError(f"--num must be between 1 and 1024, got {args.num}")
    if args.temperature is not None and not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise UsageError("--temperature must be a finite number >= 0")
    if args.top_p is not None and not 0 < args.top_p <= 1:  # NaN fails this too
        raise UsageError("--top_p must be in (0, 1]")
    if args.top_k is not None and args.top_k < 0:
        raise UsageError("--top_k must be >= 0")
    if args.max_tokens is not None and args.max_tokens < 1:
        raise UsageError("--max_tokens must be positive")
    if args.bars is not None and args.bars < 1:
        raise UsageError("--bars must be positive")
    if args.scale is not None and not (1 <= args.scale <= 16 and entry.output == "png"):
        raise UsageError(f"--scale takes 1-16 and applies to image models, not to --model {args.model}"
                         if entry.output != "png" else f"--scale must be between 1 and 16, got {args.scale}")
    if args.interactive:
        return _interactive(args, entry)
    if args.primer_only and args.primer is None:
        raise UsageError("--primer_only needs --primer AUDIO")
    if args.init is not None and args.interpolate is not None:
        raise UsageError("give --init IMAGE or --interpolate FROM TO, not both")
    if (args.prompt is None) == (args.interpolate is None) and args.init is None and not args.primer_only:
        raise UsageError("give --prompt TEXT, or --interpolate FROM TO instead of it")
    if args.interpolate is not None:
        args.interpolate = tuple(check_prompt(p) for p in args.interpolate)
        if args.num < 2:
            raise UsageError("--interpolate needs --num >= 2 (the number of steps, ends included)")
    if args.init is not None and not pathlib.Path(args.init).is_file():
        raise UsageError(f"--init {args.init}: no such file")
    if args.prompt is not None:
        prompt = check_prompt(args.prompt)
    else:  # what names the output: the two prompts, or the picture's or the recording's file name
        prompt = check_prompt(" to ".join(args.interpolate) if args.interpolate
                              else pathlib.Path(args.init or args.primer).stem)
    judged = any(v is not None for v in (args.candidates, args.critic, args.scores, args.emotion))
    if judged:
        _check_candidates(args, entry)
    extras = [ext for ext, wanted in (("wav", args.wav), ("png", args.png)) if wanted]
    if extras and entry.output != "mid":
        raise UsageError(f"--{extras[0]} applies to music models, not to --model {args.model}")

    audio_primer = _is_audio(args.primer)  # a recording, not MIDI: transcribed below
    if (args.tempo is not None or args.meter is not None or args.primer_only) and not audio_primer:
        raise UsageError("--tempo, --meter and --primer_only apply to --primer AUDIO (a recording, not MIDI)")
    sampler_factory = registry.load_sampler(entry)
    options = {}
    for flag, option in SAMPLER_OPTIONS.items():
        if getattr(args, flag) is not None:
            if option not in sampler_factory.options:
                raise UsageError(f"--{flag} does not apply to --model {args.model}")
            options[option] = getattr(args, flag)
    one_file = False  # binary outputs: all samples in one file (an image grid, the first melody)
    if entry.output == "txt":
        targets = writers.planned_paths(args.out, args.num, "txt") if args.out is not None else []
    else:
        # Without --out: one file (images: a grid of them all), or a directory for several melodies.
        count = 1 if entry.output == "png" else args.num
        out = args.out if args.out is not None else writers.default_target(prompt, count, entry.output)
        targets = writers.planned_paths(out, args.num, entry.output)
        one_file = not writers.is_directory_target(out)
        if any(t.suffix == f".{ext}" for t in targets for ext in extras):
            raise UsageError(f"--out {out} would be overwritten by the --{extras[0]} file; name it .{entry.output}")
    scores_file = [pathlib.Path(args.scores)] if args.scores is not None else []
    writers.check_writable(targets + [t.with_suffix(f".{ext}") for t in targets for ext in extras] + scores_file,
                           args.overwrite)

    if entry.output != "txt":  # stdout is free: say how the prompt was read and what was made
        cli.setup_logging()
    _use_compilation_cache()
    if audio_primer:
        import os

        from zoo.data.sources import data_dir
        from zoo.melody import transcribe

        os.environ.setdefault("NUMBA_CACHE_DIR", str(data_dir() / "cache" / "numba"))  # librosa's kernels, kept
        heard = transcribe.transcribe(args.primer, args.tempo, args.meter)
        print(f"{args.primer}: {heard.describe()}")
        if args.primer_only:
            from zoo.melody.midi import write_midi

            writers.write_bytes(targets[0], write_midi(heard.melody, tempo_bpm=heard.tempo))
            print(f"wrote {targets[0]}")
            return 0
        options["primer"] = heard.melody
    export_dir = _export_dir(args.checkpoint, entry)
    if args.emotion is not None:
        args.emotion = _checked_emotion(args.emotion, export_dir)
    sampler = sampler_factory(export_dir)
    prompt, script = _in_model_script(prompt, sampler, args.script)
    scores_file = None
    if judged:
        samples, scores_file = _best_of_candidates(sampler, entry, args, prompt, options)
    else:
        # --init without --prompt: the picture's own class is read from it (the prompt only names the file).
        given_prompt = None if args.init is not None and args.prompt is None else prompt
        samples = sampler.sample(given_prompt, args.num, args.seed, **options)
    if args.scale is not None and args.scale > 1:
        from zoo.sample.images import enlarge

        samples = [enlarge(s, args.scale) for s in samples]
    if script is not None:
        from zoo.text.chinese import convert

        samples = [convert(s, script) for s in samples]
    if entry.output == "txt":
        written = writers.write_texts(samples, args.out, args.overwrite)
    else:
        written = _write_files(sampler, samples, targets, extras, one_file)
    for path in written:
        print(f"wrote {path}")
    if scores_file is not None:  # after the samples: they are what the user came for
        writers.write_bytes(pathlib.Path(args.scores), scores_file)
        poems_on_stdout = entry.output == "txt" and args.out is None
        print(f"wrote {args.scores}", file=sys.stderr if poems_on_stdout else sys.stdout)
    return 0


def _written_script(sampler, script: str | None) -> str | None:
    """The script the sampler's model writes ("traditional" for the Tang models; None: not Chinese), or a
    UsageError when --script is asked of a model that writes no Chinese."""
    from zoo.text import chinese

    tokenizer = getattr(sampler, "tokenizer", None)
    written = chinese.vocabulary_script(list(tokenizer.get_vocab())) if tokenizer is not None else None
    if written is None and script is not None:
        raise UsageError("--script applies to models that write Chinese (poem-zh, textgan)")
    return written


def _interactive(args: argparse.Namespace, entry: Any) -> int:
    """`--interactive`: a poem written together, line by line (zoo.sample.interactive)."""
    from zoo import registry
    from zoo.sample import interactive, writers
    from zoo.text import chinese

    others = [f"--{flag}" for flag in ("interpolate", "candidates", "critic", "scores", "emotion", "primer", "init",
                                       "bars", "tempo", "meter") if getattr(args, flag) is not None]
    others += [f"--{flag}" for flag in ("wav", "png", "primer_only") if getattr(args, flag)]
    if others:
        raise UsageError(f"--interactive does not combine with {others[0]}")
    if args.num > 9:
        raise UsageError(f"--num sets the proposals per line in --interactive: 1-9, got {args.num}")
    if args.prompt is not None:
        check_prompt(args.prompt)
    if args.out is not None:
        if writers.is_directory_target(args.out):
            raise UsageError(f"--out {args.out} is a directory; --interactive saves the poem to one file")
        writers.check_writable([pathlib.Path(args.out)], args.overwrite)
    sampler_factory = registry.load_sampler(entry)
    if not hasattr(sampler_factory, "next_lines"):
        raise UsageError(f"--interactive writes poems line by line with poem or poem-zh, not --model {entry.name}")
    options = {option: getattr(args, flag) for flag, option in SAMPLER_OPTIONS.items()
               if getattr(args, flag) is not None and option in ("temperature", "top_k", "top_p", "max_new_tokens")}
    _use_compilation_cache()
    sampler = sampler_factory(_export_dir(args.checkpoint, entry))
    written = _written_script(sampler, args.script)
    wanted = {"script": args.script}

    def read(text: str) -> str:  # a typed line, in the model's script; the first one sets the poem's script
        if written is None:
            return text
        wanted["script"] = wanted["script"] or chinese.script_of(text)
        return chinese.convert(text, written)

    def show(text: str) -> str:
        script = wanted["script"]
        return chinese.convert(text, script) if written and script and script != written else text

    session = interactive.Session(sampler, proposals=args.num, seed=args.seed, options=options, out=args.out,
                                  read=read, show=show, overwrite=args.overwrite)
    session.run(args.prompt, sys.stdin, sys.stdout, echo=not sys.stdin.isatty())
    return 0


def _is_audio(path: str | None) -> bool:
    """Whether --primer names a recording rather than a MIDI file (a MIDI file starts with "MThd")."""
    if path is None:
        return False
    try:
        with open(path, "rb") as f:
            return f.read(4) != b"MThd"
    except OSError as e:
        raise UsageError(f"cannot read --primer {path}: {e.strerror or e}") from None


def _in_model_script(prompt: str, sampler, script: str | None) -> tuple[str, str | None]:
    """(the prompt in the script the model writes, the script to print its poems in: None keeps theirs).
    The Tang models know traditional characters only: 夏天的海边 is read as 夏天的海邊, and the poems are
    printed in the prompt's script, or in --script."""
    from zoo.text import chinese

    written = _written_script(sampler, script)
    if written is None:
        return prompt, None
    wanted = script or chinese.script_of(prompt) or written
    read = chinese.convert(prompt, written)
    if read != prompt or wanted != written:
        print(f"read the prompt {prompt} as {read} (the model writes {written} characters); the poems are printed "
              f"in {wanted} characters", file=sys.stderr)
    return read, wanted if wanted != written else None


def _critic_scores(entry) -> dict:
    """The scores the critics of `entry`'s output can give (UsageError where none judge it yet)."""
    if entry.output == "txt":
        from zoo.critics.text import SCORES
    elif entry.output == "mid":
        import importlib.util

        from zoo.critics.music import SCORES

        if importlib.util.find_spec("music21") is None:  # its key analysis and the training tunes
            raise UsageError("--candidates for melodies needs music21: pip install 'zoo[music]'")
    elif entry.output == "png":
        from zoo.critics.images import SCORES
    else:
        raise UsageError(f"--candidates: critics judge poems, melodies and images, not --model {entry.name}")
    return SCORES


def _check_candidates(args: argparse.Namespace, entry) -> None:
    """Bad --candidates/--critic/--scores input, before anything loads."""
    scores = _critic_scores(entry)
    if args.emotion is not None:
        if entry.output != "txt":
            raise UsageError(f"--emotion applies to poems (poem, poem-zh, textgan), not to --model {entry.name}")
        scores = {**scores, "emotion": None}
    if args.interpolate is not None or args.init is not None:
        raise UsageError(f"--candidates does not apply to --{'init' if args.init else 'interpolate'}")
    if args.candidates is None:
        args.candidates = min(16 * args.num, 4096) if args.emotion is not None else args.num
    if not args.num <= args.candidates <= 4096:
        raise UsageError(f"--candidates must be between --num ({args.num}) and 4096, got {args.candidates}")
    if args.critic is not None and args.critic not in scores:
        raise UsageError(f"unknown critic {args.critic!r} for --model {entry.name}; choose one of: {', '.join(scores)}")


def _checked_emotion(name: str, export_dir: pathlib.Path) -> str:
    """The offered emotion `name` in the language of the model's corpus, or a UsageError."""
    from zoo import export
    from zoo.critics import emotion
    from zoo.critics.text import CORPUS

    language = {"verse-en": "en", "tang": "zh"}.get(CORPUS.get(str(export.load_config(export_dir).get("data"))))
    if language is None:
        raise UsageError("--emotion needs a model trained on English verse (verse-en) or Tang poems (tang)")
    return emotion.check(language, name)


def _best_of_candidates(sampler, entry, args: argparse.Namespace, prompt: str, options: dict
                        ) -> tuple[list, bytes | None]:
    """Draws --candidates samples in one batch, judges them and prints the kept ones' table on stderr.
    Returns the kept samples, best first, and the --scores file's bytes (None without --scores)."""
    import time

    from zoo.critics import choose, critic_for

    start = time.perf_counter()
    if args.emotion is not None and "emotion" in sampler.options:  # a model that reads emotion tags
        options = {**options, "emotion": args.emotion}
    candidates = sampler.sample(prompt, args.candidates, args.seed, **options)
    critic = critic_for(entry.output, sampler, entry.name if args.checkpoint is None else None, args.emotion)
    choice = choose.choose(critic, prompt, candidates, args.num, args.critic)
    seconds = time.perf_counter() - start
    print(choose.table(choice, seconds, len(candidates)), file=sys.stderr)
    scores = choose.scores_jsonl([_describe(c) for c in candidates], choice) if args.scores is not None else None
    return [candidates[i] for i in choice.kept], scores


def _describe(sample) -> str:
    """A candidate as --scores records it: a poem's text, a melody's meter, key and notes, an image's size and
    the digest of its pixels (the kept ones are the written grid's, in order)."""
    if isinstance(sample, str):
        return sample
    if hasattr(sample, "tobytes"):
        import hashlib

        digest = hashlib.sha256(sample.tobytes()).hexdigest()[:12]
        return f"{sample.shape[0]}x{sample.shape[1]} image, pixels sha256:{digest}"
    return f"{sample.meter} {sample.key_name}: " + " ".join(f"{p if p is not None else 'r'}/{ql:g}"
                                                              for p, ql in sample.notes)


def _use_compilation_cache() -> None:
    from zoo.data.sources import data_dir

    cli.use_compilation_cache(data_dir() / "cache" / "jax")


def _export_dir(checkpoint: str | None, entry) -> pathlib.Path:
    """The export to sample from: --checkpoint, else the embedded one; it must hold a model of `entry`."""
    from zoo import export, registry

    if checkpoint is None and not entry.pretrained_dir.is_dir():
        raise UsageError(f"no embedded {entry.name} checkpoint ships with this release; train one with "
                         f"configs/{entry.config} (its docstring has the commands) and pass --checkpoint DIR")
    export_dir = export.find_export(checkpoint or entry.pretrained_dir)
    trained_as = export.load_config(export_dir).get("model_name", "")
    if trained_as not in registry.MODELS or registry.MODELS[trained_as].model != entry.model:
        raise UsageError(f"{export_dir} holds a {trained_as or 'unknown'!s} model, not a {entry.name} model")
    return export_dir


def _card(checkpoint: str | None, entry) -> str:
    """The model card of the export sampling would use, read in place (a bucket's params stay there); an
    export without one gets its info.json instead."""
    from zoo import export

    directory = export.locate(checkpoint) if checkpoint is not None else None
    if directory is None:
        directory = _export_dir(checkpoint, entry)  # the embedded model, or the usual error
    card, info = directory / export.CARD, directory / export.INFO
    if card.is_file():
        return card.read_text(encoding="utf-8")
    return (f"{directory} has no model card ({export.CARD}); its {export.INFO}:\n"
            f"{info.read_text(encoding='utf-8') if info.is_file() else '{}'}\n")


def _write_files(sampler, samples: list, targets: list, extras: list[str], one_file: bool) -> list:
    """The sampler's files at their targets (one file: a grid, or the first melody), and beside each the
    renderings named in `extras` (e.g. a melody's .wav and .png)."""
    from zoo.sample import writers

    written = []
    for target, data, sample in zip(targets, sampler.to_files(samples, one_file), samples, strict=False):
        payloads = {target: data, **{target.with_suffix(f".{ext}"): sampler.render(sample, ext) for ext in extras}}
        for path, payload in payloads.items():
            writers.write_bytes(path, payload)
            written.append(path)
    return written


if __name__ == "__main__":
    cli.run(main)
