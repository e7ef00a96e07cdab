"""Speed of the music LSTM on this machine: training steps/s (the loop's jitted step) and melodies/s.

    python -m benchmarks.music_speed [--config configs/music.py] [--steps 20] [--config.KEY=VALUE ...]

Random events and random unit caption vectors (no corpus, no text encoder), the real model, optimizer,
step function and sampler kernel (grammar-masked `lax.while_loop`, 16 bars). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np
from flax import nnx

from benchmarks.timing import time_train_step
from zoo import allocator
from zoo import config as config_lib
from zoo.melody import encoding
from zoo.melody.grammar import state_after
from zoo.models import build
from zoo.models.music import MelodyRNN
from zoo.objectives.common import gradient_step, init_model_state
from zoo.objectives.music import masked_loss
from zoo.sample.music import _sample_jit
from zoo.train.loop import compiler_options
from zoo.train.optim import make_optimizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/music.py")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--melodies", type=int, default=8, help="batch of melodies sampled at once")
    args, overrides = parser.parse_known_args()
    config = config_lib.apply_overrides(config_lib.load_config_file(args.config), overrides)
    model = build(MelodyRNN, config, nnx.Rngs(0), vocab_size=encoding.VOCAB, cond_dim=384)
    graphdef = nnx.graphdef(model)
    tx = make_optimizer(config)
    state = init_model_state(model, tx)

    def step(state, batch, key):
        return gradient_step(state, tx, lambda params: masked_loss(graphdef, params, batch, key))

    rng = np.random.default_rng(0)
    shape = (config.batch_size, config.max_len + 1)  # inputs and shifted targets, as MelodyBatches makes them

    def batch() -> dict[str, np.ndarray]:
        cond = rng.normal(size=(config.batch_size, 384)).astype(np.float32)
        return {"tokens": rng.integers(0, encoding.VOCAB, shape, dtype=np.int32),
                "mask": np.ones(shape, bool), "cond": cond / np.linalg.norm(cond, axis=1, keepdims=True)}

    key = jax.random.PRNGKey(0)
    step = jax.jit(step, donate_argnums=0, compiler_options=compiler_options(config))  # as the loop does
    state, compile_s, step_s = time_train_step(step, state, [batch() for _ in range(args.steps + 1)], key)

    primer = np.zeros(64, np.int32)
    primer[0] = encoding.BOS
    grammar = {k: np.int32(v) for k, v in state_after(primer[:1]).items()}
    cond = batch()["cond"][:1].repeat(args.melodies, 0)

    def sample(seed: int) -> np.ndarray:
        return np.asarray(_sample_jit(graphdef, state["params"], cond, primer, np.int32(1), grammar, np.int32(16),
                                      jax.random.PRNGKey(seed), length=1024, temperature=1.0, top_k=0, top_p=1.0))

    sample(0)  # compile
    t0 = time.perf_counter()
    events = sample(1)
    sample_s = time.perf_counter() - t0
    n_params = sum(x.size for x in jax.tree.leaves(state["params"]))
    print(json.dumps({
        "config": args.config, "device": str(jax.devices()[0].device_kind), "params": int(n_params),
        "batch_size": config.batch_size, "max_len": config.max_len, "compile_s": round(compile_s, 2),
        "steps_per_sec": round(1 / step_s, 3), "events_per_sec": round(config.batch_size * config.max_len / step_s),
        "melodies_per_sec": round(args.melodies / sample_s, 2),
        "sampled_events_per_sec": round(int((events != encoding.EOS).sum()) / sample_s),
    }))


if __name__ == "__main__":
    allocator.restart_with_fast_malloc()  # as train.py runs
    main()
