"""What both CLIs share: the exit-code contract (0 ok, 2 bad input with one line, 1 anything else)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from zoo import allocator
from zoo.errors import UsageError


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports bad arguments as a UsageError (one line) instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def setup_logging() -> None:
    """Progress (INFO) to stdout, problems (WARNING and up) to stderr: so that a bad-input run's stderr is
    exactly its one error line, and warnings such as a corrupt checkpoint still stand out."""
    fmt = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    info = logging.StreamHandler(sys.stdout)
    info.setFormatter(fmt)
    info.addFilter(lambda record: record.levelno < logging.WARNING)
    problems = logging.StreamHandler(sys.stderr)
    problems.setFormatter(fmt)
    problems.setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, handlers=[info, problems], force=True)
    for noisy in ("absl", "jax._src", "orbax", "orbax.checkpoint", "tensorboardX"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run(main: Callable[[list[str]], int | None], argv: list[str] | None = None) -> NoReturn:
    """A command's entry point: runs `main(argv)` and turns its outcome into the documented exit code. Called
    for the command line itself (argv None), it first restarts the command under tcmalloc where installed,
    else with glibc's malloc tuned (zoo.allocator: XLA's CPU steps stop page-faulting their buffers); with an
    argv given, it never restarts the caller."""
    if argv is None:
        allocator.restart_with_fast_malloc()
    argv = sys.argv[1:] if argv is None else argv
    try:
        code = main(argv) or 0
    except UsageError as e:
        message = " ".join(str(e).split())  # one line, whatever the message held
        print(f"error: {message}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.stdout.flush()
    sys.exit(code)


def use_compilation_cache(directory: os.PathLike | str) -> None:
    """Keep XLA's compiled programs on disk, so that only the first run of a command pays the compilation:
    a sampler (`--model poem`: 7.0 s, then 4.4 s; dcgan: 9.0 s, then 5.4 s), or a training step that a
    resumed run, a rerun or another process of the same run would compile again. JAX's own variables win
    (JAX_COMPILATION_CACHE_DIR, ..._MAX_SIZE, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS); else the cache is
    `directory` (the front doors pass cache/jax under ZOO_DATA_DIR, default ~/.cache/zoo), capped at 256 MB:
    a cap makes JAX evict old entries and take a file lock, so that concurrent runs never read a
    half-written entry."""
    import importlib.util

    import jax

    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", str(directory))
    if not os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)
    # JAX's lock, which the size cap turns on, needs filelock (installed with transformers' huggingface-hub).
    if not os.environ.get("JAX_COMPILATION_CACHE_MAX_SIZE") and importlib.util.find_spec("filelock"):
        jax.config.update("jax_compilation_cache_max_size", 256 << 20)
