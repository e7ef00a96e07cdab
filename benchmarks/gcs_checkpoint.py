"""What a checkpoint costs in a bucket: seconds per save of the poem LM's full train state (params and Adam
moments) to gs:// on a local Cloud Storage server, against the same save to local disk.

    python -m benchmarks.gcs_checkpoint [--config configs/poem.py] [--saves 5] [--json [PATH]] [--config.KEY=VALUE ...]

Uses the loop's own Checkpointer (Orbax, async, plus the JSON meta) and times save + wait-until-committed,
i.e. what a synchronous save would block; the loop itself only blocks for the async part. The server is
fake-gcs-server on 127.0.0.1 (tests/gcs_server.py), so the figure is the protocol's and the libraries'
overhead without network latency: a real bucket adds its round trips. Prints one JSON line; `--json PATH`
also writes it (`--json` alone: benchmarks/results/gcs_checkpoint_CONFIG_DEVICE.json, e.g. ..._poem_cpu.json).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import tempfile
import time

from tests.gcs_server import FakeGCS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/poem.py")
    parser.add_argument("--saves", type=int, default=5)
    parser.add_argument("--vocab", type=int, default=96)
    parser.add_argument("--json", type=pathlib.Path, nargs="?", const=True,
                        help="also write the line here (no PATH: benchmarks/results/gcs_checkpoint_CONFIG_DEVICE.json)")
    args, overrides = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as scratch:
        server = FakeGCS(pathlib.Path(scratch) / "gcs")
        server.start()
        os.environ.update(server.env())  # before tensorstore and gcsfs read them
        try:
            result = measure(args, overrides, pathlib.Path(scratch), server)
            print(json.dumps(result))
        finally:
            server.stop()
    if args.json is True:  # --json alone: the name docs/benchmarks.md quotes
        import jax

        name = f"gcs_checkpoint_{pathlib.Path(args.config).stem}_{jax.default_backend()}.json"
        args.json = pathlib.Path(__file__).resolve().parent / "results" / name
    if args.json:
        args.json.write_text(json.dumps(result) + "\n")


def measure(args: argparse.Namespace, overrides: list[str], scratch: pathlib.Path, server: FakeGCS) -> dict:
    import jax
    from flax import nnx

    from zoo import config as config_lib
    from zoo.models import build
    from zoo.models.lm import GPT
    from zoo.objectives.common import init_model_state
    from zoo.train.checkpoint import Checkpointer, inspect_state
    from zoo.train.optim import make_optimizer

    config = config_lib.apply_overrides(config_lib.load_config_file(args.config), overrides)
    model = build(GPT, config, nnx.Rngs(0), vocab_size=args.vocab)
    state = init_model_state(model, make_optimizer(config))
    size = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
    fingerprint = int(inspect_state(state)[0])
    result = {"config": args.config, "state_mb": round(size / 2**20, 1), "saves": args.saves}
    for name, directory in (("local", str(scratch / "run" / "checkpoints")),
                            ("gcs", server.url("run/checkpoints"))):
        checkpointer = Checkpointer(directory, max_to_keep=2)
        seconds = []
        for step in range(1, args.saves + 1):
            start = time.perf_counter()
            checkpointer.save(step, state, {"data_position": step, "seed": 0}, fingerprint)
            checkpointer.wait()
            seconds.append(time.perf_counter() - start)
        checkpointer.close()
        result[f"{name}_seconds_per_save"] = round(statistics.median(seconds[1:] or seconds), 3)
    result["device"] = jax.devices()[0].device_kind
    return result


if __name__ == "__main__":
    main()
