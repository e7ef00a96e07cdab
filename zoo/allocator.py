"""Run the zoo's commands under tcmalloc, because glibc's malloc makes XLA's CPU runtime page-fault every step.

Why: XLA's CPU client allocates each execution's temporary buffer afresh and frees it when the execution
ends. The VAE's train step has a 48 MB buffer and the music LSTM's has 900 MB. glibc's malloc serves every
block over 32 MB (the most its mmap threshold can be raised to) with a fresh mmap and returns it with munmap.
So the kernel faults in and zeroes every page of the buffer again on every step: under glibc the VAE step
spends 20 of its 35 ms in the kernel (docs/performance.md, "The allocator: tcmalloc", has the figures).
Under tcmalloc, which keeps freed memory for reuse (told here never to hand it back), a warm step takes no
page faults. glibc cannot be tuned to do the same from inside the process: `mallopt(M_MMAP_MAX, 0)` removes
the faults too, but lets the music run's resident memory grow to 5 GB.

A replacement malloc must be loaded before the process starts (LD_PRELOAD), so `reexec_under_tcmalloc`
starts the command again with it (axlearn, for one, preloads tcmalloc for its JAX jobs too).

The cost is memory: what the process frees stays in it, so the LM's benchmark process peaks well above its
size under glibc. Where memory is tight, set TCMALLOC_RELEASE_RATE=1 (tcmalloc's default) or
ZOO_MALLOC=system.

ZOO_MALLOC selects the allocator. Unset: tcmalloc where it is installed (Debian/Ubuntu: `apt-get install
libtcmalloc-minimal4`), else glibc's. "system": glibc's. A path: that library.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Mapping

ENV = "ZOO_MALLOC"
_REEXEC_GUARD = "ZOO_MALLOC_REEXEC"  # set in the restarted process: restart at most once
_TCMALLOC_NAMES = ("tcmalloc_minimal", "tcmalloc")  # libtcmalloc_minimal.so.4 (no profiler), libtcmalloc.so.4
_REPLACEMENTS = ("tcmalloc", "jemalloc", "mimalloc")


def loaded() -> str | None:
    """The replacement malloc this process runs under (its library's path), or None for the C library's."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/" in line}
    except OSError:
        return None
    return next((p for p in sorted(paths) if _is_replacement(p)), None)


def preload_library(environ: Mapping[str, str] = os.environ) -> str | None:
    """The library to preload per ZOO_MALLOC: tcmalloc's soname where the linker finds it, a path the user
    named (if it exists), or None (glibc's malloc: asked for, not installed, or not Linux)."""
    choice = environ.get(ENV, "")
    if choice == "system" or not sys.platform.startswith("linux"):
        return None
    if choice:  # absolute, so that a child process in another directory preloads it too
        return os.path.abspath(choice) if os.path.isfile(choice) else None
    return next(filter(None, (ctypes.util.find_library(name) for name in _TCMALLOC_NAMES)), None)


def _is_replacement(path: str) -> bool:
    return any(name in os.path.basename(path) for name in _REPLACEMENTS)


def environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """`environ` with the allocator preloaded (first in LD_PRELOAD), for a subprocess or a restart. A
    replacement malloc the user already preloads is kept (and none added); ZOO_MALLOC=system removes it."""
    env = dict(environ)
    library = preload_library(env)
    preloaded = [p for p in env.get("LD_PRELOAD", "").split(":") if p]
    if env.get(ENV) == "system" and any(map(_is_replacement, preloaded)):
        preloaded = [p for p in preloaded if not _is_replacement(p)]
        if preloaded:
            env["LD_PRELOAD"] = ":".join(preloaded)
        else:
            del env["LD_PRELOAD"]
    if library and library not in preloaded and not any(map(_is_replacement, preloaded)):
        env["LD_PRELOAD"] = ":".join([library, *preloaded])
        # tcmalloc reports every allocation over 1 GB on stderr; XLA's temporaries are that big by design.
        env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 40))
        # By default tcmalloc hands freed pages back to the kernel little by little, and the next step faults
        # them in again (a music step that faults runs ~25% slower).
        env.setdefault("TCMALLOC_RELEASE_RATE", "0")
    return env


def reexec_under_tcmalloc() -> None:
    """Starts this command again (same interpreter and arguments) with tcmalloc preloaded, replacing this
    process. Call it first thing in a command's `__main__`, best before JAX is imported (the restart then
    costs little more than the interpreter's start). It returns without restarting when a replacement
    malloc is already loaded, when none is available or ZOO_MALLOC=system, when the program cannot be started
    again (read from stdin), or in a process it restarted itself (the preload failed: it goes on under glibc)."""
    if os.environ.pop(_REEXEC_GUARD, None) or loaded() is not None or sys.argv[0] in ("", "-"):
        return
    env = environment()
    if env.get("LD_PRELOAD") == os.environ.get("LD_PRELOAD"):
        return
    env[_REEXEC_GUARD] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    except OSError:
        return  # could not start again: carry on under glibc


def name() -> str:
    """The allocator in use, for logs and benchmark records: the library's file name with the tcmalloc
    settings the process runs under, or "glibc"."""
    path = loaded()
    if not path:
        return "glibc"
    rate = os.environ.get("TCMALLOC_RELEASE_RATE")
    return os.path.basename(path) + (f" TCMALLOC_RELEASE_RATE={rate}" if rate is not None else "")
