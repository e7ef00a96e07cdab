"""Emoji artwork (64x64 RGB, ~1,900 concepts in five styles) with a caption-conditioned convolutional VAE:
the embedded `vae-emoji` model (zoo/pretrained/vae-emoji).

Train (the first run parses the npm packages and embeds the captions, cached under $ZOO_DATA_DIR/cache):
    python train.py --config configs/vae_emoji.py --workdir runs/vae-emoji
Likelihood: a discretised logistic per colour channel over the 256 levels, so eval/loss is nats per picture.
Sampling draws the latent from the learnt conditional prior p(z | caption, style): with one to five pictures
per concept there is nothing to fit a per-concept mixture to.
Result: zoo/pretrained/vae-emoji/README.md, with the command that measures it
(python -m benchmarks.emoji_eval --checkpoint zoo/pretrained/vae-emoji).
"""

import ml_collections

from configs import vae


def get_config() -> ml_collections.ConfigDict:
    c = vae.get_config()
    c.model_name = "vae-emoji"
    c.data = "emoji"  # or "emoji:google,twitter" for some of the styles (zoo.data.emoji)
    c.model.latent_dim = 64
    c.model.channels = (32, 64, 128, 128)  # 64 -> 32 -> 16 -> 8 -> 4
    c.model.hidden_dim = 512
    c.model.cond_features = 128
    c.model.conditional_prior = True
    c.model.likelihood = "logistic"  # 8-bit colour: a Bernoulli of binarised pixels would lose the colours
    c.kl_weight = 1.0
    c.kl_warmup_steps = 500
    c.latent_mixture_components = 0
    # The judge finds no temperature's samples in its top five; T = 0.3 keeps most of T = 0's concept signal
    # (median rank, right emoji group) with some variety (T = 0: one picture per prompt and style).
    c.sample_temperature = 0.3
    c.iwae_samples = 4
    c.train_steps = 6000
    c.batch_size = 64
    c.eval_every = 500
    c.eval_batches = 15
    c.checkpoint_every = 500
    c.export_dtype = "bfloat16"  # small on disk; NLLs of record come from the run's own checkpoints
    return c
