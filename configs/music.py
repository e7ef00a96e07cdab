"""Folk melodies with a caption-conditioned LSTM: the embedded `music` model.

Train (about 35 min on 2 CPU cores, ~1 step/s; the first run on a machine also parses the corpus and
embeds its ~49k captions with the text encoder (~3.5 min), both cached under $ZOO_DATA_DIR/cache):
    python train.py --config configs/music.py --workdir runs/music
Result: validation loss in nats/event (and next-event accuracy) in runs/music/metrics.jsonl.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model_name = "music"
    c.data = "folk"  # the four default music21 collections, or names joined by "," (e.g. "oneills1850")
    c.max_tunes = 0  # 0 = all; a cap for tests and quick looks
    c.val_fraction = 0.05
    c.max_len = 384  # events per training row; longer tunes are cropped at a bar line

    c.model = ml_collections.ConfigDict()
    c.model.embed_dim = 64
    c.model.hidden_dim = 256
    c.model.num_layers = 2
    c.model.dropout = 0.1

    c.seed = 0
    c.train_steps = 2000  # ~1 step/s on 2 CPU cores
    c.batch_size = 32  # global, over all devices of all processes
    c.learning_rate = 3e-3
    c.lr_schedule = "cosine"
    c.warmup_steps = 100
    c.min_learning_rate_ratio = 0.1
    c.weight_decay = 0.01
    c.grad_clip_norm = 1.0
    c.adam_b1 = 0.9
    c.adam_b2 = 0.99
    c.compute_dtype = "float32"  # "bfloat16" on GPU/TPU
    c.fsdp = False

    c.log_every = 50
    c.eval_every = 200
    c.eval_batches = 8
    c.checkpoint_every = 200
    c.max_to_keep = 3
    c.async_checkpoints = True
    c.init_from = ""  # "pretrained:music", an export dir or a finished workdir: fine-tune from it
    c.export_dtype = "bfloat16"
    return c
