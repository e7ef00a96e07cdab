"""sample.py on the embedded checkpoints: prompts open the poems, seeds fix the output, files land where
the README says (stdout, one file, or one file per sample in a directory)."""

from __future__ import annotations

import pathlib

from tests.helpers import assert_usage_error, run_sample


def _ok(*args: str) -> str:
    result = run_sample(*args)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    return result.stdout


def test_poem_begins_with_the_prompt_and_is_verse() -> None:
    text = _ok("--model", "poem", "--prompt", "summer beach", "--seed", "1")
    assert text.startswith("summer beach")
    body = text[len("summer beach"):]
    assert len(body) > 60 and body.count("\n") >= 2, text
    words = body.split()
    assert sum(w.strip(".,;:!?'\"()").isalpha() for w in words) > 0.8 * len(words), text  # English words


def test_same_seed_same_bytes_other_seed_other_poem(tmp_path: pathlib.Path) -> None:
    for name, seed in (("a.txt", "7"), ("b.txt", "7"), ("c.txt", "8")):
        _ok("--model", "poem", "--prompt", "The sea", "--seed", seed, "--out", str(tmp_path / name))
    a, b, c = ((tmp_path / n).read_bytes() for n in ("a.txt", "b.txt", "c.txt"))
    assert a == b and a != c and a.startswith(b"The sea")


def test_num_to_a_directory_and_to_one_file(tmp_path: pathlib.Path) -> None:
    out = _ok("--model", "poem", "--prompt", "Night", "--num", "3", "--out", f"{tmp_path}/poems/")
    files = sorted((tmp_path / "poems").iterdir())
    assert [f.name for f in files] == ["000.txt", "001.txt", "002.txt"] and "wrote" in out
    texts = [f.read_text(encoding="utf-8") for f in files]
    assert all(t.startswith("Night") for t in texts) and len(set(texts)) == 3
    _ok("--model", "poem", "--prompt", "Night", "--num", "3", "--out", str(tmp_path / "all.txt"))
    combined = (tmp_path / "all.txt").read_text(encoding="utf-8")
    assert combined == "\n\n".join(t.rstrip("\n") for t in texts) + "\n"  # --num N is N seeds' rows, same key


def test_tang_poem_begins_with_the_prompt() -> None:
    text = _ok("--model", "poem-zh", "--prompt", "春江", "--seed", "2").strip()
    assert text.startswith("春江")
    han = sum("\u4e00" <= ch <= "\u9fff" for ch in text)
    assert han >= 10 and han > 0.7 * len(text.replace("\n", "")), text


def test_prompt_longer_than_the_context_is_refused() -> None:
    assert_usage_error(run_sample("--model", "poem", "--prompt", "la " * 400), "prompt too long for this model")
