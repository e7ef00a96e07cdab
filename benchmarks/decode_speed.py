"""KV-cache decoding speed, the zoo's sampler against the PyTorch twin's, on the same weights.

    python -m benchmarks.decode_speed [--config configs/poem.py] [--batch 1 8] [--new_tokens 256] [--json [PATH]]

Both sides sample `--new_tokens` tokens at temperature 1 after a one-token prompt, with a KV cache: JAX
with `zoo.sample.decoding.generate` (prefill, then one `lax.while_loop` of one-token steps), PyTorch with
the twin's `generate_cached` in eager mode. The model is the config's GPT with `model.context_length` 512
(as `benchmarks.compare` samples), randomly initialised and copied into the twin, so no corpus is needed.
Each figure is the best of three timed runs after one that compiles or warms up. Prints one table; --json
writes benchmarks/results/decode_poem_<device>.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from benchmarks import record
from benchmarks.timing import best_seconds
from zoo import allocator, cli
from zoo import config as config_lib
from zoo.models import build
from zoo.models.lm import GPT
from zoo.sample.decoding import generate

VOCAB = 1024  # the embedded poem model's BPE vocabulary


def jax_tokens_per_s(graphdef: nnx.GraphDef, params: nnx.State, batch: int, new: int) -> float:
    prompt = np.zeros((batch, 1), np.int32)
    key = jax.random.PRNGKey(0)
    return batch * new / best_seconds(lambda: generate(graphdef, params, prompt, max_new_tokens=new, key=key))


def torch_tokens_per_s(model: GPT, config: Any, batch: int, new: int) -> float:
    import torch

    from benchmarks.torch.gpt import generate_cached, load_jax_params
    from benchmarks.torch.lm import build as build_twin

    twin = build_twin(config, {"vocab_size": VOCAB}, seed=0, device="cpu")
    load_jax_params(twin.model, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    twin.model.eval()
    prompt = torch.zeros((batch, 1), dtype=torch.long)
    generator = torch.Generator().manual_seed(0)
    return batch * new / best_seconds(lambda: generate_cached(twin.model, prompt, new, generator=generator))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/poem.py")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--new_tokens", type=int, default=256)
    parser.add_argument("--json", nargs="?", const="", default=None, metavar="PATH")
    args, overrides = parser.parse_known_args(argv)
    config = config_lib.load_config_file(args.config)
    config = config_lib.apply_overrides(config, ["--config.model.context_length=512", *overrides])
    model = build(GPT, config, nnx.Rngs(0), vocab_size=VOCAB)
    graphdef, params = nnx.split(model, nnx.Param)
    rows = []
    for batch in args.batch:
        j = jax_tokens_per_s(graphdef, params, batch, args.new_tokens)
        t = torch_tokens_per_s(model, config, batch, args.new_tokens)
        rows.append({"batch": batch, "jax_tok_per_s": round(j), "torch_tok_per_s": round(t),
                     "ratio": round(j / t, 2)})
        print(f"batch {batch}: JAX {j:,.0f} tok/s, PyTorch twin {t:,.0f} tok/s, ratio {j / t:.2f}x", flush=True)
    result = {"benchmark": "decode", "config": args.config, "overrides": overrides, "model": "poem",
              "new_tokens": args.new_tokens, "device": jax.devices()[0].device_kind, "malloc": allocator.name(),
              "rows": rows}
    if args.json is not None:
        path = Path(args.json) if args.json else record.RESULTS / "decode_poem_cpu.json"
        record.write(path, result)


if __name__ == "__main__":
    allocator.restart_with_fast_malloc()
    cli.run(main)
