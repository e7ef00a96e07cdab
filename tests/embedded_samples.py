"""Samples every embedded model the way a user does (sample.py's own main) and fingerprints the files.

    python -m tests.embedded_samples --record   # after a change that is MEANT to alter samples

tests/test_embedded_samples.py compares against tests/fixtures/embedded_samples.json: a refactor must
leave every embedded model's output byte-identical for the same seed.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "embedded_samples.json"

# name -> sample.py flags (the output lands in a fresh directory; "{root}" is their parent)
CASES: dict[str, list[str]] = {
    "poem": ["--model", "poem", "--prompt", "summer beach", "--num", "2", "--seed", "3"],
    "poem-nucleus": ["--model", "poem", "--prompt", "The sea", "--top_p", "0.9", "--temperature", "0.8",
                     "--max_tokens", "40"],
    "poem-zh": ["--model", "poem-zh", "--prompt", "夏天的海边", "--num", "2", "--seed", "1"],
    "textgan": ["--model", "textgan", "--prompt", "summer beach", "--num", "2", "--seed", "5"],
    "music": ["--model", "music", "--prompt", "summer beach", "--num", "2", "--bars", "4", "--wav", "--png"],
    "music-zh": ["--model", "music", "--prompt", "夏天的海边", "--bars", "4", "--seed", "4"],
    "music-primer": ["--model", "music", "--prompt", "a slow waltz", "--primer", "{root}/music/000.mid",
                     "--bars", "4"],
    "dcgan": ["--model", "dcgan", "--prompt", "ankle boot", "--num", "4", "--seed", "2"],
    "vae": ["--model", "vae", "--prompt", "sneaker", "--num", "4", "--seed", "2"],
    "vae-interpolate": ["--model", "vae", "--interpolate", "sneaker", "sandal", "--num", "4"],
    "dcgan-emoji": ["--model", "dcgan-emoji", "--prompt", "夏天的海边", "--num", "5"],
    "vae-emoji": ["--model", "vae-emoji", "--prompt", "a red apple", "--num", "2", "--style", "twitter",
                  "--scale", "2", "--seed", "1"],
}


def fingerprints(root: pathlib.Path) -> dict[str, dict[str, str]]:
    """Runs every case into root/CASE/ and returns {case: {file: sha256 (or the text of a .txt)}}."""
    sys.path.insert(0, str(ROOT))
    import sample

    result = {}
    for name, flags in CASES.items():
        out = root / name
        flags = [f.replace("{root}", str(root)) for f in flags]
        try:
            sample.main([*flags, "--out", f"{out}/"])
        except SystemExit as e:  # pragma: no cover - a usage error is a failure here
            raise AssertionError(f"{name}: sample.py exited {e.code}") from None
        result[name] = {p.name: (p.read_text(encoding="utf-8") if p.suffix == ".txt"
                                 else hashlib.sha256(p.read_bytes()).hexdigest())
                        for p in sorted(out.iterdir())}
    return result


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        found = fingerprints(pathlib.Path(tmp))
    if "--record" in sys.argv:
        FIXTURE.write_text(json.dumps(found, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps(found, ensure_ascii=False, sort_keys=True))


if __name__ == "__main__":
    main()
