"""gs:// workdirs end to end, against a real Cloud Storage JSON API server on 127.0.0.1 (tests/gcs_server.py).

The scenarios of the local-disk tests (test_training.py) on a bucket: resume after kill -9, SIGTERM, a
damaged newest checkpoint, export -> sample.py -> fine-tuning; and what only a bucket has: the server
going away mid-run, and the workdir lease against runs on this host and on others. Every run is the real
train.py in a subprocess; the bucket is read back over plain HTTP.
"""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tests.gcs_server import FakeGCS
from tests.helpers import (
    LONG_RUN,
    RESUME,
    ROOT,
    assert_same_losses,
    assert_second_run_refused,
    assert_usage_error,
    run_sample,
    run_train,
    start_and_wait,
)

LEASE_SECONDS = 4  # renewed every second: a dead server or a dead holder elsewhere shows within seconds


def _readme_tpu_flags() -> list[str]:
    """The flags of the README's Cloud TPU training command after its workdir: every gs:// run here is that
    command with only the bucket (and the run's name) swapped, plus overrides that shrink the model."""
    line = next(line for line in (ROOT / "README.md").read_text().splitlines()
                if "--worker=all" in line and "train.py" in line)
    words = shlex.split(line.split('--command "', 1)[1].rsplit('"', 1)[0].split("&&")[-1])
    assert words[:4] == ["python", "train.py", "--config", "configs/poem.py"], words
    assert words[4] == "--workdir" and words[5].startswith("gs://BUCKET/"), words
    return words[6:]


README_FLAGS = _readme_tpu_flags()


@pytest.fixture(scope="module")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGCS]:
    server = FakeGCS(tmp_path_factory.mktemp("gcs"))
    server.start()
    yield server
    server.stop()


def _env(gcs: FakeGCS) -> dict[str, str]:
    return {**gcs.env(), "ZOO_LEASE_SECONDS": str(LEASE_SECONDS)}


def _train(gcs: FakeGCS, run: str, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_train(gcs.url(run), *README_FLAGS, *overrides, check=check, extra_env=_env(gcs))


def _start(gcs: FakeGCS, run: str, *overrides: str, progressed=None) -> subprocess.Popen:
    """A run on gs:// (RESUME by default) in the background, returned once `progressed()` holds (by default:
    it logged step 60 and has a complete checkpoint)."""
    progressed = progressed or (lambda: max(gcs.losses(run), default=0) >= 60 and gcs.checkpoint_steps(run))
    return start_and_wait(gcs.url(run), progressed, *README_FLAGS, *(overrides or RESUME), extra_env=_env(gcs))


@pytest.fixture(scope="module")
def reference(gcs: FakeGCS) -> dict[int, float]:
    """The uninterrupted run on gs:// that interrupted ones must reproduce; its export feeds the sampling and
    fine-tuning tests."""
    result = _train(gcs, "reference", *RESUME)
    assert f"done: {gcs.url('reference')}" in result.stdout
    return gcs.losses("reference")


def test_a_run_on_gs_leaves_checkpoints_metrics_events_tokenizer_and_export(gcs: FakeGCS, reference: dict) -> None:
    assert sorted(reference) == list(range(1, 301))
    assert reference[300] < reference[1] - 1.0
    assert gcs.checkpoint_steps("reference") == [250, 275, 300]  # max_to_keep=3
    names = set(gcs.names("reference/"))
    assert {"reference/config.json", "reference/tokenizer/tokenizer.json", "reference/export/config.json",
            "reference/export/info.json", "reference/export/tokenizer/tokenizer.json",
            "reference/export/params/commit_success.txt"} <= names
    assert any(n.startswith("reference/tensorboard/events.out.tfevents") for n in names)
    assert "reference/lock" not in names  # released at the end
    assert json.loads(gcs.read("reference/config.json"))["train_steps"] == 300


def test_sample_and_init_from_read_an_export_in_the_bucket(gcs: FakeGCS, reference: dict,
                                                            tmp_path: pathlib.Path) -> None:
    sample_env = {**gcs.env(), "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "xla")}
    result = run_sample("--model", "poem", "--prompt", "The moon", "--checkpoint", gcs.url("reference"),
                        "--seed", "3", extra_env=sample_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("The moon") and len(result.stdout) > len("The moon") + 10
    compiled = sorted(p.name for p in (tmp_path / "xla").glob("jit__generate_jit-*-cache"))
    assert compiled  # the sampler's executable, which the second run loads instead of compiling
    again = run_sample("--model", "poem", "--prompt", "The moon", "--checkpoint", gcs.url("reference/export"),
                       "--seed", "3", extra_env=sample_env)
    assert again.stdout == result.stdout  # the export dir itself, or its workdir: the same model, same seed
    assert sorted(p.name for p in (tmp_path / "xla").glob("jit__generate_jit-*-cache")) == compiled

    _train(gcs, "finetune", f"--config.init_from={gcs.url('reference')}", "--config.train_steps=3",
           "--config.log_every=1", "--config.eval_every=0", "--config.learning_rate=1e-4")
    first = gcs.losses("finetune")[1]
    assert abs(first - reference[300]) < 0.35, (first, reference[300])  # starts where the pretrained run ended
    assert first < reference[1] - 1.0


def test_kill_9_then_same_command_resumes_the_same_run(gcs: FakeGCS, reference: dict) -> None:
    proc = _start(gcs, "killed")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert max(gcs.losses("killed")) < 300
    assert "killed/lock" in gcs.names("killed/")  # the dead run's lease is still there ...
    result = _train(gcs, "killed", *RESUME)
    assert "resumed from step" in result.stdout  # ... and does not block its resume
    assert_same_losses(gcs.losses("killed"), reference)


def test_sigterm_saves_then_a_damaged_newest_checkpoint_falls_back(gcs: FakeGCS, reference: dict) -> None:
    proc = _start(gcs, "preempted")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    stopped = int(out.split("SIGTERM: saved step ")[1].split(";")[0])
    steps = gcs.checkpoint_steps("preempted")
    assert steps[-1] == stopped and stopped < 300 and len(steps) >= 2

    # Flip bytes in the newest checkpoint's largest object: Orbax would restore it silently.
    prefix = f"preempted/checkpoints/{stopped}/"
    victim = max(gcs.names(prefix), key=gcs.size)
    data = bytearray(gcs.read(victim))
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    gcs.write(victim, bytes(data))

    result = _train(gcs, "preempted", *RESUME)
    assert f"checkpoint step {stopped}" in result.stderr and "unusable" in result.stderr
    assert f"resumed from step {steps[-2]}" in result.stdout
    kept = [n for n in gcs.names("preempted/corrupt_checkpoints/") if n.endswith(victim.rsplit("/", 1)[1])]
    assert len(kept) == 1 and gcs.read(kept[0]) == bytes(data)  # moved aside whole, not deleted
    assert not gcs.names(prefix) or stopped in gcs.checkpoint_steps("preempted")  # rewritten by the resumed run
    assert_same_losses(gcs.losses("preempted"), reference)


def test_server_gone_mid_run_fails_loudly_then_resumes_when_back(gcs: FakeGCS, reference: dict) -> None:
    proc = _start(gcs, "outage")
    complete = gcs.checkpoint_steps("outage")[-1]
    gcs.stop()
    try:
        start = time.time()
        _, err = proc.communicate(timeout=120)
        waited = time.time() - start
    finally:
        gcs.start()
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 1, err
    assert last.startswith("error: cannot reach gs://zoo-test/outage/lock"), err
    assert "Traceback" not in err, err
    assert waited < 30, waited  # fenced by the lease's watchdog (ttl/2), not after minutes of client retries
    result = _train(gcs, "outage", *RESUME)
    resumed = int(result.stdout.split("resumed from step ")[1].split()[0])
    assert resumed >= complete
    assert_same_losses(gcs.losses("outage"), reference)


def test_a_second_run_on_a_live_runs_workdir_is_refused(gcs: FakeGCS) -> None:
    live = _start(gcs, "busy", *LONG_RUN, progressed=lambda: "busy/lock" in gcs.names("busy/"))
    assert_second_run_refused(live, lambda: _train(gcs, "busy", *LONG_RUN, check=False),
                              lambda: json.loads(gcs.read("busy/lock")), gcs.url("busy"))


def _lease_from_another_host(gcs: FakeGCS, run: str) -> None:
    gcs.write(f"{run}/lock", json.dumps({"host": "tpu-vm-elsewhere", "pid": 4242, "started": "2026-01-01T00:00:00",
                                         "ttl_seconds": LEASE_SECONDS, "token": "theirs"}).encode())


def test_a_lease_from_another_host_that_stopped_renewing_is_taken_over(gcs: FakeGCS) -> None:
    _lease_from_another_host(gcs, "orphan")  # a preempted VM's run: never renewed again
    result = _train(gcs, "orphan", "--config.train_steps=2", "--config.eval_every=0")
    assert "took over the lease of a run that is gone (host tpu-vm-elsewhere, pid 4242" in result.stderr
    assert gcs.losses("orphan").keys() == {2}


def test_a_lease_from_another_host_that_keeps_renewing_is_respected(gcs: FakeGCS) -> None:
    stop = threading.Event()

    def renew() -> None:  # a live run on another host
        while not stop.wait(0.5):
            _lease_from_another_host(gcs, "shared")

    _lease_from_another_host(gcs, "shared")
    thread = threading.Thread(target=renew, daemon=True)
    thread.start()
    try:
        result = _train(gcs, "shared", "--config.train_steps=2", check=False)
    finally:
        stop.set()
        thread.join()
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: gs://zoo-test/shared is in use by another run (host tpu-vm-elsewhere, pid 4242")
    assert not gcs.metrics("shared") and not gcs.checkpoint_steps("shared")


def test_bad_gs_locations_are_one_line_errors(gcs: FakeGCS, tmp_path: pathlib.Path) -> None:
    missing_bucket = run_train("gs://no-such-bucket/run", check=False, extra_env=_env(gcs))
    assert_usage_error(missing_bucket, "bucket gs://no-such-bucket does not exist")
    assert_usage_error(run_train("s3://bucket/run", check=False), "s3:// is not supported")
    assert_usage_error(run_train("gs://bucket-only", check=False, extra_env=_env(gcs)), "a folder inside the bucket")
    assert_usage_error(run_sample("--model", "poem", "--prompt", "hi", "--checkpoint", gcs.url("nothing-here"),
                                  extra_env=gcs.env()), "does not exist")


def test_the_lease_is_enforced_by_the_servers_generation_preconditions(gcs: FakeGCS,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """In process: a second acquirer is refused while the first lives; a holder whose record was replaced
    (another run took over) learns it at its next renewal, and stops."""
    from zoo import storage
    from zoo.errors import UsageError
    from zoo.train import lease as lease_lib

    for name, value in _env(gcs).items():
        monkeypatch.setenv(name, value)
    workdir = storage.as_path(gcs.url("lease"))
    lost: list[str] = []
    held = lease_lib.acquire(workdir, on_lost=lost.append)
    record = json.loads(gcs.read("lease/lock"))
    assert record["pid"] == os.getpid() and record["ttl_seconds"] == LEASE_SECONDS
    with pytest.raises(UsageError, match=f"pid {os.getpid()}"):
        lease_lib.acquire(workdir, on_lost=lost.append)
    time.sleep(LEASE_SECONDS / 2)  # renewals go on: a new generation each time, the same holder
    assert not lost and json.loads(gcs.read("lease/lock"))["token"] == record["token"]

    gcs.write("lease/lock", json.dumps({**record, "token": "a run that took over"}).encode())
    deadline = time.time() + LEASE_SECONDS
    while not lost and time.time() < deadline:
        time.sleep(0.05)
    assert lost and lost[0].startswith("lost the lease on gs://zoo-test/lease/lock to another run"), lost
    held.release()
