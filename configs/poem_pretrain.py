"""General English for the `poem` model to start from: the pretraining half of pretrain-then-fine-tune.

Train, then fine-tune on verse into the embedded `poem` (configs/poem_finetune.py):
    python train.py --config configs/poem_pretrain.py --workdir runs/poem-pretrain
    python train.py --config configs/poem_finetune.py --workdir runs/poem
Result (4,800 steps, ~40 min alone on 2 CPU cores): 1.667 bits/char on held-out English; after the
fine-tune, zoo/pretrained/poem/README.md compares it with verse-only runs of equal compute.
"""

import ml_collections

from configs import poem


def get_config() -> ml_collections.ConfigDict:
    c = poem.get_config()
    c.model_name = "poem-pretrain"
    c.data = "english"  # 15 MB: Shakespeare's plays, the King James Bible, the Brown corpus (zoo/data/english.py)
    c.val_fraction = 0.02
    # Sized by a sweep at a sixth of this run's compute (~7 min each on 2 cores, english val bits/char):
    # 4 x 192 2.05, 4 x 256 2.13 (zoo/pretrained/poem/README.md). Smaller steps also mean more of them.
    c.model.num_layers = 4
    c.model.embed_dim = 192
    c.model.num_heads = 4
    c.vocab_size = 4096  # chars per token on held-out verse: 2.36 at 1024, 2.97 at 4096, 3.21 at 8192
    c.train_steps = 4800  # ~4.5 passes over the 4.4 M training tokens
    c.eval_every = 400
    c.checkpoint_every = 400
    return c
