"""What both CLIs share: the exit-code contract (0 ok, 2 bad input with one line, 1 anything else)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from zoo.errors import UsageError


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports bad arguments as a UsageError (one line) instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def run(main: Callable[[list[str]], int | None], argv: list[str] | None = None) -> NoReturn:
    """Runs `main(argv)` and turns its outcome into the documented exit code."""
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
