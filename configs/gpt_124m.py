"""GPT-2-small (124M parameters) in the `poem` LM family: the plan for training it on a slice of chips.

model_name "poem" because this is that family's model, objective and sampler at GPT-2-small size (12
layers x 768, 12 heads, context 1024), not a new family: the registry needs no entry. Its optimizer is
nanoGPT's GPT-2 reproduction (config/train_gpt2.py): AdamW lr 6e-4, betas (0.9, 0.95), weight decay 0.1 on
matrices, clipping at 1.0, 2,000 warm-up steps, cosine to 6e-5 over 600,000 steps, no dropout.

Sized without data or chips (benchmarks/plan.py compiles the loop's real train step for N host devices and
reads XLA's memory and FLOP counts; the table and the knobs are in docs/benchmarks.md, "Plan: GPT-2-small on
8 chips"):
    python -m benchmarks.plan --config configs/gpt_124m.py --devices 8 --json
Result (benchmarks/results/plan_gpt_124m_cpu8.json and the -remat files): per chip 0.46 GiB of params, 0.93 of
AdamW moments, 143.3 of temporaries (activations; the float32 logits alone are 13.2 GB): 144.7 GiB, which fits
no chip. `--remat` (model.remat) brings it to 28.3 GiB for 17% more executed FLOPs.

| target (chips) | fits as configured | with --remat | step / tokens/s at 40% MFU | at 60% MFU |
|---|---|---|---|---|
| TPU v4-8 (4) | no (287 GiB) | no (54.9); at --batch 256: yes (28.3) | 1.02 s / 514k | 0.68 s / 772k |
| TPU v5e-8 (8) | no | no; at --batch 128: yes (8.3) | 0.71 s / 737k | 0.47 s / 1.11M |
| TPU v5p-8 (4) | no (287 GiB) | yes (54.9) | 0.61 s / 859k | 0.41 s / 1.29M |
| 8 x H100 SXM (8) | no | yes (28.3) | 0.14 s / 3.70M | 0.09 s / 5.55M |

To train it, point `data` at a web-scale corpus (`--config.data=text:DIR` or `tfds:NAME`): the default
verse-en corpus is a few MB, which a 124M model memorises, and too little text for a BPE of 50,304 tokens.
"""

import ml_collections

from configs import poem


def get_config() -> ml_collections.ConfigDict:
    c = poem.get_config()
    c.model_name = "poem"  # the LM family (zoo/registry.py) at GPT-2-small size
    c.data = "verse-en"
    c.tokenizer = "bpe"
    # GPT-2's 50,257 BPE tokens padded to 50,304 = 393 x 128, as nanoGPT does: a multiple of 128 tiles the
    # vocabulary matmul evenly on a TPU's 128-wide MXU and a GPU's tensor cores, and 8 | 50,304 lets FSDP
    # split the embedding over 8 chips along the vocabulary. The 47 extra rows are never a target.
    c.vocab_size = 50304

    c.model = ml_collections.ConfigDict()
    c.model.num_layers = 12
    c.model.num_heads = 12
    c.model.embed_dim = 768
    c.model.context_length = 1024
    c.model.dropout = 0.0  # nanoGPT pretrains GPT-2 without dropout
    c.model.remat = False  # True: recompute each block in the backward pass (less memory, ~1/3 more FLOPs)

    c.seed = 0
    c.train_steps = 600_000
    # 512 sequences x 1024 tokens = 524,288 tokens a step: GPT-3's 0.5M-token batch for its 125M model, about
    # nanoGPT's 491,520 (12 sequences x 5 accumulation steps x 8 GPUs). The zoo's step has no gradient
    # accumulation, so the whole batch is one step: 64 sequences per chip on 8 chips.
    c.batch_size = 512
    c.learning_rate = 6e-4
    c.lr_schedule = "cosine"
    c.warmup_steps = 2000
    c.min_learning_rate_ratio = 0.1  # 6e-5
    c.weight_decay = 0.1
    c.grad_clip_norm = 1.0
    c.adam_b1 = 0.9
    c.adam_b2 = 0.95
    c.compute_dtype = "bfloat16"
    c.fsdp = False
    # Sized for accelerators, so none of configs/poem.py's CPU kernel choices. On the CPU, keep remat's
    # optimization barriers, which XLA's CPU pipeline removes (then remat saves no memory; benchmarks/plan.py).
    c.xla_cpu_options = {"xla_disable_hlo_passes": "cse_barrier_expander"}

    c.log_every = 100
    c.eval_every = 2000
    c.eval_batches = 20
    c.checkpoint_every = 2000
    c.sample.max_new_tokens = 512
    return c
