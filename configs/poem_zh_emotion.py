"""poem-zh fine-tuned on emotion-tagged Tang poems: the conditioned model that `--emotion` primes with a tag.

Each Tang poem the DUTIR lexicon's labelling half labels (zoo.data.emotion) is written after its emotion's
tag line (zoo.text.moods: 樂/好/哀/惡/懼 and a colon), and poem-zh continues training on them, so that
`sample.py --checkpoint runs/poem-zh-emotion --model poem-zh --emotion sadness` writes poems primed with
the 哀 tag (then also chosen by the emotion critic). It is measured against choosing alone in
benchmarks/emotion_gain.py (`--checkpoint`) and not embedded.

Train (about 12 min on 2 CPU cores):
    python train.py --config configs/poem_zh_emotion.py --workdir runs/poem-zh-emotion
"""

import ml_collections

from configs import poem_zh


def get_config() -> ml_collections.ConfigDict:
    c = poem_zh.get_config()
    c.model_name = "poem-zh"
    c.data = "tang+emotion"
    c.init_from = "pretrained:poem-zh"  # its tokenizer too: the tags are Tang characters it knows
    c.train_steps = 400  # ~1.1 epochs of the 16,769 tagged poems
    c.learning_rate = 5e-4
    c.warmup_steps = 20
    c.eval_every = 200
    c.checkpoint_every = 200
    return c
