"""English verse, fine-tuned from the GPT pretrained on general English: the embedded `poem` model.

Train (pretraining first; the fine-tune reads runs/poem-pretrain, its tokenizer included):
    python train.py --config configs/poem_pretrain.py --workdir runs/poem-pretrain
    python train.py --config configs/poem_finetune.py --workdir runs/poem
Result (600 steps, 5 min): 2.057 bits/char on held-out verse, against 2.220 for the best verse-only run of
the same model and budget; 92% of the samples' words in the dictionary. zoo/pretrained/poem/README.md has the
comparison (python -m benchmarks.pretrain_gain) and its commands.
"""

import ml_collections

from configs import poem_pretrain


def get_config() -> ml_collections.ConfigDict:
    c = poem_pretrain.get_config()  # the same model: its weights are the starting point
    c.model_name = "poem"
    c.data = "verse-en"
    c.val_fraction = 0.05
    c.init_from = "runs/poem-pretrain"
    c.train_steps = 600
    c.learning_rate = 1e-3  # half the pretraining peak: move towards verse without unlearning English
    c.warmup_steps = 50
    c.eval_every = 100
    c.checkpoint_every = 100
    c.early_stop = 3  # 1 MB of verse is ~75 steps an epoch: stop when it overfits; the export keeps the best step
    return c
