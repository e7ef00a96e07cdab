"""How much of the Tang corpus MiniLM's vocabulary can read: why emotion-zh fine-tunes poem-zh instead.

    python -m benchmarks.vocab_coverage

Counts the corpus's Han characters (types, and running text) that are whole entries of all-MiniLM-L6-v2's
WordPiece vocabulary; any other character reaches MiniLM as [UNK].
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Sequence

from zoo import cli
from zoo.data import tang
from zoo.text.encoder import TOKENIZER_FILE, find_encoder_dir

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003134f]")


def coverage() -> dict[str, float]:
    vocab = json.loads((find_encoder_dir() / TOKENIZER_FILE).read_text(encoding="utf-8"))["model"]["vocab"]
    counts = collections.Counter(ch for poem in tang.load() for ch in _HAN.findall(poem))
    known = {ch: n for ch, n in counts.items() if ch in vocab}
    return {"character_types": len(counts), "types_covered": len(known) / len(counts),
            "running_text_covered": sum(known.values()) / sum(counts.values())}


def main(argv: Sequence[str]) -> None:
    cli.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    c = coverage()
    print(f"{c['character_types']:,} Han character types in the Tang corpus; MiniLM's vocabulary holds "
          f"{100 * c['types_covered']:.1f}% of them, {100 * c['running_text_covered']:.1f}% of the running text")


if __name__ == "__main__":
    cli.run(main)
