"""A Fashion-MNIST classifier: the embedded `fashion-critic` (zoo/pretrained/fashion-critic) that
`sample.py --model dcgan|vae --candidates N` ranks images with. It is not the judge of the benchmarks
(benchmarks/image_classifier.py, another architecture trained apart), so a picked image is judged by a
classifier that did not pick it.

Train (about 4 min on 2 CPU cores):
    python train.py --config configs/fashion_critic.py --workdir runs/fashion-critic
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model_name = "fashion-critic"
    c.input = "image"
    c.data = "fashion_mnist"  # or mnist (zoo.data.images)

    c.model = ml_collections.ConfigDict()
    c.model.channels = (32, 64, 128)
    c.model.dropout = 0.2

    c.seed = 0
    c.train_steps = 4000
    c.batch_size = 128
    c.learning_rate = 2e-3
    c.lr_schedule = "cosine"
    c.warmup_steps = 100
    c.min_learning_rate_ratio = 0.0
    c.weight_decay = 0.01
    c.grad_clip_norm = 1.0
    c.adam_b1 = 0.9
    c.adam_b2 = 0.999
    c.compute_dtype = "float32"
    c.fsdp = False
    c.xla_cpu_options = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE"}

    c.log_every = 100
    c.eval_every = 1000
    c.eval_batches = 20
    c.checkpoint_every = 1000
    c.max_to_keep = 2
    c.async_checkpoints = True
    c.profile_steps = ""
    # What the card shows this critic is for (a classifier writes no samples of its own).
    c.used_by = "python sample.py --model dcgan --prompt \"a shirt\" --candidates 16 --num 4"
    c.init_from = ""
    c.export_dtype = "bfloat16"
    return c
