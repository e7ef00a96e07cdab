"""The text GAN's first phase: its generator trained by maximum likelihood alone (the MLE baseline; not
embedded). Everything but the phase and the step count is configs/textgan.py's.

Train (about 2 min on 2 CPU cores):
    python train.py --config configs/textgan_mle.py --workdir runs/textgan-mle
600 steps because that is where the test NLL stops falling at dropout 0.3 (0.2 overfits after ~400 steps).
configs/textgan.py trains adversarially from this run; zoo/pretrained/textgan/README.md compares the two.
"""

import ml_collections

from configs import textgan


def get_config() -> ml_collections.ConfigDict:
    c = textgan.get_config()
    c.phase = "mle"
    c.train_steps = 600
    c.eval_every = 100
    return c
