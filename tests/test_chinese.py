"""Chinese prompts: glossed into English for the models that read English (music, images), and mapped to the
Tang corpus's traditional characters for the models that write Chinese, the poems printed back in the
prompt's script. The real dictionary (CC-CEDICT), segmenter (jieba), OpenCC and embedded models."""

from __future__ import annotations

import pathlib

import mido

from tests.helpers import assert_usage_error, run_sample
from zoo.text import chinese


def test_gloss_keeps_content_words_and_drops_particles() -> None:
    reading = chinese.gloss("夏天的海边")
    assert reading.english.split()[0] == "summer"
    assert reading.english.split()[1] in ("coast", "seaside", "seashore", "beach")
    assert ("的", None) in reading.words  # the particle is dropped, and said so
    assert chinese.gloss("夏天的海邊").english == reading.english  # either script
    # Latin letters and a meter stay as typed; a numeral with its classifier says "a", so it is dropped.
    assert chinese.gloss("6/8拍的吉格").english.startswith("6/8 ")
    assert chinese.gloss("一首A小调的曲子").english.endswith(" in A minor")  # the key after its noun
    assert chinese.gloss("一个包").english == "cover"  # 包's first content sense; a sampler ranks (below)


def test_a_word_is_read_in_the_sense_the_ranking_prefers() -> None:
    # 拍 is first "to pat", later "beat (music)"; 小调 is read as the music captions say it.
    assert chinese.gloss("拍").english == "pat"
    assert chinese.gloss("拍", lambda senses: [(s == "beat") * 1.0 for s in senses]).english == "beat"
    assert chinese.gloss("A小调").english == "A minor" and chinese.gloss("一件T恤").english == "T-shirt"
    # A word the dictionary lacks is split into the longest words it has.
    assert [w for w, _ in chinese.gloss("下雨天").words] == ["下雨", "天"]


def test_scripts_are_told_apart_and_converted() -> None:
    assert chinese.script_of("夏天的海边") == "simplified"
    assert chinese.script_of("夏天的海邊") == "traditional"
    assert chinese.script_of("春江") is None  # both scripts write it alike
    assert chinese.convert("夏天的海边", "traditional") == "夏天的海邊"
    assert chinese.convert("春風", "simplified") == "春风"


def test_music_reads_a_chinese_prompt_in_the_models_sense_and_writes_midi(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "beach.mid"
    result = run_sample("--model", "music", "--prompt", "一首A小调的悲伤曲子", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert 'read the Chinese prompt as English: 一首A小调的悲伤曲子 -> "sad tune in A minor"' in result.stdout
    assert sum(m.type == "note_on" for m in mido.MidiFile(out).play()) > 16
    # An image model reads its own sense of 包 ("bag", not "to wrap"): the class it draws.
    result = run_sample("--model", "dcgan", "--prompt", "一个包", "--out", str(tmp_path / "bag.png"))
    assert result.returncode == 0, result.stderr
    assert 'read the prompt \'一个包\' as "a bag" (Bag' in result.stdout


def test_a_tang_model_reads_simplified_and_answers_in_the_prompts_script() -> None:
    simplified = run_sample("--model", "poem-zh", "--prompt", "夏天的海边", "--seed", "3")
    assert simplified.returncode == 0, simplified.stderr
    assert simplified.stdout.startswith("夏天的海边")
    assert "read the prompt 夏天的海边 as 夏天的海邊" in simplified.stderr
    poem = simplified.stdout.strip()
    assert chinese.convert(poem, "simplified") == poem  # no traditional-only character is left
    forced = run_sample("--model", "poem-zh", "--prompt", "夏天的海边", "--seed", "3", "--script", "traditional")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.startswith("夏天的海邊")
    assert chinese.convert(forced.stdout, "simplified") == simplified.stdout  # the same poem, in either script


def test_bad_chinese_input_exits_2(tmp_path: pathlib.Path) -> None:
    assert_usage_error(run_sample("--model", "poem", "--prompt", "The sea", "--script", "simplified"),
                       "--script applies to models that write Chinese")
    assert_usage_error(run_sample("--model", "music", "--prompt", "㐀㐁", "--out", str(tmp_path / "x.mid")),
                       "found no word of the prompt")
    assert not (tmp_path / "x.mid").exists()
