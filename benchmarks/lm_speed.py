"""Speed of the poem LM on this machine: training steps/s (the loop's jitted step) and sampling tokens/s.

    python -m benchmarks.lm_speed [--config configs/poem.py] [--steps 10] [--config.KEY=VALUE ...]

Runs on random tokens (no corpus needed) with the real model, optimizer and step functions, A/B-free: it
times one configuration and prints one JSON line, so runs can be compared by hand or by a script.
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
from zoo.models import build
from zoo.models.lm import GPT
from zoo.objectives.common import gradient_step, init_model_state
from zoo.objectives.lm import lm_loss
from zoo.sample.decoding import generate
from zoo.train.loop import compiler_options
from zoo.train.optim import make_optimizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/poem.py")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--vocab", type=int, default=96)
    args, overrides = parser.parse_known_args()
    config = config_lib.apply_overrides(config_lib.load_config_file(args.config), overrides)
    model = build(GPT, config, nnx.Rngs(0), vocab_size=args.vocab)
    graphdef = nnx.graphdef(model)
    tx = make_optimizer(config)
    state = init_model_state(model, tx)

    def step(state, tokens, key):
        return gradient_step(state, tx, lambda params: lm_loss(graphdef, params, tokens, key))

    step = jax.jit(step, donate_argnums=0, compiler_options=compiler_options(config))  # as the loop does
    rng = np.random.default_rng(0)
    shape = (config.batch_size, config.model.context_length + 1)
    batches = [rng.integers(0, args.vocab, shape, dtype=np.int32) for _ in range(args.steps + 1)]
    key = jax.random.PRNGKey(0)
    state, compile_s, step_s = time_train_step(step, state, batches, key)

    params = state["params"]
    prompt = np.zeros((1, 8), np.int32)
    new = config.model.context_length - 8
    generate(graphdef, params, prompt, max_new_tokens=new, key=key, temperature=1.0)  # compile
    t0 = time.perf_counter()
    generate(graphdef, params, prompt, max_new_tokens=new, key=key, temperature=1.0)
    sample_s = time.perf_counter() - t0
    n_params = sum(x.size for x in jax.tree.leaves(params))
    print(json.dumps({
        "config": args.config, "device": str(jax.devices()[0].device_kind), "params": int(n_params),
        "batch_size": config.batch_size, "context_length": config.model.context_length,
        "compile_s": round(compile_s, 2), "steps_per_sec": round(1 / step_s, 3),
        "tokens_per_sec": round(config.batch_size * config.model.context_length / step_s),
        "sample_tokens_per_sec": round(new / sample_s),
    }))


if __name__ == "__main__":
    allocator.restart_with_fast_malloc()  # as train.py runs
    main()
