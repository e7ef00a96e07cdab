"""Emoji artwork (64x64 RGB, ~1,900 concepts in five styles) with a caption-conditioned DCGAN: the embedded
`dcgan-emoji` model (zoo/pretrained/dcgan-emoji).

Train (the first run parses the npm packages, ~20 s, and embeds the 3,880 captions, ~1 min; both cached
under $ZOO_DATA_DIR/cache):
    python train.py --config configs/dcgan_emoji.py --workdir runs/dcgan-emoji
Conditioning: the caption's sentence embedding, then a one-hot of the artwork style (zoo.text.conditions.
with_style); sample.py conditions on a prompt's own embedding, not on the nearest caption.
Result: zoo/pretrained/dcgan-emoji/README.md, with the command that measures it
(python -m benchmarks.emoji_eval --checkpoint zoo/pretrained/dcgan-emoji).
"""

import ml_collections

from configs import dcgan


def get_config() -> ml_collections.ConfigDict:
    c = dcgan.get_config()
    c.model_name = "dcgan-emoji"
    c.data = "emoji"  # or "emoji:google,twitter" for some of the styles (zoo.data.emoji)
    c.image_size = 64
    c.model.z_dim = 64
    c.model.cond_features = 64  # G's projection of the 384-d caption embedding + 5-d style one-hot
    c.model.g_features = 32  # G: 4x4x256 -> 8x8x128 -> 16x16x64 -> 32x32x32 -> 64x64x3
    c.model.d_features = 32  # D: 32x32x32 -> 16x16x64 -> 8x8x128 -> 4x4x256
    # DiffAugment: without it D memorises the 7,930 pictures by step 500 and every sample is the same blur.
    # Not "color": a D blind to brightness and saturation let G paint every concept cyan (step 1000).
    c.augment = ("translation", "cutout")
    c.train_steps = 6000
    c.batch_size = 64
    c.eval_every = 500
    c.eval_batches = 15  # the 948 held-out pictures
    c.checkpoint_every = 500
    return c
