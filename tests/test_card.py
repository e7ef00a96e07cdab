"""The model card's generated part (zoo/train/card.py), and the model builder's refusal of unknown keys."""

from __future__ import annotations

import numpy as np
import pytest

from zoo import config as config_lib
from zoo.errors import UsageError
from zoo.models import build
from zoo.models.lm import GPT
from zoo.train import card


def _config(**overrides):
    config = config_lib.load_config_file("configs/poem.py")
    for key, value in overrides.items():
        config[key] = value
    return config


def test_rendered_card_names_data_licence_size_and_metrics() -> None:
    params = {"w": np.zeros((3, 4), np.float32), "b": np.zeros((4,), np.float32)}
    info = {"step": 7, "family": "lm", "command": "python train.py --config configs/poem.py --workdir W",
            "eval/loss": 1.25, "steps_per_sec": 2.5, "devices": "1 x cpu (cpu)"}
    text = card.render(_config(), info, params)
    assert text.startswith("# poem\n") and text.endswith(card.GENERATED_END + "\n")
    assert "| parameters | 16 exported (0.00 MiB in bfloat16) |" in text
    assert "| data licence | fortunes: BSD" in text and "| speed | 2.50 steps/s" in text
    assert "| `eval/loss` | 1.2500 |" in text and "`python train.py --config configs/poem.py --workdir W`" in text
    assert "initialised from" not in text


def test_a_fine_tuned_card_carries_the_base_models_data_and_licence() -> None:
    text = card.render(_config(init_from="pretrained:poem", data="text:/my/poems.txt"), {"family": "lm"}, {})
    assert "| data licence | the user's: check it before sharing the model |" in text
    assert "| initialised from | `pretrained:poem`, trained on `verse-en`: Debian `fortunes`" in text
    assert "licence: fortunes: BSD" in text


def test_hand_written_sections_survive_a_new_generated_part() -> None:
    old = "# poem\nold table\n" + card.GENERATED_END + "\n## Samples\nby hand\n"
    assert card.with_hand_sections("# poem\nnew\n" + card.GENERATED_END + "\n", old) == (
        "# poem\nnew\n" + card.GENERATED_END + "\n## Samples\nby hand\n")
    assert card.with_hand_sections("new\n", "a card without the marker") == "new\n"
    assert card.with_hand_sections("new\n", None) == "new\n"


def test_build_refuses_a_key_the_model_does_not_take() -> None:
    config = _config()
    config.model.unknown_width = 3
    with pytest.raises(UsageError, match="GPT takes no unknown_width"):
        build(GPT, config, None, vocab_size=10)
