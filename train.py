"""Train any zoo model with the one shared loop.

    python train.py --config configs/poem.py --workdir runs/poem [--config.KEY=VALUE ...]

Running the same command again resumes from the newest valid checkpoint in the workdir. Multi-host: on
Cloud TPU pods just run it on every host; elsewhere add --coordinator_address HOST:PORT --num_processes N
--process_id I on each process.
"""

from __future__ import annotations

import logging
import os
import pathlib
import signal
import sys

from zoo import allocator, cli
from zoo import config as config_lib
from zoo.errors import UsageError


def main(argv: list[str]) -> int:
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a configs/*.py file")
    parser.add_argument("--workdir", required=True, help="checkpoints, metrics and the export go here")
    parser.add_argument("--coordinator_address", default=None)
    parser.add_argument("--num_processes", type=int, default=None)
    parser.add_argument("--process_id", type=int, default=None)
    args, overrides = parser.parse_known_args(argv)
    config = config_lib.apply_overrides(config_lib.load_config_file(args.config), overrides)
    if (args.coordinator_address is None) != (args.num_processes is None) or (
            args.num_processes is not None and args.process_id is None):
        raise UsageError("multi-process runs need --coordinator_address, --num_processes and --process_id")
    for key in ("train_steps", "batch_size", "log_every", "checkpoint_every", "max_to_keep"):
        if config[key] <= 0:
            raise UsageError(f"--config.{key} must be positive, got {config[key]}")
    if config.get("export_dtype", "bfloat16") not in ("bfloat16", "float16", "float32"):
        raise UsageError(f"--config.export_dtype must be bfloat16, float16 or float32, got {config.export_dtype}")
    if not 0 <= config.seed < 2**32:
        raise UsageError(f"--config.seed must be in [0, 2**32), got {config.seed}")
    if "://" in args.workdir:
        raise UsageError("--workdir must be a local or mounted path (e.g. a gcsfuse mount), not a URL")
    if pathlib.Path(args.workdir).exists() and not pathlib.Path(args.workdir).is_dir():
        raise UsageError(f"--workdir {args.workdir} is a file, not a directory")

    from zoo import registry
    entry = registry.get(config.get("model_name", ""))

    cli.setup_logging()
    # Preempted before the loop (which installs its own handler) has anything to save: a clean exit.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

    import jax

    from zoo.train import loop, mesh

    mesh.initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
    if jax.process_index() > 0:  # one process reports progress; every process still reports problems
        logging.getLogger().setLevel(logging.WARNING)
    hint = ""
    if not allocator.loaded() and jax.default_backend() == "cpu" and allocator.ENV not in os.environ:
        hint = " (install tcmalloc for faster CPU steps: zoo/allocator.py)"
    logging.info("malloc: %s%s", allocator.name(), hint)
    task = registry.resolve(entry.task)(config, args.workdir)
    try:
        metrics = loop.train(config, args.workdir, task)
    except loop.TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    summary = "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()) if k.startswith("eval/"))
    print(f"done: {args.workdir}  {summary}")
    return 0


if __name__ == "__main__":
    cli.run(main)
