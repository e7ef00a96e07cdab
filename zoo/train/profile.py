"""A `jax.profiler` trace of chosen training steps: `--config.profile_steps=START:END` traces the steps that
take the run from step START to step END (metrics.jsonl's numbering) into `WORKDIR/profile`, which
TensorBoard's profile plugin and XProf open (`tensorboard --logdir WORKDIR/profile`).

Why a window and not the whole run: a trace of every step is gigabytes and its first steps are compilation.
The trace ends only after the last traced step's results are ready, so it holds the device work, not just
its dispatch. Tracing changes no value the run computes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import jax

from zoo import storage
from zoo.config import parse_profile_steps

DIRECTORY = "profile"


class StepProfiler:
    """Starts the trace before the step that leaves `step == START` and stops it once `step == END`."""

    def __init__(self, spec: str, workdir: storage.Path):
        self.window = parse_profile_steps(spec)
        self.target = workdir / DIRECTORY
        self._staging: contextlib.ExitStack | None = None

    def before(self, step: int) -> None:
        """Called with the number of steps done, before the next one runs."""
        if self.window is not None and step == self.window[0] and self._staging is None:
            self._staging = contextlib.ExitStack()
            local = self._staging.enter_context(storage.writable_dir(self.target))  # a bucket: uploaded at stop
            jax.profiler.start_trace(str(local))

    def after(self, step: int, wait: Callable[[], object]) -> None:
        """Called with the number of steps done after a step; `wait` blocks until that step's results exist."""
        if self._staging is not None and step >= self.window[1]:
            wait()
            self.close()

    def close(self) -> None:
        """Stops a trace still running (the run ended or was preempted inside the window) and writes it."""
        if self._staging is not None:
            staging, self._staging = self._staging, None
            jax.profiler.stop_trace()
            staging.close()
