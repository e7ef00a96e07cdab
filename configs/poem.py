"""English verse with a GPT over byte-level BPE tokens, trained on verse alone.

The embedded `poem` is no longer made this way: it is pretrained on general English and then fine-tuned on
this verse (configs/poem_pretrain.py, configs/poem_finetune.py), which models held-out verse 0.16 bits/char
better at equal compute. This config stays the from-scratch recipe: the verse-only side of that comparison (with
the pretraining's size, on the command line in zoo/pretrained/poem/README.md), the template the tests and
the PyTorch twin (benchmarks/compare.py) train, and a starting point for your own corpus:
    python train.py --config configs/poem.py --workdir runs/poem-verse
Result (1200 steps, about 25 min on 2 CPU cores): validation 2.24 bits/char on held-out verse, 88% of the
samples' words in the dictionary (the previous embedded `poem`).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model_name = "poem"
    c.data = "verse-en"
    c.val_fraction = 0.05
    # Byte-level BPE: each step sees ~2.5x more text than with characters, so at equal steps and model size
    # it models verse better (2.69 against 3.47 bits/char at 2 layers x 128, 400 steps; zoo/pretrained/poem/README.md).
    c.tokenizer = "bpe"  # or "char"
    c.vocab_size = 1024  # bpe: number of tokens (0 = 4096); char: a cap on the alphabet (0 = none)

    c.model = ml_collections.ConfigDict()
    c.model.num_layers = 4
    c.model.num_heads = 4
    c.model.embed_dim = 256
    c.model.context_length = 128  # the sampler slides this window for longer poems
    c.model.dropout = 0.1

    c.seed = 0
    c.train_steps = 1200
    c.batch_size = 32  # global, over all devices of all processes
    c.learning_rate = 2e-3
    c.lr_schedule = "cosine"
    c.warmup_steps = 100
    c.min_learning_rate_ratio = 0.1
    c.weight_decay = 0.1
    c.grad_clip_norm = 1.0
    c.adam_b1 = 0.9
    c.adam_b2 = 0.99
    c.compute_dtype = "float32"  # "bfloat16" on GPU/TPU
    c.fsdp = False
    # On the CPU only (zoo.train.loop.compiler_options): the matmuls on Eigen, not YNNPACK, whose kernels are
    # slower at this model's narrow products ([16384, 256] x [256, 1024]: 379 against 446 GFLOP/s; the step
    # figures are in docs/performance.md). XLA's default instead:
    # --config.xla_cpu_options.xla_cpu_experimental_ynn_fusion_type=
    c.xla_cpu_options = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}

    c.log_every = 50
    c.eval_every = 200
    c.eval_batches = 16
    c.checkpoint_every = 200
    c.max_to_keep = 3
    c.async_checkpoints = True
    c.profile_steps = ""  # "START:END": a jax.profiler trace of those steps in WORKDIR/profile
    c.init_from = ""  # "pretrained:poem", an export dir or a finished workdir: fine-tune from it
    c.export_dtype = "bfloat16"

    # Sampling defaults (sample.py reads them from the exported config.json).
    c.sample = ml_collections.ConfigDict()
    c.sample.max_new_tokens = 240
    c.sample.temperature = 0.8
    c.sample.top_k = 0
    c.sample.top_p = 0.95
    return c
