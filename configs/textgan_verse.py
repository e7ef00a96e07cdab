"""English verse lines with the text GAN: the second `textgan` config (not embedded).

Train (on 2 CPU cores; the MLE phase, then the adversarial one from it):
    python train.py --config configs/textgan_verse.py --workdir runs/textgan-verse-mle --config.phase=mle
    python train.py --config configs/textgan_verse.py --workdir runs/textgan-verse \
        --config.init_from=runs/textgan-verse-mle
Lines of 16-48 characters from the English verse corpus (zoo.data.poem_forms, `verse-lines`: 19,395
train / 2,160 test lines), character tokens padded with the end token; BLEU counts words. No trained
result is recorded (the textgan card's table is on the quatrains, the text-GAN literature's Chinese-poem
benchmark); `python -m benchmarks.textgan_eval --checkpoint runs/textgan-verse` scores a run the same way.
"""

import ml_collections

from configs import textgan


def get_config() -> ml_collections.ConfigDict:
    c = textgan.get_config()
    c.data = "verse-lines"
    c.max_chars = 48
    c.model.context_length = 64  # 48 characters after the start token
    c.model.dropout = 0.1  # 5x the quatrains' text
    c.train_steps = 1000
    return c
