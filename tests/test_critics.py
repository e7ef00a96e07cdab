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
    features = critic.features([JINGYESI, JINGYESI, DENG, "白雲"])
    assert features.shape == (4, 2048) and (features[0] == features[1]).all() and (features[0] != features[2]).any()
    assert np.flatnonzero(features[3]).tolist() != np.flatnonzero(critic.features(["白日"])[0]).tolist()


def test_relevance_gives_no_score_to_a_poem_that_adds_nothing():
    scores, _ = PoemCritic(writer="poem", data="verse-en")("The sea", ["The sea", "The sea\nis wide and deep tonight"])
    assert np.isnan(scores["relevance"][0]) and -1 <= scores["relevance"][1] <= 1


def test_candidates_keep_the_best_and_write_every_score(tmp_path: pathlib.Path):
    scores = tmp_path / "new" / "scores.jsonl"  # in a directory that does not exist yet
    result = run_sample("--model", "poem-zh", "--prompt", "春江", "--candidates", "6", "--num", "2",
                        "--scores", str(scores), "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert f"wrote {scores}" in result.stderr  # stdout holds the poems only
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
    assert_usage_error(run_sample("--model", "dcgan", "--prompt", "boot", "--candidates", "4", "--critic", "form"),
                       "unknown critic", "confidence, novelty")
    assert_usage_error(run_sample("--model", "poem", "--prompt", "x", "--emotion", "boredom"),
                       "unknown emotion", "anger, anticipation")
    assert_usage_error(run_sample("--model", "poem-zh", "--prompt", "春", "--emotion", "trust"),
                       "unknown emotion", "joy, like, sadness, disgust, fear")
    assert_usage_error(run_sample("--model", "music", "--prompt", "a jig", "--emotion", "joy"), "--emotion applies")
    assert_usage_error(run_sample("--model", "poem", "--prompt", "x", "--critic", "emotion", "--candidates", "4"),
                       "unknown critic")  # the emotion critic needs --emotion


def test_emotion_keeps_the_poem_the_classifier_finds_saddest(tmp_path: pathlib.Path):
    scores = tmp_path / "scores.jsonl"
    result = run_sample("--model", "poem-zh", "--prompt", "秋風", "--emotion", "哀", "--candidates", "8",
                        "--critic", "emotion", "--scores", str(scores), "--seed", "3")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in scores.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 8 and all(0 <= r["scores"]["emotion"] <= 1 for r in records)
    best = max(records, key=lambda r: r["scores"]["emotion"])
    assert best["kept"] == 0 and result.stdout.strip() == best["text"].strip()
    # The score is the embedded classifier's probability of sadness for that poem.
    from zoo.critics import emotion as emotion_critic

    assert abs(emotion_critic.probability([best["text"]], "zh", "sadness")[0] - best["scores"]["emotion"]) < 1e-4


def test_image_candidates_keep_confident_novel_images_in_one_grid(tmp_path: pathlib.Path):
    from PIL import Image

    out, scores = tmp_path / "boots.png", tmp_path / "boots.jsonl"
    result = run_sample("--model", "dcgan", "--prompt", "an ankle boot", "--num", "4", "--candidates", "16",
                        "--out", str(out), "--scores", str(scores))
    assert result.returncode == 0, result.stderr
    with Image.open(out) as grid:
        assert grid.size == (2 * 34 + 2, 2 * 34 + 2)  # 2 x 2 images of 32 px, 2 px apart
    records = [json.loads(line) for line in scores.read_text().splitlines()]
    kept = [r for r in records if r["kept"] is not None]
    assert len(records) == 16 and len(kept) == 4
    assert all(0.04 < r["scores"]["novelty"] < 0.5 for r in records)  # new images, none a training copy
    # The first kept is the best by the combined ranks, and it is the first image of the grid.
    best = max(records, key=lambda r: r["quality"])
    assert best["kept"] == 0 and best["quality"] > float(np.median([r["quality"] for r in records]))


def test_image_novelty_flags_a_training_image_as_a_copy():
    from zoo.critics.images import COPY_DISTANCE, _training_images, nearest_distance
    from zoo.data.images import load_images

    data = load_images("fashion_mnist")
    images = np.concatenate([data.train_images[:3], data.test_images[:3]])
    distance = nearest_distance(images, _training_images("fashion_mnist"))
    assert np.all(distance[:3] < 1e-3) and np.all(distance[3:] > COPY_DISTANCE)


# ------------------------------------------------------------------------------------------------ melodies


def _melody(meter: str, tonic: int, mode: str, pitches: list[int | None], ql: float = 1.0):
    from zoo.melody.encoding import Melody

    return Melody(meter, tonic, mode, tuple((p, ql) for p in pitches))


def test_the_prompt_asks_for_key_mode_and_meter():
    from zoo.critics.music import asked, genre_meters

    meters = genre_meters(["Tune A. A jig in D major, 6/8.", "Tune B. A jig in G major, 6/8.",
                           "Tune C. A jig in A minor, 9/8.", "Tune D. A reel in D major, 4/4.",
                           "Tune E. An air in G minor, 3/4.", "A Fig for a Kiss. A slip jig in G major, 9/8.",
                           "Not a caption"])
    assert meters["jig"] == {"6/8", "9/8"} and meters["reel"] == {"4/4"}  # 6/8 alone holds 2/3 < 80%
    assert meters["slip jig"] == {"9/8"}  # a title starting "A ..." is not part of the genre
    assert asked("a slow air in E minor", meters) == (4, "minor", {"3/4"})
    assert asked("a jig in F# dorian", meters) == (6, "dorian", {"6/8", "9/8"})
    assert asked("something in Bb major, 2/4", meters) == (10, "major", {"2/4"})
    assert asked("a minor reel", meters) == (None, "minor", {"4/4"})
    assert asked("summer beach", meters) == (None, None, None)


def test_melody_scores_measure_what_they_say():
    from zoo.critics.music import analysed_key, in_key, pitch_range, structure, units

    c_major = _melody("4/4", 0, "major", [60, 62, 64, 65, 67, 69, 71, 72])
    assert in_key(c_major) == 1.0 and pitch_range(c_major) == 1.0  # an octave
    assert in_key(_melody("4/4", 0, "major", list(range(60, 72)))) == 7 / 12
    assert pitch_range(_melody("4/4", 0, "major", [60, 62])) == 2 / 7
    assert analysed_key(_melody("4/4", 0, "major", [60, 64, 67, 72, 67, 64, 60, 62, 59, 60])) == (0, "major")
    assert analysed_key(_melody("4/4", 9, "minor", [57, 60, 64, 69, 64, 60, 57, 59, 56, 57])) == (9, "minor")
    bar_a, bar_b, bar_c = [60, 62, 64, 65], [67, 65, 64, 62], [60, 60, 67, 67]
    assert structure(_melody("4/4", 0, "major", bar_a * 8)) == 0.0  # one bar over and over
    assert structure(_melody("4/4", 0, "major", bar_a + bar_b + bar_c + [72, 71, 69, 67])) == 0.0  # no repeat
    aabb = _melody("4/4", 0, "major", bar_a + bar_a + bar_b + bar_b + bar_c + bar_c + bar_a + bar_b)
    assert structure(aabb) == 1 - (5 / 7 - 0.25) / 0.75  # bars 2, 4, 6, 7 and 8 repeat an earlier one
    some = _melody("4/4", 0, "major", bar_a + bar_b + bar_c + bar_a + [72, 71, 69, 67])  # 1 of 4 repeats
    assert structure(some) == 1.0
    # A bar repeated a fifth higher is still a repeat; novelty compares intervals, so a transposed copy matches.
    assert structure(_melody("4/4", 0, "major", bar_a + [p + 7 for p in bar_a])) == 0.0
    assert units(c_major) == units(_melody("4/4", 7, "major", [p + 7 for p in [60, 62, 64, 65, 67, 69, 71, 72]]))


def test_music_candidates_keep_melodies_in_the_asked_key(tmp_path: pathlib.Path):
    """The embedded music model, its config saying it saw only 40 of O'Neill's tunes: the same sampler, and
    a novelty index the test builds in a second instead of parsing the whole folk corpus."""
    import shutil

    import mido

    from zoo import registry

    checkpoint = tmp_path / "music"
    shutil.copytree(registry.get("music").pretrained_dir, checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps({**config, "data": "oneills1850", "max_tunes": 40}))
    scores = tmp_path / "scores.jsonl"
    result = run_sample("--model", "music", "--prompt", "a reel in E minor", "--candidates", "8", "--num", "2",
                        "--checkpoint", str(checkpoint), "--out", f"{tmp_path}/kept/", "--scores", str(scores),
                        "--seed", "3")
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "kept").glob("*.mid"))
    assert len(files) == 2 and all(len(mido.MidiFile(f).tracks) >= 1 for f in files)
    records = [json.loads(line) for line in scores.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 8
    assert {"key", "meter", "in_key", "structure", "range", "novelty", "copied"} <= set(records[0]["scores"])
    best = max(r["quality"] for r in records)
    kept = sorted((r for r in records if r["kept"] is not None), key=lambda r: r["kept"])
    assert kept[0]["quality"] == best
    assert_usage_error(run_sample("--model", "music", "--prompt", "x", "--candidates", "4", "--critic", "form"),
                       "unknown critic")


def test_a_model_trained_on_emotion_tags_is_primed_with_the_asked_tag(tmp_path: pathlib.Path):
    """tang+emotion: every labelled Tang poem after its emotion's tag line; a poem model trained on it (here
    poem-zh's export marked so) is primed with the asked tag, and the tag never shows in the poem."""
    import shutil

    from zoo import export
    from zoo.data import emotion
    from zoo.sample.lm import PoemSampler
    from zoo.text import moods

    tagged = emotion.tagged_poems("zh")
    assert len(tagged) > 10_000
    tag_of = {moods.tag(name): i for i, name in enumerate(emotion.EMOTIONS["zh"])}
    label_half = emotion.lexicon("zh", "label")
    for poem in tagged[:300]:
        assert label_half.label(poem[3:]) == tag_of[poem[:3]]
    plain = PoemSampler(export.PRETRAINED_DIR / "poem-zh")
    shutil.copytree(export.PRETRAINED_DIR / "poem-zh", tmp_path / "tagged")
    config = json.loads((tmp_path / "tagged" / export.CONFIG).read_text())
    (tmp_path / "tagged" / export.CONFIG).write_text(json.dumps({**config, "data": "tang+emotion"}))
    tagged_model = PoemSampler(tmp_path / "tagged")
    assert tagged_model.reads_moods and not plain.reads_moods
    eos, encode = plain.tokenizer.eos_token_id, plain.tokenizer.encode
    assert tagged_model.prompt_ids("春", "sadness") == [eos] + encode("哀：\n春", add_special_tokens=False)
    untagged = [eos] + encode("春", add_special_tokens=False)
    assert plain.prompt_ids("春", "sadness") == tagged_model.prompt_ids("春") == untagged
    poems = tagged_model.sample("春", 2, 0, emotion="sadness", max_new_tokens=24)
    assert all(p.startswith("春") and "：" not in p[:2] for p in poems)  # the tag primes, it is not written
