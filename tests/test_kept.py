"""Fine-tuning on what a person kept: midi:DIR and images:DIR folders, the small-set settings, and early
stopping that keeps the best step; the real samplers' own files and Fashion-MNIST test pictures."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.helpers import ROOT, assert_usage_error, env, metrics, run_sample, train_cmd
from zoo.data import kept
from zoo.errors import UsageError


@pytest.fixture(scope="module")
def jigs(tmp_path_factory) -> pathlib.Path:
    """Eight jigs drawn by the embedded music model, kept in a folder with a captions.txt for two."""
    folder = tmp_path_factory.mktemp("kept") / "jigs"
    result = run_sample("--model", "music", "--prompt", "a jig in D major", "--num", "8", "--bars", "8",
                        "--out", f"{folder}/")
    assert result.returncode == 0, result.stderr
    (folder / "captions.txt").write_text("000.mid\tThe Kept Reel\n001.mid: my seaside air\n", encoding="utf-8")
    return folder


def _train(workdir: pathlib.Path, *args: str, config: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / config), "--workdir",
                           str(workdir), *args], env=env(1), capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_a_midi_folder_reads_as_captioned_tunes(jigs: pathlib.Path) -> None:
    corpus = kept.load_midi_folder(f"midi:{jigs}")
    assert len(corpus.tunes) == 8
    by_file = {pathlib.Path(t.source).name: t for t in corpus.tunes}
    assert (by_file["000.mid"].title, by_file["000.mid"].genre) == ("The Kept Reel", "reel")
    assert (by_file["001.mid"].title, by_file["001.mid"].genre) == ("My seaside air", "air")
    # The others name themselves: a sample's file carries its prompt.
    assert (by_file["002.mid"].title, by_file["002.mid"].genre) == ("A jig in D major", "jig")
    assert all(t.meter == "6/8" and (t.tonic, t.mode) == (2, "major") for t in corpus.tunes)
    assert all(len(t.pitches) == len(t.ticks) > 8 for t in corpus.tunes)


def test_empty_or_unusable_folders_are_refused(tmp_path: pathlib.Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.mid").write_bytes(b"not midi")
    for spec, fragment in ((f"midi:{tmp_path}/empty", "no MIDI files"), (f"midi:{tmp_path}/junk", "none of the 1"),
                           (f"images:{tmp_path}/empty", "no pictures"), (f"midi:{tmp_path}/nowhere", "no such")):
        with pytest.raises(UsageError, match=fragment):
            kept.load_image_folder(spec) if spec.startswith("images:") else kept.load_midi_folder(spec)
    result = _train(tmp_path / "run", f"--config.data=midi:{tmp_path}/empty", config="configs/music.py")
    assert_usage_error(result, "empty: nothing to fine-tune on")
    assert not (tmp_path / "run").exists()


def test_music_fine_tunes_on_a_kept_folder_and_stops_early(jigs: pathlib.Path, tmp_path: pathlib.Path) -> None:
    workdir = tmp_path / "run"
    # A rate far too high, and stopping at the first evaluation that is no better: the held-out loss zigzags.
    args = ("--config.init_from=pretrained:music", f"--config.data=midi:{jigs}", "--config.batch_size=8",
            "--config.learning_rate=0.1", "--config.early_stop=1")
    result = _train(workdir, *args, config="configs/music.py")
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert f"midi:{jigs} holds 8 items: a small set, so train_steps=60, eval_every=6" in log
    note = log.split("small set")[1].split("\n")[0]
    assert "warmup_steps=6" in note and "learning_rate" not in note and "early_stop" not in note  # set by hand
    evals = [r for r in metrics(workdir) if "eval/loss" in r]
    best = min(evals, key=lambda r: r["eval/loss"])
    assert "early stop at step" in log and evals[-1]["step"] < 60
    info = json.loads((workdir / "export" / "info.json").read_text())
    assert info["step"] == best["step"] and info["early_stop"]["best_step"] == best["step"]
    assert info["eval/loss"] == pytest.approx(best["eval/loss"])
    again = _train(workdir, *args, config="configs/music.py")  # the same command: nothing left to do
    assert again.returncode == 0 and "already stopped early" in again.stdout
    sampled = run_sample("--model", "music", "--prompt", "a tune", "--checkpoint", str(workdir), "--bars", "4",
                         "--out", str(tmp_path / "after.mid"))
    assert sampled.returncode == 0, sampled.stderr


def test_an_image_folder_names_its_classes_and_fine_tunes_the_vae(tmp_path: pathlib.Path) -> None:
    from zoo.data.images import load_images

    ds = load_images("fashion_mnist")
    folder = tmp_path / "pictures"
    folder.mkdir()
    for name, label in (("sneaker", 7), ("a-pair-of-jeans", 1), ("teapot", 8)):
        for i, index in enumerate(np.flatnonzero(ds.test_labels == label)[:4]):
            Image.fromarray(255 - ds.test_images[index][..., 0]).resize((56, 56)).save(folder / f"{name}-{i}.png")
    data = kept.load_image_folder(f"images:{folder}")
    assert data.class_names == ("Sneaker", "Trouser", "teapot")  # two answer to Fashion-MNIST classes
    assert data.train_images.shape[1:] == (28, 28, 1) and len(data.test_images) >= 1
    assert len(data.train_images) + len(data.test_images) == 12
    assert data.train_images.mean() < 80  # inverted back to a light object on black
    result = _train(tmp_path / "vae", "--config.init_from=pretrained:vae", f"--config.data=images:{folder}",
                    "--config.train_steps=6", "--config.batch_size=4", config="configs/vae.py")
    assert result.returncode == 0, result.stderr[-3000:]
    sampled = run_sample("--model", "vae", "--prompt", "a teapot", "--checkpoint", str(tmp_path / "vae"),
                         "--out", str(tmp_path / "teapot.png"))
    assert sampled.returncode == 0, sampled.stderr
    assert "as \"a teapot\" (teapot" in sampled.stdout


def test_early_stop_needs_evaluations(tmp_path: pathlib.Path) -> None:
    result = subprocess.run(train_cmd(tmp_path / "run", "--config.early_stop=2", "--config.eval_every=0"),
                            env=env(1), capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert_usage_error(result, "--config.early_stop needs evaluations")
    assert not (tmp_path / "run").exists()
