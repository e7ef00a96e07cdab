"""Train any zoo model with the one shared loop.

    python train.py --config configs/poem.py --workdir runs/poem [--config.KEY=VALUE ...]
    python train.py --config configs/poem.py --workdir gs://BUCKET/poem   # checkpoints in Cloud Storage
    python train.py --config configs/music.py --workdir runs/mine \
        --config.init_from=pretrained:music --config.data=midi:kept/    # fine-tune on the samples you kept

Running the same command again resumes from the newest valid checkpoint in the workdir; a second run on a
workdir that a live run holds is refused. Multi-host: on Cloud TPU pods just run it on every host;
elsewhere add --coordinator_address HOST:PORT --num_processes N --process_id I on each process.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from zoo import allocator, cli, storage
from zoo import config as config_lib
from zoo.errors import UsageError
from zoo.train import lease as lease_lib


def main(argv: list[str]) -> int:
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a configs/*.py file")
    parser.add_argument("--workdir", required=True,
                        help="checkpoints, metrics and the export go here: a local path or gs://BUCKET/PATH")
    parser.add_argument("--coordinator_address", default=None)
    parser.add_argument("--num_processes", type=int, default=None)
    parser.add_argument("--process_id", type=int, default=None)
    args, overrides = parser.parse_known_args(argv)
    config = config_lib.apply_overrides(config_lib.load_config_file(args.config), overrides)
    config_lib.validate_training(config)
    from zoo.train import small_data

    small_set = small_data.adapt(config, {o.split("=", 1)[0][len("--config."):] for o in overrides})
    if (args.coordinator_address is None) != (args.num_processes is None) or (
            args.num_processes is not None and args.process_id is None):
        raise UsageError("multi-process runs need --coordinator_address, --num_processes and --process_id")
    config_lib.validate_training(config)
    workdir = storage.as_path(args.workdir)
    if not storage.is_remote(workdir) and workdir.exists() and not workdir.is_dir():
        raise UsageError(f"--workdir {args.workdir} is a file, not a directory")

    from zoo import registry
    entry = registry.get(config.get("model_name", ""))

    cli.setup_logging()
    for note in small_set:
        logging.info("%s", note)
    # Until the process group exists a SIGTERM is only noted: a process that exited here would leave the
    # others waiting in jax.distributed.initialize.
    early_sigterm: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: early_sigterm.append(signum))

    import jax

    from zoo.data.sources import data_dir
    from zoo.train import loop, mesh

    cli.use_compilation_cache(data_dir() / "cache" / "jax")  # a resumed run or a rerun does not compile again

    mesh.initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
    if jax.process_count() == 1:
        _exit_on_sigterm(None)
        if early_sigterm:
            return 0
    elif early_sigterm:  # JAX's preemption notifier replaced the handler above: hand it the SIGTERM it missed
        os.kill(os.getpid(), signal.SIGTERM)
    if jax.process_index() > 0:  # one process reports progress; every process still reports problems
        logging.getLogger().setLevel(logging.WARNING)
    mesh.check_batch_size(config.batch_size, mesh.make_mesh())
    lease = _acquire_lease(workdir)
    if jax.process_count() == 1:  # with several, JAX's coordination service owns SIGTERM (zoo/train/loop.py)
        _exit_on_sigterm(lease)
    hint = ""
    if not allocator.loaded() and jax.default_backend() == "cpu" and allocator.ENV not in os.environ:
        hint = " (install tcmalloc for faster CPU steps: zoo/allocator.py)"
    logging.info("malloc: %s%s", allocator.name(), hint)
    try:
        task = registry.resolve(entry.task)(config, workdir)
        metrics = loop.train(config, workdir, task, before_write=lease.check, command=_command(argv))
    except loop.TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception:
        lease.confirm()  # a bucket that went away is the cause: one line naming it (and the process ends)
        raise
    finally:
        lease.release()
    summary = "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()) if k.startswith("eval/"))
    print(f"done: {workdir}  {summary}")
    return 0


def _command(argv: list[str]) -> str:
    """The command line as a user would type it again, for the model card."""
    import shlex

    return shlex.join(["python", "train.py", *argv])


def _exit_on_sigterm(lease: lease_lib.Lease | None) -> None:
    """Preempted before the loop (which installs its own handler) has anything to save: release the lease
    and exit 0 at once, without unwinding through data loading (its native threads do not survive an
    interpreter teardown in mid-work)."""
    def handler(signum: int, frame: Any) -> None:
        if lease is not None:
            lease.release()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, handler)


def _acquire_lease(workdir: storage.Path) -> lease_lib.Lease:
    """Process 0 checks the storage and takes the workdir's lease; every process learns whether it did, so
    that all start, or all stop, together."""
    import jax

    from zoo.train import mesh

    lease, problem = lease_lib.Lease(), None
    if jax.process_index() == 0:
        try:
            storage.check_reachable(workdir)
            lease = lease_lib.acquire(workdir)
        except UsageError as e:
            problem = e
    if not mesh.all_agree(problem is None):
        raise problem or UsageError(f"process 0 could not take the lease on {workdir}; its error says why")
    return lease


if __name__ == "__main__":
    cli.run(main)
