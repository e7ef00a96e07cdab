"""Tang poems (chinese-poetry, 全唐诗) with a character-level GPT: the embedded `poem-zh` model.

Train (about 25 min on 2 CPU cores):
    python train.py --config configs/poem_zh.py --workdir runs/poem-zh
Result: see README "Results".
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
