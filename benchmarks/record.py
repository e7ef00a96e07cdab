"""Where a benchmark's `--json` goes: the path given, else benchmarks/results/<benchmark>_<model>_<device>.json,
the one file per (benchmark, model, device) that docs/benchmarks.md quotes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.errors import UsageError

RESULTS = Path(__file__).resolve().parent / "results"


def write(path: Path, record: dict[str, Any]) -> None:
    """`record` as indented JSON at `path`; a path that cannot be written is bad input (one line, exit 2)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n")
    except OSError as e:
        raise UsageError(f"cannot write --json {path}: {e.strerror or e}") from None
