"""The shared loop end to end on real verse: learning, fine-tuning, determinism across device layouts,
crash/preemption/corruption recovery and NaN handling. Every run is the real train.py in a subprocess."""

from __future__ import annotations

import json
import math
import os
import pathlib
import signal
import subprocess
import time

import pytest

from tests.helpers import (
    LONG_RUN,
    RESUME,
    ROOT,
    assert_same_losses,
    assert_second_run_refused,
    assert_usage_error,
    checkpoint_steps,
    env,
    free_port,
    losses,
    metrics,
    run_sample,
    run_train,
    start_and_wait,
    train_cmd,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A tiny model trained for 150 steps: the base for the learning, export and fine-tuning tests."""
    workdir = tmp_path_factory.mktemp("trained")
    run_train(workdir, "--config.train_steps=150", "--config.log_every=10", "--config.eval_every=75",
              "--config.checkpoint_every=75")
    return workdir


def test_loss_decreases_on_verse(trained: pathlib.Path) -> None:
    records = metrics(trained)
    train = [r["train/loss"] for r in records if "train/loss" in r]
    evals = [r["eval/loss"] for r in records if "eval/loss" in r]
    vocab_entropy = math.log(100)  # ~ the char vocab: an untrained model's loss
    assert train[0] > 3.5
    assert train[-1] < train[0] - 1.0, train
    assert len(evals) == 2 and evals[-1] < 3.2 and evals[-1] < vocab_entropy - 1.0, evals
    assert all(r["steps_per_sec"] > 0 for r in records)
    assert checkpoint_steps(trained) == [75, 150]
    assert (trained / "export" / "config.json").is_file() and (trained / "export" / "tokenizer").is_dir()
    assert any((trained / "tensorboard").iterdir())


def test_sample_from_trained_workdir(trained: pathlib.Path) -> None:
    result = run_sample("--model", "poem", "--prompt", "The moon", "--checkpoint", str(trained), "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("The moon") and len(result.stdout) > len("The moon") + 10


def test_the_run_writes_its_model_card(trained: pathlib.Path) -> None:
    """export/README.md: the run's own command, data and licence, size and evaluation; sample.py --card."""
    import json

    export_dir = trained / "export"
    card = (export_dir / "README.md").read_text(encoding="utf-8")
    info = json.loads((export_dir / "info.json").read_text())
    assert info["family"] == "lm" and info["step"] == 150 and info["command"].startswith("python train.py --config ")
    assert f"`{info['command']}`" in card and "--config.train_steps=150" in card
    assert "`verse-en`: Debian `fortunes`" in card and "| data licence | fortunes: BSD" in card
    assert f"| `eval/loss` | {info['eval/loss']:.4f} |" in card
    assert "| steps | 150 at batch size 8, seed 0 |" in card and "computed in float32, exported in bfloat16" in card
    assert "| trained on | 1 x cpu (cpu) |" in card
    assert "| parameters | 16,800 exported (0.03 MiB in bfloat16) |" in card
    printed = run_sample("--model", "poem", "--checkpoint", str(trained), "--card")
    assert printed.returncode == 0 and printed.stdout == card


def test_embedded_cards_hold_the_run_and_the_hand_written_parts() -> None:
    for name in ("poem", "poem-zh", "textgan", "music", "dcgan", "vae"):
        printed = run_sample("--model", name, "--card")
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout.startswith(f"# {name}\n") and "| data licence |" in printed.stdout, name
        for section in ("## Samples", "## Limitations"):
            assert section in printed.stdout, (name, section)


def test_init_from_starts_at_the_pretrained_loss(trained: pathlib.Path, tmp_path: pathlib.Path) -> None:
    run_train(tmp_path, f"--config.init_from={trained}", "--config.train_steps=3", "--config.log_every=1",
              "--config.eval_every=0", "--config.learning_rate=1e-4")
    pretrained_final = [r["train/loss"] for r in metrics(trained) if "train/loss" in r][-1]
    first = losses(tmp_path)[1]
    assert abs(first - pretrained_final) < 0.35, (first, pretrained_final)
    scratch_first = [r["train/loss"] for r in metrics(trained) if "train/loss" in r][0]
    assert first < scratch_first - 1.0


def test_rerun_with_another_config_is_refused_and_moves_nothing(trained: pathlib.Path) -> None:
    before, config = checkpoint_steps(trained), (trained / "config.json").read_text()
    result = run_train(trained, "--config.train_steps=150", "--config.model.embed_dim=64", check=False)
    assert_usage_error(result, "holds a run of another model or config")
    assert checkpoint_steps(trained) == before and not (trained / "corrupt_checkpoints").exists()
    assert (trained / "config.json").read_text() == config


def test_rerun_of_a_finished_run_changes_nothing(trained: pathlib.Path) -> None:
    info = (trained / "export" / "info.json").read_text()
    result = run_train(trained, "--config.train_steps=150", "--config.log_every=10", "--config.eval_every=75",
                       "--config.checkpoint_every=75")
    assert "already finished" in result.stdout
    assert (trained / "export" / "info.json").read_text() == info and '"eval/loss"' in info


def test_same_losses_on_1_device_8_devices_fsdp_and_2_processes(tmp_path: pathlib.Path) -> None:
    common = ["--config.train_steps=3", "--config.log_every=1", "--config.eval_every=0",
              "--config.checkpoint_every=100", "--config.model.embed_dim=64"]  # MLP big enough for FSDP
    run_train(tmp_path / "one", *common, devices=1)
    run_train(tmp_path / "eight", *common, devices=8)
    fsdp = run_train(tmp_path / "fsdp", *common, "--config.fsdp=true", devices=8)
    assert "fsdp: 6 of" in fsdp.stdout, fsdp.stdout  # the two MLP matrices and their two Adam moments
    _finish(_two_processes(tmp_path / "two", *common))
    one, eight, fsdp, two = (losses(tmp_path / name) for name in ("one", "eight", "fsdp", "two"))
    assert sorted(one) == [1, 2, 3] and one.keys() == eight.keys() == fsdp.keys() == two.keys()
    for step in one:
        for other in (eight, fsdp, two):
            assert abs(one[step] - other[step]) < 1e-5, (one, eight, fsdp, two)
    assert one[3] != one[1]  # the runs did train


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[int, float]:
    """Losses of the uninterrupted run that the interrupted ones must reproduce."""
    workdir = tmp_path_factory.mktemp("reference")
    run_train(workdir, *RESUME)
    return losses(workdir)


def _start_and_wait(workdir: pathlib.Path, min_step: int) -> subprocess.Popen:
    return start_and_wait(workdir, lambda: max(losses(workdir), default=0) >= min_step and checkpoint_steps(workdir))


def _assert_matches(workdir: pathlib.Path, reference: dict[int, float]) -> None:
    assert_same_losses(losses(workdir), reference)


def test_profile_steps_writes_a_trace_and_changes_no_loss(tmp_path: pathlib.Path, reference: dict) -> None:
    run_train(tmp_path, *RESUME, "--config.profile_steps=20:25")
    traces = list((tmp_path / "profile").rglob("*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 10_000, traces
    assert_same_losses(losses(tmp_path), reference)


def test_kill_9_then_same_command_resumes_the_same_run(tmp_path: pathlib.Path, reference: dict) -> None:
    proc = _start_and_wait(tmp_path, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = max(losses(tmp_path))
    assert killed_at < 300
    result = run_train(tmp_path, *RESUME)
    assert "resumed from step" in result.stdout
    _assert_matches(tmp_path, reference)


def test_sigterm_saves_and_exits_0_then_corrupt_newest_falls_back(tmp_path: pathlib.Path, reference: dict) -> None:
    proc = _start_and_wait(tmp_path, 60)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    stopped = int(out.split("SIGTERM: saved step ")[1].split(";")[0])
    steps = checkpoint_steps(tmp_path)
    assert steps[-1] == stopped and stopped < 300 and len(steps) >= 2

    # Flip bytes in the newest checkpoint's largest file: Orbax would restore it silently.
    newest = tmp_path / "checkpoints" / str(stopped)
    victim = max((p for p in newest.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    victim.write_bytes(bytes(data))

    result = run_train(tmp_path, *RESUME)
    assert f"checkpoint step {stopped}" in result.stderr and "unusable" in result.stderr
    assert f"resumed from step {steps[-2]}" in result.stdout
    assert (tmp_path / "corrupt_checkpoints").is_dir()  # kept aside, not deleted
    _assert_matches(tmp_path, reference)


def test_nan_loss_stops_with_a_clear_message_and_keeps_checkpoints(tmp_path: pathlib.Path) -> None:
    result = run_train(tmp_path, "--config.train_steps=50", "--config.log_every=1", "--config.eval_every=0",
                       "--config.checkpoint_every=1", "--config.learning_rate=1e30", "--config.warmup_steps=0",
                       "--config.grad_clip_norm=0", "--config.lr_schedule=constant", check=False)
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert "became" in line and "stopped. Last good checkpoint: step" in line, result.stderr
    good = int(line.split("Last good checkpoint: step ")[1].split()[0])
    assert checkpoint_steps(tmp_path)[-1] == good
    assert all(math.isfinite(loss) for loss in losses(tmp_path).values())


def test_a_second_run_on_a_live_runs_workdir_is_refused(tmp_path: pathlib.Path) -> None:
    lock = tmp_path / "lock"
    live = start_and_wait(tmp_path, lambda: lock.exists() and lock.read_text().endswith("}"), *LONG_RUN)
    assert_second_run_refused(live, lambda: run_train(tmp_path, *LONG_RUN, check=False),
                              lambda: json.loads(lock.read_text()), str(tmp_path))


def _two_processes(workdir: pathlib.Path, *overrides: str) -> list[subprocess.Popen]:
    """train.py as 2 local processes x 4 CPU devices talking through gloo, sharing `workdir`."""
    port = free_port()
    return [subprocess.Popen(train_cmd(workdir, *overrides) + [
        "--coordinator_address", f"127.0.0.1:{port}", "--num_processes", "2", "--process_id", str(i)],
        env=env(4), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT) for i in range(2)]


def _finish(procs: list[subprocess.Popen]) -> list[str]:
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    return outputs


def test_two_processes_stop_together_on_sigterm_and_resume_the_same_run(tmp_path: pathlib.Path,
                                                                       reference: dict) -> None:
    """A Cloud TPU maintenance event: SIGTERM reaches every host. JAX's preemption sync point makes both
    processes stop after the same step; one complete checkpoint; the rerun continues the same run. The
    uninterrupted run it must match is the one-process `reference`: two processes reduce the gradients in
    another order, which moves the losses by < 1e-5 over these 300 steps, where a resume that skipped or
    repeated a batch moves them by > 1e-3."""
    procs = _two_processes(tmp_path / "run", *RESUME)
    deadline = time.time() + 240
    while not (max(losses(tmp_path / "run"), default=0) >= 40 and checkpoint_steps(tmp_path / "run")):
        assert time.time() < deadline and all(p.poll() is None for p in procs), "the run ended or stalled"
        time.sleep(0.02)
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    outputs = _finish(procs)  # both exit 0: a process stopping alone would leave the other hung in a collective
    stopped = int(outputs[0].split("SIGTERM: saved step ")[1].split(";")[0])
    assert stopped < 300 and checkpoint_steps(tmp_path / "run")[-1] == stopped
    assert max(losses(tmp_path / "run")) == stopped  # every step up to the stop is in metrics.jsonl

    outputs = _finish(_two_processes(tmp_path / "run", *RESUME))
    assert f"resumed from step {stopped}" in outputs[0]
    assert_same_losses(losses(tmp_path / "run"), reference, tolerance=2e-5)
