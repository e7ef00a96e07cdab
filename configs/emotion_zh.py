"""The emotion of a Tang poem: the zoo's own Tang GPT (poem-zh) fine-tuned on poems labelled by the DUTIR
lexicon: the embedded `emotion-zh` critic (zoo/pretrained/emotion-zh), what `sample.py --model poem-zh
--emotion NAME` chooses with. MiniLM's vocabulary knows 2.7% of the corpus's characters (28% of its
running text), so the encoder is the LM that learnt these characters.

Train (about 10 min on 2 CPU cores):
    python train.py --config configs/emotion_zh.py --workdir runs/emotion-zh
"""

import ml_collections

from configs import emotion_en


def get_config() -> ml_collections.ConfigDict:
    c = emotion_en.get_config()
    c.model_name = "emotion-zh"
    c.used_by = "python sample.py --model poem-zh --prompt \"夏天的海边\" --emotion joy"
    c.data = "emotion:zh"  # zoo.data.emotion: the tang corpus, DUTIR labels (OpenCC t2s before lookup)
    c.backbone = "pretrained:poem-zh"
    c.max_tokens = 96  # poem-zh's context: a regulated verse is at most 71 characters
    c.val_fraction = 0.05  # poem-zh's, by the same hash: its held-out poems are ones the base never trained on
    c.model.trainable_layers = 2  # of 4 blocks of 256: a 3.2 MB export
    c.balanced = True  # 58% of the labelled poems are "like": unweighted, the head learnt little else
    c.learning_rate = 1e-3
    c.train_steps = 1500
    c.eval_batches = 27  # all 843 held-out poems
    return c
