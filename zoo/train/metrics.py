"""Where training metrics go: WORKDIR/metrics.jsonl, TensorBoard event files, and the terminal.

Only process 0 writes. On resume, records newer than the restored step are dropped from metrics.jsonl,
so the file always describes one consistent run.

On disk each record is appended as it comes. An object in a bucket cannot be appended to, so there the
writer keeps the file's lines and uploads the whole file (one atomic upload) at every checkpoint, at the
end, and at most every `REMOTE_FLUSH_SECONDS` in between: a crash loses only records newer than the last
checkpoint, which the resumed run writes again anyway.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

import jax
from etils import epath

from zoo import storage

REMOTE_FLUSH_SECONDS = 30.0


class MetricsWriter:
    def __init__(self, workdir: epath.Path, total_steps: int, resume_step: int):
        self.enabled = jax.process_index() == 0
        self.path = workdir / "metrics.jsonl"
        self.total_steps = total_steps
        self._remote = storage.is_remote(workdir)
        self._lines: list[str] = []  # the whole file, when it lives in a bucket
        self._flushed = time.monotonic()
        self._tb = None
        self._bar = None
        if not self.enabled:
            return
        self._truncate(resume_step)
        try:
            from tensorboardX import SummaryWriter
            self._tb = SummaryWriter(f"{workdir}/tensorboard")
        except ImportError:  # TensorBoard is optional; metrics.jsonl is the record of truth
            self._tb = None
        if sys.stderr.isatty():
            from tqdm import tqdm
            self._bar = tqdm(total=total_steps, initial=resume_step, dynamic_ncols=True, unit="step")

    def _truncate(self, resume_step: int) -> None:
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= resume_step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):  # e.g. a line half-written when the run was killed
                continue
        self._lines = kept
        storage.write_atomic(self.path, "".join(line + "\n" for line in kept))

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        if self._remote:
            self._lines.append(json.dumps(record))
            if time.monotonic() - self._flushed > REMOTE_FLUSH_SECONDS:
                self.flush()
        else:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, step)
        summary = "  ".join(f"{k}={_short(v)}" for k, v in record.items() if k != "step")
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            self._bar.set_postfix_str(summary, refresh=True)
        else:
            print(f"step {step}/{self.total_steps}  {summary}", flush=True)

    def flush(self) -> None:
        """Makes every record so far durable (a no-op on disk, where each is appended as it comes)."""
        if self.enabled and self._remote:
            storage.write_atomic(self.path, "".join(line + "\n" for line in self._lines))
            self._flushed = time.monotonic()
        if self._tb is not None:
            self._tb.flush()

    def message(self, text: str) -> None:
        if self.enabled:
            (self._bar.write if self._bar is not None else print)(text)

    def close(self) -> None:
        self.flush()
        if self._tb is not None:
            self._tb.close()
        if self._bar is not None:
            self._bar.close()


def _plain(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _short(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value)
