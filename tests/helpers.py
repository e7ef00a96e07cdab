"""Running the real CLIs in subprocesses: device counts and process groups must be set before JAX starts."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A model small enough that a step takes milliseconds on a CPU, on the real English verse corpus.
TINY = [
    "--config.model.num_layers=1", "--config.model.embed_dim=32", "--config.model.num_heads=2",
    "--config.model.context_length=32", "--config.batch_size=8", "--config.eval_batches=2",
    "--config.warmup_steps=5", "--config.learning_rate=3e-3", "--config.tokenizer=char", "--config.vocab_size=0",
]


def env(devices: int = 1, extra: dict[str, str] | None = None) -> dict[str, str]:
    e = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1",
             PYTHONPATH=str(ROOT), XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", **(extra or {}))
    e.pop("CUDA_VISIBLE_DEVICES", None)
    return e


def train_cmd(workdir: pathlib.Path | str, *overrides: str, config: str = "configs/poem.py") -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / config), "--workdir", str(workdir),
            *TINY, *overrides]


def run_train(workdir: pathlib.Path | str, *overrides: str, devices: int = 1, check: bool = True,
              timeout: float = 300, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(train_cmd(workdir, *overrides), env=env(devices, extra_env), capture_output=True,
                            text=True, timeout=timeout, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"train.py failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def run_sample(*args: str, timeout: float = 300, extra_env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "sample.py"), *args], env=env(1, extra_env),
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def metrics(workdir: pathlib.Path) -> list[dict]:
    path = pathlib.Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def losses(workdir: pathlib.Path) -> dict[int, float]:
    return {r["step"]: r["train/loss"] for r in metrics(workdir) if "train/loss" in r}


def checkpoint_steps(workdir: pathlib.Path) -> list[int]:
    directory = pathlib.Path(workdir) / "checkpoints"
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.exists() else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_usage_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """The bad-input contract: exit 2, exactly one line on stderr starting with "error: ", no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# A run long enough to interrupt mid-way, checkpointing often: the resume scenarios (disk and gs://) use it.
RESUME = ["--config.train_steps=300", "--config.log_every=1", "--config.eval_every=0",
          "--config.checkpoint_every=25", "--config.max_to_keep=3"]


def start_and_wait(workdir: pathlib.Path | str, progressed: Callable[[], bool], *overrides: str,
                   extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """Starts train.py (RESUME, or `overrides`) in the background and returns once `progressed()` holds."""
    proc = subprocess.Popen(train_cmd(workdir, *(overrides or RESUME)), env=env(1, extra_env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"run ended before it could be interrupted: {proc.stderr.read()}")
        if progressed():
            return proc
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("run made no progress")


def assert_same_losses(resumed: dict[int, float], reference: dict[int, float], tolerance: float = 1e-6) -> None:
    assert sorted(resumed) == sorted(reference)
    for step, loss in reference.items():
        assert abs(resumed[step] - loss) < tolerance, (step, resumed[step], loss)


# A run that is still running whenever a test looks: for the "a second run is refused" scenarios.
LONG_RUN = ["--config.train_steps=100000", "--config.log_every=1000", "--config.eval_every=0",
            "--config.checkpoint_every=1000"]


def assert_second_run_refused(live: subprocess.Popen, second_run: Callable[[], subprocess.CompletedProcess],
                              holder: Callable[[], dict], workdir: str) -> None:
    """`second_run()` on the workdir that `live` holds exits 2 naming the holder, and `live` runs on (then
    stops cleanly on SIGTERM)."""
    try:
        result = second_run()
        record = holder()
        assert_usage_error(result, f"{workdir} is in use by another run", f"pid {live.pid}",
                           f"host {record['host']}", f"started {record['started']}")
        assert live.poll() is None
    finally:
        live.send_signal(signal.SIGTERM)
        live.communicate(timeout=120)
    assert live.returncode == 0
