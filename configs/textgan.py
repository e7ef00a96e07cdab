"""Tang five-character quatrains with a RelGAN-style Gumbel-softmax GAN: the embedded `textgan` model
(zoo/pretrained/textgan).

Train on 2 CPU cores, in RelGAN's two phases (zoo.objectives.textgan): maximum likelihood (configs/textgan_mle.py,
about 2 min), which is also the MLE-only baseline of the comparison, then adversarial training from its
generator (about 2 min):
    python train.py --config configs/textgan_mle.py --workdir runs/textgan-mle
    python train.py --config configs/textgan.py --workdir runs/textgan --config.init_from=runs/textgan-mle
The second command made zoo/pretrained/textgan. English verse lines instead of quatrains: configs/textgan_verse.py.
Result (zoo/pretrained/textgan/info.json, step 200): NLL_gen (eval/loss) 5.395 nats/token on the 415 test
quatrains, next-token accuracy 21.3%. BLEU, Self-BLEU and form against the MLE baseline:
`python -m benchmarks.textgan_eval --checkpoint runs/textgan-mle --checkpoint zoo/pretrained/textgan`
(zoo/pretrained/textgan/README.md).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model_name = "textgan"
    c.data = "quatrains"  # or "verse-lines" (zoo.data.poem_forms)
    c.test_fraction = 0.1
    c.max_chars = 48  # verse-lines: the longest line kept, and so the sequence length
    c.tokenizer = "char"
    c.vocab_size = 0

    c.model = ml_collections.ConfigDict()  # the generator: a GPT (zoo.models.lm)
    c.model.num_layers = 3
    c.model.num_heads = 4
    c.model.embed_dim = 256
    c.model.context_length = 32  # a quatrain is 24 tokens after its start token
    c.model.dropout = 0.3  # 3,811 training poems: 0.2 overfit after ~400 steps of MLE
    # RelGAN's discriminator, scaled down from its num_rep 64 x embed_dim 64 and 300 filters per width
    # so that an adversarial step takes ~0.3 s on 2 CPU cores.
    c.model.discriminator = ml_collections.ConfigDict()
    c.model.discriminator.num_rep = 16
    c.model.discriminator.embed_dim = 32
    c.model.discriminator.filter_sizes = (2, 3, 4, 5)
    c.model.discriminator.num_filters = (64, 64, 64, 64)
    c.model.discriminator.hidden_dim = 100
    c.model.discriminator.dropout = 0.25

    c.seed = 0
    c.phase = "adversarial"  # or "mle" (configs/textgan_mle.py)
    c.train_steps = 200  # BLEU peaks while beta is small; 500 steps to beta 100 fell back below MLE
    c.batch_size = 64
    # The MLE phase's optimizer (zoo.train.optim: AdamW, warm-up, cosine).
    c.learning_rate = 1e-3
    c.lr_schedule = "cosine"
    c.warmup_steps = 100
    c.min_learning_rate_ratio = 0.1
    c.weight_decay = 0.1
    c.grad_clip_norm = 1.0
    c.adam_b1 = 0.9
    c.adam_b2 = 0.99
    # The adversarial phase: RelGAN's Adam 1e-4 for both and clipping at 5; beta annealed exponentially
    # from 1 to 4 (RelGAN's 100 scores worse here: its card), with MLE regularisation.
    c.adversarial = ml_collections.ConfigDict()
    c.adversarial.g_learning_rate = 1e-4
    c.adversarial.d_learning_rate = 1e-4
    c.adversarial.adam_b1 = 0.9
    c.adversarial.adam_b2 = 0.999
    c.adversarial.grad_clip_norm = 5.0
    c.adversarial.temperature_max = 4.0
    c.adversarial.temperature_schedule = "exponential"  # constant, linear, exponential, log, quadratic, sqrt
    c.adversarial.mle_weight = 1.0  # > 0: G's gradient also gets this x the MLE loss gradient on the real batch
    c.adversarial.straight_through = False  # True: D sees the one-hot samples; gradients through the relaxation

    c.compute_dtype = "float32"  # "bfloat16" on GPU/TPU
    c.fsdp = False

    c.log_every = 100
    c.eval_every = 500
    c.eval_batches = 100  # all of the test split (415 quatrains)
    c.checkpoint_every = 500
    c.max_to_keep = 3
    c.async_checkpoints = True
    c.profile_steps = ""  # "START:END": a jax.profiler trace of those steps in WORKDIR/profile
    c.init_from = ""  # the MLE run (an export dir or finished workdir): its generator starts this run
    c.export_dtype = "bfloat16"

    c.sample = ml_collections.ConfigDict()
    c.sample.temperature = 1.0  # the distribution the metrics describe
    c.sample.top_k = 0
    c.sample.top_p = 1.0
    return c
