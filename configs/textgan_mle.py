"""The text GAN's first phase: its generator trained by maximum likelihood alone (the MLE baseline).

Train (2 min on 2 CPU cores):
    python train.py --config configs/textgan_mle.py --workdir runs/textgan-mle
Result: NLL_gen 5.25 nats/token on the 415 test quatrains (dropout 0.2 overfit after ~400 steps; 0.3 and
600 steps stop where the test NLL stops falling). configs/textgan.py trains adversarially from it; README
"Text GAN" compares the two.
"""

import ml_collections

from configs import textgan


def get_config() -> ml_collections.ConfigDict:
    c = textgan.get_config()
    c.phase = "mle"
    c.train_steps = 600
    c.eval_every = 100
    return c
