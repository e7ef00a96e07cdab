"""Fashion-MNIST with a caption-conditioned DCGAN and a projection discriminator: the embedded `dcgan` model
(zoo/pretrained/dcgan).

Train (about 20 min on 2 CPU cores; the first run on a machine also embeds the 61 class captions with the
text encoder, cached under $ZOO_DATA_DIR/cache):
    python train.py --config configs/dcgan.py --workdir runs/dcgan
Result (zoo/pretrained/dcgan/info.json, step 10000, on the test split): eval/d_loss 0.949, eval/g_loss 2.29,
eval/d_accuracy 0.778, eval/d_cond_accuracy 0.320. Sample quality (conditional accuracy, Frechet distance,
diversity) is what `python -m benchmarks.image_eval --checkpoint zoo/pretrained/dcgan` measures
(zoo/pretrained/dcgan/README.md).
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
    # convolution kernels use one core; steps 4-6% faster (docs/performance.md). XLA's default instead:
    # --config.xla_cpu_options.xla_cpu_experimental_ynn_fusion_type=
    c.xla_cpu_options = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE"}

    c.log_every = 100
    c.eval_every = 1000
    c.eval_batches = 8
    c.checkpoint_every = 1000
    c.max_to_keep = 3
    c.async_checkpoints = True
    c.profile_steps = ""  # "START:END": a jax.profiler trace of those steps in WORKDIR/profile
    c.init_from = ""  # "pretrained:dcgan", an export dir or a finished workdir: fine-tune G from it
    c.export_dtype = "bfloat16"
    return c
