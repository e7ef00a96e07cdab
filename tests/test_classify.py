"""The classify family (the critics' models) on the one loop, and the lexicon rule that labels its poems."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import ROOT, assert_usage_error, env, metrics, run_sample
from zoo import export
from zoo.data import emotion
from zoo.data.batching import ArrayBatches
from zoo.errors import UsageError


def _words(language: str, half: str, category: str, n: int) -> list[str]:
    """n lexicon words of `half` that belong to `category` and to no other offered category."""
    lex = emotion.lexicon(language, half)
    index = list(emotion.EMOTIONS[language].values()).index(category)
    return sorted(w for w, hits in lex.words.items() if list(hits) == [index] and " " not in w)[:n]


def test_lexicon_halves_split_the_words_and_the_rule_picks_the_most_hits():
    for language in ("en", "zh"):
        label, judge, whole = (emotion.lexicon(language, h).words for h in ("label", "judge", "all"))
        assert not label.keys() & judge.keys() and label.keys() | judge.keys() == whole.keys()
        assert min(len(label), len(judge)) > 0.4 * len(whole)  # a stable hash halves them
    sad, joy = _words("en", "label", "sadness", 2), _words("en", "label", "joy", 1)
    lex = emotion.lexicon("en", "label")
    text = f"{sad[0].capitalize()} and {sad[1]}, then {joy[0]}."
    assert lex.counts(text)[lex.emotions.index("sadness")] == 2
    assert lex.label(text) == lex.emotions.index("sadness")
    assert lex.label(f"{sad[0]} {joy[0]}") == -1  # a tie at the top
    assert lex.label("the of and") == -1  # no hit
    # The judge half never sees the labelling half's words.
    assert emotion.lexicon("en", "judge").counts(text).sum() == 0


def test_chinese_lexicon_reads_traditional_poems_through_opencc():
    lex = emotion.lexicon("zh", "all")
    assert lex.emotions == ("joy", "like", "sadness", "disgust", "fear")
    # 悲傷 (traditional) is DUTIR's 悲伤 (simplified, 哀 = sadness); every occurrence counts.
    counts = lex.counts("秋風悲傷客，悲傷不可言。")
    assert counts[lex.emotions.index("sadness")] >= 2
    assert emotion.emotion_index("zh", "哀") == emotion.emotion_index("zh", "Sadness") == 2
    with pytest.raises(UsageError, match="choose one of: joy, like"):
        emotion.emotion_index("zh", "anger")  # too rare in the Tang corpus to be offered


def test_array_batches_are_a_pure_function_of_the_step():
    columns = {"x": np.arange(10), "label": np.arange(10) % 3}
    a, b = ArrayBatches(columns, 4, seed=1), ArrayBatches(columns, 4, seed=1)
    assert [a.batch(s)["x"].tolist() for s in (3, 0, 2)] == [b.batch(s)["x"].tolist() for s in (3, 0, 2)]
    epoch = np.concatenate([a.batch(s)["x"] for s in range(5)])[:10]  # 5 steps of 4 = 2 epochs
    assert sorted(epoch.tolist()) == list(range(10))
    halves = [a.batch(1, p, 2)["x"] for p in (0, 1)]
    assert np.concatenate(halves).tolist() == a.batch(1)["x"].tolist()
    evals = list(a.eval_batches(8))
    assert len(evals) == 3 and evals[-1]["mask"].tolist() == [1, 1, 0, 0]
    walked = np.concatenate([e["x"] for e in evals])
    assert sorted(walked[:10].tolist()) == list(range(10)) and walked[:10].tolist() != list(range(10))
    assert walked[10:].tolist() == walked[:2].tolist()  # the padding repeats the first rows
    other_seed = ArrayBatches(columns, 4, seed=2).eval_batches(8)
    assert [e["x"].tolist() for e in other_seed] == [e["x"].tolist() for e in evals]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> pathlib.Path:
    workdir = tmp_path_factory.mktemp("critic")
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / "configs/fashion_critic.py"),
           "--workdir", str(workdir), "--config.train_steps=150", "--config.batch_size=64",
           "--config.eval_every=75", "--config.log_every=25", "--config.warmup_steps=10", "--config.eval_batches=8"]
    result = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_image_classifier_learns_on_the_loop_and_its_export_reads_back(image_run: pathlib.Path):
    rows = metrics(image_run)
    losses = [r["train/loss"] for r in rows if "train/loss" in r]
    assert losses[-1] < 0.7 * losses[0]
    evals = [r for r in rows if "eval/accuracy" in r]
    assert evals[-1]["eval/accuracy"] > 0.6  # 10 classes: chance is 0.1
    info = json.loads((image_run / "export" / export.CLASSES).read_text())
    assert info["labels"][9] == "Ankle boot" and info["input"] == "image"
    held = info["held_out"]
    assert held["examples"] == 10000 and held["accuracy"] > held["majority_accuracy"] + 0.4
    # The export read back classifies real test images as the held-out table says it does.
    from zoo.data.images import load_images

    data = load_images("fashion_mnist")
    classifier = export.load_classifier(image_run / "export")
    probs = classifier.probabilities(data.test_images[:500])
    assert probs.shape == (500, 10) and np.allclose(probs.sum(1), 1, atol=1e-4)
    assert abs((probs.argmax(1) == data.test_labels[:500]).mean() - held["accuracy"]) < 0.08


def _restore(path: pathlib.Path) -> dict:
    import orbax.checkpoint as ocp

    return ocp.StandardCheckpointer().restore(path.absolute())


def test_text_classifier_fine_tunes_the_pretrained_lm_on_the_loop(tmp_path: pathlib.Path):
    """train.py on the real Tang corpus, starting from the embedded emotion-zh (init_from): beneath the
    export's top blocks and head, the state's frozen encoder IS poem-zh's (the export holds none of it), the
    tuned parts move from the export's values, and the new export again holds only those."""
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / "configs/emotion_zh.py"),
           "--workdir", str(tmp_path), "--config.train_steps=2", "--config.batch_size=8", "--config.eval_batches=1",
           "--config.warmup_steps=1", "--config.init_from=pretrained:emotion-zh"]
    result = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    base = export.load_backbone("pretrained:poem-zh", 96).params
    start = _restore(export.PRETRAINED_DIR / "emotion-zh" / export.PARAMS)
    state = _restore(tmp_path / "checkpoints" / "2" / "state")["task"]
    np.testing.assert_array_equal(state["frozen"]["encoder"]["wte"]["embedding"], base["wte"]["embedding"])
    np.testing.assert_array_equal(state["frozen"]["encoder"]["blocks"]["1"]["mlp"]["c_fc"]["kernel"],
                                  base["blocks"][1]["mlp"]["c_fc"]["kernel"])
    top = state["params"]["encoder"]["blocks"]["3"]["mlp"]["c_fc"]["kernel"]
    tuned = np.asarray(start["encoder"]["blocks"]["3"]["mlp"]["c_fc"]["kernel"], np.float32)
    assert not np.array_equal(top, tuned) and np.abs(top - tuned).max() < 0.05  # two small steps from the export
    assert not np.array_equal(tuned, base["blocks"][3]["mlp"]["c_fc"]["kernel"])  # which is not poem-zh's
    exported = _restore(tmp_path / "export" / export.PARAMS)
    assert set(exported) == {"encoder", "norm", "head"} and set(exported["encoder"]["blocks"]) == {"2", "3"}


def test_embedded_emotion_classifiers_read_their_base_and_refuse_another(tmp_path: pathlib.Path):
    from zoo.critics import emotion as emotion_critic

    for language, texts in (("en", ["I weep alone in grief and sorrow", "What joy, what laughter, what delight"]),
                            ("zh", ["悲傷淚滿衣，愁思斷人腸。", "歡樂笑語多，喜氣滿庭中。"])):
        probs = emotion_critic.classifier(language).probabilities(texts)
        assert probs.shape == (2, len(emotion.EMOTIONS[language])) and np.allclose(probs.sum(1), 1, atol=1e-4)
        sad = emotion_critic.probability(texts, language, "sadness")
        joy = emotion_critic.probability(texts, language, "joy")
        assert sad[0] > sad[1] and joy[1] > joy[0]
    copy = tmp_path / "emotion-zh"
    shutil.copytree(export.PRETRAINED_DIR / "emotion-zh", copy)
    info = json.loads((copy / export.CLASSES).read_text())
    info["backbone_fingerprint"] = "0" * 16
    (copy / export.CLASSES).write_text(json.dumps(info))
    with pytest.raises(UsageError, match="fine-tuned from another"):
        export.load_classifier(copy)


def test_a_critic_model_is_not_a_sampler():
    assert_usage_error(run_sample("--model", "emotion-en", "--prompt", "x"), "is a critic and writes no samples")
