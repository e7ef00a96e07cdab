"""Bad input to either CLI: exit code 2 and ONE clear line on stderr, never a traceback, and no file of the
user's is touched."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from tests.helpers import ROOT, assert_usage_error, env, run_sample


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], env=env(), capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("args, fragment", [
    (["--model", "nope", "--prompt", "hi"], "unknown model 'nope'"),
    (["--model", "poem", "--prompt", ""], "prompt is empty"),
    (["--model", "poem", "--prompt", "  \n "], "prompt is empty"),
    (["--model", "poem", "--prompt", "x" * 100_000], "at most 2000"),
    (["--model", "poem", "--prompt", "hi", "--num", "0"], "--num"),
    (["--model", "poem", "--prompt", "hi", "--top_p", "2"], "--top_p"),
    (["--model", "poem", "--prompt", "hi", "--bogus"], "unrecognized arguments"),
    (["--model", "poem", "--prompt", "hi", "--seed", str(2**64)], "--seed"),
    (["--prompt", "hi"], "--model"),
    (["--model", "poem", "--prompt", "hi", "--checkpoint", "/nonexistent/dir"], "does not exist"),
])
def test_sample_rejects_bad_input(args: list[str], fragment: str) -> None:
    assert_usage_error(run_sample(*args), fragment)


def test_sample_rejects_a_directory_without_a_model(tmp_path: pathlib.Path) -> None:
    assert_usage_error(run_sample("--model", "poem", "--prompt", "hi", "--checkpoint", str(tmp_path)),
                       "holds no exported model")


def test_sample_rejects_a_checkpoint_of_another_model(tmp_path: pathlib.Path) -> None:
    (tmp_path / "params").mkdir()
    (tmp_path / "config.json").write_text('{"model_name": "dcgan-of-the-future"}')
    assert_usage_error(run_sample("--model", "poem", "--prompt", "hi", "--checkpoint", str(tmp_path)),
                       "not a poem model")


def test_sample_never_overwrites_a_users_file(tmp_path: pathlib.Path) -> None:
    precious = tmp_path / "poem.txt"
    precious.write_text("my own poem")
    assert_usage_error(run_sample("--model", "poem", "--prompt", "hi", "--out", str(precious)), "--overwrite")
    assert precious.read_text() == "my own poem"


@pytest.mark.parametrize("args, fragment", [
    (["--config", "configs/poem.py", "--workdir", "W", "--config.nope=1"], "unknown config key --config.nope"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.model.num_layers=two"], "expected a int"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.train_steps=0"], "must be positive"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.model=3"], "is a group"),
    (["--config", "configs/missing.py", "--workdir", "W"], "config file not found"),
    (["--config", "configs/poem.py"], "--workdir"),
    (["--config", "configs/poem.py", "--workdir", "W", "stray"], "expected --config.KEY=VALUE"),
    (["--config", "configs/poem.py", "--workdir", "W", "--num_processes", "2"], "multi-process runs need"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.data=text:/nonexistent/corpus.txt"],
     "/nonexistent/corpus.txt"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.data=nonsense"], "nonsense"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.init_from=/nonexistent/run"], "does not exist"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.model.num_heads=3"], "bad model config"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.compute_dtype=float77"], "compute_dtype"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.seed=-1"], "seed"),
    (["--config", "configs/poem.py", "--workdir", "ftp://host/run"], "ftp:// is not supported"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.export_dtype=int3"], "export_dtype"),
])
def test_train_rejects_bad_input(args: list[str], fragment: str, tmp_path: pathlib.Path) -> None:
    args = [str(tmp_path / "w") if a == "W" else a for a in args]
    assert_usage_error(_train(*args), fragment)


@pytest.mark.parametrize("args, fragment", [
    (["--config", "README.md", "--workdir", "W"], "cannot load config README.md"),
    (["--config", "tests/fixtures/minilm_reference.json", "--workdir", "W"], "cannot load config"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.learning_rate=nan"], "learning_rate"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.learning_rate=inf"], "learning_rate"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.learning_rate=-0.001"], "learning_rate"),
    (["--config", "configs/textgan.py", "--workdir", "W", "--config.adversarial.d_learning_rate=nan"],
     "--config.adversarial.d_learning_rate must be a finite number > 0"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.warmup_steps=-5"], "--config.warmup_steps"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.log_every=0"], "--config.log_every"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.eval_every=-1"], "--config.eval_every"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.model.dropout=1.0"], "--config.model.dropout"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.model.dropout=-0.1"], "--config.model.dropout"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.profile_steps=5"], "must be START:END"),
    (["--config", "configs/poem.py", "--workdir", "W", "--config.profile_steps=9:3"], "0 <= START < END"),
    (["--config", "configs/textgan.py", "--workdir", "W", "--config.model.discriminator.dropout=nan"],
     "--config.model.discriminator.dropout"),
])
def test_train_refuses_a_bad_config_before_anything_loads(args: list[str], fragment: str,
                                                         tmp_path: pathlib.Path) -> None:
    """Refused before any data loads or anything compiles: nothing is printed and nothing is written."""
    args = [str(tmp_path / "w") if a == "W" else a for a in args]
    result = _train(*args)
    assert_usage_error(result, fragment)
    assert result.stdout == "" and not (tmp_path / "w").exists()


def test_train_rejects_a_batch_the_devices_do_not_divide(tmp_path: pathlib.Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), "--config", "configs/poem.py", "--workdir",
                             str(tmp_path / "w"), "--config.batch_size=6"], env=env(4), capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert_usage_error(result, "batch_size 6 must be divisible by the 4 devices")
    assert "verse-en" not in result.stdout and not (tmp_path / "w").exists()  # before the data loads
