"""Fashion-MNIST with a caption-conditioned DCGAN and a projection discriminator: the embedded `dcgan` model.

Train (~15 min on 2 CPU cores: 7-13 steps/s at batch 64 measured, depending on what else the cores run; the
first run on a machine also embeds the 61 class captions with the text encoder, cached under
$ZOO_DATA_DIR/cache):
    python train.py --config configs/dcgan.py --workdir runs/dcgan
Result (the embedded model, this exact command on 2 CPU cores, ~20 min; `python -m benchmarks.image_eval
--checkpoint zoo/pretrained/dcgan`, judged by benchmarks/classifiers/fashion_mnist, 90.3% on real test
images): conditional accuracy 93.0% of 10,000 samples, every class at >= 0.99 of the judge's own accuracy
on real images of that class (Shirt 75.1% vs 69.5%, Sandal 96.9% vs 97.8%); classifier-feature Frechet
distance 2.41 (real train vs test: 0.15); per-class pixel diversity 0.88-1.00 of the real test images'.
Exploration on an H100 (another, throw-away classifier): the worst class reached 0.64 / 0.82 / 0.93 of the
judge's accuracy after 3k / 6k / 10k steps (hence 10k), seed 1 at 10k 0.88; the hinge loss equal in
accuracy and a little worse in FD (2.9 vs 2.3); g_features = d_features = 24 clearly worse (FD 10.0).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model_name = "dcgan"
    c.data = "fashion_mnist"  # or "mnist", "tfds:NAME" (zoo.data.images)
    c.image_size = 32  # 28x28 images are padded (centred, black) to this; 4 * 2**k
    c.loss = "nonsaturating"  # or "hinge"

    c.model = ml_collections.ConfigDict()
    c.model.z_dim = 64
    c.model.cond_features = 32  # G's learned projection of the 384-d caption embedding
    c.model.g_features = 32  # G's widths: 4x4x128 -> 8x8x64 -> 16x16x32 -> 32x32x1
    c.model.d_features = 32  # D's widths: 16x16x32 -> 8x8x64 -> 4x4x128

    c.seed = 0
    c.train_steps = 10000  # 6k steps: worst class below 90% of the classifier's accuracy on real images
    c.batch_size = 64  # global, over all devices of all processes
    # Radford et al.: Adam, lr 2e-4, b1 0.5, constant; no clipping, no weight decay. Both G and D use these.
    c.learning_rate = 2e-4
    c.lr_schedule = "constant"
    c.warmup_steps = 0
    c.min_learning_rate_ratio = 1.0
    c.weight_decay = 0.0
    c.grad_clip_norm = 0.0  # 0 = off
    c.adam_b1 = 0.5
    c.adam_b2 = 0.999
    c.compute_dtype = "float32"  # "bfloat16" on GPU/TPU
    c.fsdp = False
    # On the CPU only (zoo.train.loop.compiler_options): the convolutions on Eigen, not YNNPACK, whose
    # convolution kernels use one core; steps 4-6% faster (docs/benchmarks.md). XLA's default instead:
    # --config.xla_cpu_options.xla_cpu_experimental_ynn_fusion_type=
    c.xla_cpu_options = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE"}

    c.log_every = 100
    c.eval_every = 1000
    c.eval_batches = 8
    c.checkpoint_every = 1000
    c.max_to_keep = 3
    c.async_checkpoints = True
    c.init_from = ""  # "pretrained:dcgan", an export dir or a finished workdir: fine-tune G from it
    c.export_dtype = "bfloat16"
    return c
