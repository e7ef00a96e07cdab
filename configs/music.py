"""Folk melodies with a caption-conditioned LSTM: the embedded `music` model (zoo/pretrained/music).

Train (the embedded model: this config on one H100, with --config.log_every=500 --config.eval_every=1000
--config.checkpoint_every=2000, which change only how often it logs and saves):
    python train.py --config configs/music.py --workdir runs/music
On 2 CPU cores it takes about 1.7 h; --config.train_steps=2000 --config.batch_size=32 is a shorter run. The
first run on a machine also parses the corpus and embeds its ~49k captions, both cached under
$ZOO_DATA_DIR/cache.
Result: eval/loss 0.889 nats/event, next-event accuracy 69.3% (223 held-out tunes, cropped to max_len);
whole held-out tunes 0.865 nats/event against 2.081 for a bigram and 2.872 for a unigram model
(python -m benchmarks.music_eval; its prompt-control table is in zoo/pretrained/music/README.md).
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
    c.model.dropout = 0.3  # 0.1 overfits after ~4000 steps (eval 0.886 -> 0.910 by step 8000)

    c.seed = 0
    c.train_steps = 6000
    c.batch_size = 64  # global, over all devices of all processes
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
    # On the CPU only (zoo.train.loop.compiler_options): the matmuls on Eigen, not YNNPACK; the step 5-8%
    # faster (docs/performance.md). XLA's default instead:
    # --config.xla_cpu_options.xla_cpu_experimental_ynn_fusion_type=
    c.xla_cpu_options = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}

    c.log_every = 50
    c.eval_every = 200
    c.eval_batches = 8
    c.checkpoint_every = 200
    c.max_to_keep = 3
    c.async_checkpoints = True
    c.profile_steps = ""  # "START:END": a jax.profiler trace of those steps in WORKDIR/profile
    c.init_from = ""  # "pretrained:music", an export dir or a finished workdir: fine-tune from it
    c.export_dtype = "bfloat16"
    return c
