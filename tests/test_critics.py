"""zoo.critics: each poem score measures what its name says, on real poems; --candidates keeps the best."""

from __future__ import annotations

import json
import pathlib

import numpy as np

from tests.helpers import assert_usage_error, run_sample
from zoo.critics.novelty import NgramIndex
from zoo.critics.text import PoemCritic, form_en, form_zh, language, units

# 李白《靜夜思》 (a five-character quatrain; lines 2 and 4 rhyme: 霜 shuang, 鄉 xiang) and 王之渙
# 《登鸛雀樓》 (流 liu, 樓 lou).
JINGYESI = "床前明月光，疑是地上霜。\n舉頭望明月，低頭思故鄉。"
DENG = "白日依山盡，黃河入海流。\n欲窮千里目，更上一層樓。"


def test_form_zh_rewards_the_quatrain_and_its_rhyme():
    assert form_zh(JINGYESI) == 1.0
    assert form_zh(DENG) == 1.0
    # Break the rhyme (霜 -> 雪, xue): one of the two even lines no longer rhymes with the other.
    assert form_zh(JINGYESI.replace("霜", "雪")) == (1 + 1 + 0.5) / 3
    # A line of 6 characters among 5s; three lines instead of four (its one even line rhymes with itself).
    assert form_zh("床前明月光光，疑是地上霜。\n舉頭望明月，低頭思故鄉。") == (1 + 0.75 + 1) / 3
    assert form_zh("床前明月光，疑是地上霜。\n舉頭望明月。") == (0 + 1 + 1) / 3
    assert form_zh("hello") == 0.0


def test_form_en_counts_lines_and_their_lengths():
    sonnet_start = ("Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\n"
                    "Rough winds do shake the darling buds of May,\nAnd summer's lease hath all too short a date;")
    assert form_en(sonnet_start) == 1.0
    assert form_en("one line only, which is a perfectly fine line") == 0.5
    assert form_en("a\nb\nc\nd") == 0.5  # four lines of one word each


def test_language_and_units():
    assert language([JINGYESI, DENG]) == "zh" and language(["The moon is up", JINGYESI[:4]]) == "en"
    assert units("The moon's up, the MOON!", "en") == ["the", "moon's", "up", "the", "moon"]
    assert units(JINGYESI, "zh")[:5] == list("床前明月光")


def test_novelty_finds_the_longest_span_copied_from_one_document():
    corpus = [units(JINGYESI, "zh"), units(DENG, "zh")]
    index = NgramIndex(corpus, 5)
    share, span = index.overlap(units(JINGYESI, "zh"))
    assert (share, span) == (1.0, 20)  # the whole poem is a training poem
    # The first line of one poem then the second of the other: every 5-gram inside a line is found, those
    # across the seam are not, and no span crosses from one training poem into the other.
    mixed = units("床前明月光，黃河入海流。", "zh")
    share, span = index.overlap(mixed)
    assert span == 5 and share == 2 / 6
    assert index.overlap(units("春眠不覺曉，處處聞啼鳥。", "zh")) == (0.0, 0)
    assert np.isnan(index.overlap(list("床前"))[0])


def test_poem_critic_scores_real_poems_by_name(tmp_path: pathlib.Path):
    critic = PoemCritic(writer="poem-zh", data="no-such-corpus")  # novelty needs a corpus zoo knows
    scores, copies = critic("床前", [JINGYESI, "床前明月光光光光光光光光光光光光光光光光"])
    assert set(scores) == {"fluency", "form"} and not copies.any()
    assert scores["form"][0] == 1.0 and scores["form"][1] < 0.5
    # The judge (the text GAN's generator, not poem-zh) finds Li Bai's poem more likely than a stammer.
    assert 0 < scores["fluency"][0] < scores["fluency"][1]
    features = critic.features([JINGYESI, JINGYESI, DENG])
    assert features.shape == (3, 2048) and (features[0] == features[1]).all() and (features[0] != features[2]).any()


def test_candidates_keep_the_best_and_write_every_score(tmp_path: pathlib.Path):
    scores = tmp_path / "scores.jsonl"
    result = run_sample("--model", "poem-zh", "--prompt", "春江", "--candidates", "6", "--num", "2",
                        "--scores", str(scores), "--seed", "1")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in scores.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 6 and all(r["text"].startswith("春江") for r in records)
    kept = sorted((r for r in records if r["kept"] is not None), key=lambda r: r["kept"])
    assert [r["kept"] for r in kept] == [0, 1]
    # The printed poems are the kept candidates, best first; the best has the highest combined quality.
    assert result.stdout.split("\n\n")[0].strip() == kept[0]["text"].strip()
    assert kept[0]["quality"] == max(r["quality"] for r in records)
    assert {"fluency", "form"} <= set(kept[0]["scores"]) and "ranked by" in result.stderr
    # One score alone: the kept poem has the best form of the six.
    one = run_sample("--model", "poem-zh", "--prompt", "春江", "--candidates", "6", "--critic", "form", "--seed", "1")
    assert one.returncode == 0, one.stderr
    best_form = max(r["scores"]["form"] for r in records)
    assert form_zh(one.stdout) == best_form


def test_candidates_bad_input_exits_2():
    assert_usage_error(run_sample("--model", "poem", "--prompt", "x", "--num", "4", "--candidates", "2"),
                       "--candidates")
    assert_usage_error(run_sample("--model", "poem", "--prompt", "x", "--candidates", "4", "--critic", "beauty"),
                       "unknown critic")
    assert_usage_error(run_sample("--model", "dcgan", "--prompt", "boot", "--candidates", "4"), "critics")
