"""What both CLIs share: the exit-code contract (0 ok, 2 bad input with one line, 1 anything else)."""

from __future__ import annotations

import argparse
import logging
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
