"""How big a BPE vocabulary the pretraining tokenizer should have: characters per token against the embedding's cost.

    python -m benchmarks.bpe_vocab [--sizes 1024,2048,4096,8192] [--width 192]

Trains zoo's byte-level BPE on `english`'s training documents at each size, as configs/poem_pretrain.py does,
and measures characters per token on the held-out documents of `english` and of `verse-en` (more characters
per token: a context of 128 tokens sees more text and a step trains on more). Against that, the tied
embedding grows by `--width` parameters per token, and the output layer's matmul with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.pretrain_gain import split
from zoo import cli
from zoo.errors import UsageError
from zoo.text import tokenizer as tokenizer_lib


def chars_per_token(tok: tokenizer_lib.PreTrainedTokenizerFast, docs: Sequence[str]) -> float:
    """Characters per token, counting each document's end-of-text as one of each (as bits/char does)."""
    return sum(len(d) + 1 for d in docs) / len(tokenizer_lib.encode_documents(tok, docs))


def measure(sizes: Sequence[int]) -> list[dict[str, float]]:
    """For each vocabulary size: the tokenizer's size and its chars/token on held-out English and verse."""
    splits = {spec: split(spec) for spec in ("english", "verse-en")}
    rows = []
    for size in sizes:
        tok = tokenizer_lib.train_tokenizer(splits["english"][0], "bpe", size)
        rows.append({"vocab": len(tok), **{spec: chars_per_token(tok, val) for spec, (_, val) in splits.items()}})
    return rows


def main(argv: Sequence[str]) -> None:
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1024,2048,4096,8192")
    parser.add_argument("--width", type=int, default=192, help="the model's embedding width")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        raise UsageError(f"--sizes {args.sizes!r}: expected comma-separated integers, e.g. 1024,4096") from None
    if any(s < 300 for s in sizes):
        raise UsageError("--sizes: each vocabulary needs at least 300 tokens (256 bytes and the specials)")
    print("| vocabulary | chars/token, held-out English | chars/token, held-out verse | embedding parameters |")
    print("|---|---|---|---|")
    for r in measure(sizes):
        print(f"| {r['vocab']:,} | {r['english']:.2f} | {r['verse-en']:.2f} | {r['vocab'] * args.width:,} |")


if __name__ == "__main__":
    cli.run(main)
