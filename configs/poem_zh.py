"""Tang poems (chinese-poetry, 全唐诗) with a character-level GPT: the embedded `poem-zh` model
(zoo/pretrained/poem-zh). The architecture and optimizer are configs/poem.py's.

Train (about 35 min on 2 CPU cores):
    python train.py --config configs/poem_zh.py --workdir runs/poem-zh
Result (zoo/pretrained/poem-zh/info.json, step 1200): validation loss 4.580 nats/char, 6.61 bits/char;
next-character accuracy 26.3%.
"""

import ml_collections

from configs import poem


def get_config() -> ml_collections.ConfigDict:
    c = poem.get_config()
    c.model_name = "poem-zh"
    c.data = "tang"
    c.tokenizer = "char"  # BPE cannot compress Tang verse (0.96 tokens/char): each Han character is a token
    c.vocab_size = 0
    c.model.context_length = 96  # a regulated verse is 24-71 characters with punctuation and newlines
    c.batch_size = 48
    c.sample.max_new_tokens = 100
    return c
