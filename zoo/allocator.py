"""Run the zoo's commands under a malloc that keeps XLA's per-step buffers: tcmalloc, else a tuned glibc.

Why: XLA's CPU client allocates each execution's temporary buffers afresh and frees them when the execution
ends (the VAE's train step has a 48 MB buffer, the music LSTM's 900 MB). glibc's malloc serves large blocks
with a fresh mmap and returns them with munmap (above 128 KB by default, adapting upwards to at most 32 MB),
and hands the top of its heap back to the kernel when 128 KB of it are free. So the kernel faults in and
zeroes those pages again on every step: under plain glibc the VAE step spends 20 of its 35 ms in the kernel
(docs/performance.md, "The allocator", has the figures).

- tcmalloc keeps freed memory for reuse (told here never to hand it back): a warm step takes no page
  faults. A replacement malloc must be loaded before the process starts (LD_PRELOAD), so
  `restart_with_fast_malloc` starts the command again with it (axlearn, for one, preloads tcmalloc for its
  JAX jobs too).
- Without tcmalloc (no root to install it), the restart sets GLIBC_TUNABLES instead, which glibc reads only
  at process start: blocks up to 32 MB come from the heap, which keeps 256 MB of slack and is never
  trimmed. A buffer under 32 MB is then mostly reused (a thread of XLA's whose arena has not held it yet
  faults it in once more); larger ones are still mapped afresh (glibc cannot serve them from its heap
  without letting a long run's memory grow: docs/performance.md).

The cost is memory: what the process frees stays in it. Where memory is tight, set ZOO_MALLOC=system.

ZOO_MALLOC selects the allocator. Unset: tcmalloc where it is installed (Debian/Ubuntu: `apt-get install
libtcmalloc-minimal4`), else glibc's, tuned. "glibc": glibc's, tuned. "system": glibc's as it comes. A path:
that library (one that does not exist: a note, then the default).
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Mapping

ENV = "ZOO_MALLOC"
_REEXEC_GUARD = "ZOO_MALLOC_REEXEC"  # set in the restarted process: restart at most once
_TUNED = "ZOO_MALLOC_TUNED"  # the GLIBC_TUNABLES items we added, so that ZOO_MALLOC=system can take them out
_TCMALLOC_NAMES = ("tcmalloc_minimal", "tcmalloc")  # libtcmalloc_minimal.so.4 (no profiler), libtcmalloc.so.4
_REPLACEMENTS = ("tcmalloc", "jemalloc", "mimalloc")
# glibc's malloc, told to serve blocks up to 32 MB (its highest mmap threshold) from the heap, to keep
# 256 MB of slack at the heap's top and never to hand it back.
GLIBC_SETTINGS = {"glibc.malloc.mmap_threshold": str(32 << 20), "glibc.malloc.trim_threshold": str(2**32 - 1),
                  "glibc.malloc.top_pad": str(256 << 20)}


def loaded() -> str | None:
    """The replacement malloc this process runs under (its library's path), or None for the C library's."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/" in line}
    except OSError:
        return None
    return next((p for p in sorted(paths) if _is_replacement(p)), None)


def preload_library(environ: Mapping[str, str] = os.environ) -> str | None:
    """The library to preload per ZOO_MALLOC: a path the user named (if it exists), else tcmalloc's soname
    where the linker finds it, or None (glibc's malloc: asked for, tcmalloc not installed, or not Linux)."""
    choice = environ.get(ENV, "")
    if choice in ("system", "glibc") or not sys.platform.startswith("linux"):
        return None
    if choice and os.path.isfile(path := os.path.abspath(os.path.expanduser(choice))):
        return path  # absolute, so that a child process in another directory preloads it too
    return next(filter(None, (ctypes.util.find_library(name) for name in _TCMALLOC_NAMES)), None)


def missing_library(environ: Mapping[str, str] = os.environ) -> str | None:
    """The ZOO_MALLOC path the user named where no such file exists (the default is used instead)."""
    choice = environ.get(ENV, "")
    if choice in ("", "system", "glibc") or os.path.isfile(os.path.expanduser(choice)):
        return None
    return choice


def _is_replacement(path: str) -> bool:
    return any(name in os.path.basename(path) for name in _REPLACEMENTS)


def environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """`environ` with the allocator preloaded (first in LD_PRELOAD) or, without one, glibc's tuned, for a
    subprocess or a restart. A replacement malloc the user already preloads is kept (and none added);
    ZOO_MALLOC=system removes it and the settings we tuned glibc with; ZOO_MALLOC=glibc removes it and tunes
    glibc. A GLIBC_TUNABLES setting of the user's wins over ours."""
    env = dict(environ)
    choice = env.get(ENV, "")
    library = preload_library(env)
    preloaded = [p for p in env.get("LD_PRELOAD", "").split(":") if p]
    if choice in ("system", "glibc") and any(map(_is_replacement, preloaded)):
        preloaded = [p for p in preloaded if not _is_replacement(p)]
        if preloaded:
            env["LD_PRELOAD"] = ":".join(preloaded)
        else:
            del env["LD_PRELOAD"]
    if choice == "system" and _TUNED in env:  # inherited from a process we tuned: plain glibc means untuned
        ours = set(env.pop(_TUNED).split(":"))
        kept = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t and t not in ours]
        if kept:
            env["GLIBC_TUNABLES"] = ":".join(kept)
        else:
            env.pop("GLIBC_TUNABLES", None)
    if any(map(_is_replacement, preloaded)):
        return env
    if library and library not in preloaded:
        env["LD_PRELOAD"] = ":".join([library, *preloaded])
        # tcmalloc reports every allocation over 1 GB on stderr; XLA's temporaries are that big by design.
        env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 40))
        # By default tcmalloc hands freed pages back to the kernel little by little, and the next step faults
        # them in again (a music step that faults runs ~25% slower).
        env.setdefault("TCMALLOC_RELEASE_RATE", "0")
    elif library is None and choice != "system" and sys.platform.startswith("linux"):
        tunables, added = _with_glibc_settings(env.get("GLIBC_TUNABLES", ""))
        env["GLIBC_TUNABLES"] = tunables
        if added:
            env[_TUNED] = ":".join(added)
    return env


def _with_glibc_settings(tunables: str) -> tuple[str, list[str]]:
    """(a GLIBC_TUNABLES value `name=value:...` with GLIBC_SETTINGS added where it names none, those added)."""
    items = [t for t in tunables.split(":") if t]
    named = {t.split("=", 1)[0] for t in items}
    added = [f"{k}={v}" for k, v in GLIBC_SETTINGS.items() if k not in named]
    return ":".join(items + added), added


def glibc_tuned(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process's GLIBC_TUNABLES hold every one of GLIBC_SETTINGS (the user's or ours)."""
    named = {t.split("=", 1)[0] for t in environ.get("GLIBC_TUNABLES", "").split(":")}
    return set(GLIBC_SETTINGS) <= named


def restart_with_fast_malloc() -> None:
    """Starts this command again (same interpreter and arguments) under tcmalloc or with glibc tuned,
    replacing this process. Call it first thing in a command's `__main__`, best before JAX is imported (the
    restart then costs little more than the interpreter's start). It returns without restarting when the
    environment already is what `environment` asks for (a replacement malloc loaded, glibc tuned, or
    ZOO_MALLOC=system), when the program cannot be started again (read from stdin), or in a process it
    restarted itself (the preload failed: it goes on as it is)."""
    if os.environ.pop(_REEXEC_GUARD, None) or loaded() is not None or sys.argv[0] in ("", "-"):
        return
    if missing := missing_library():
        print(f"note: ZOO_MALLOC={missing} is not a file; using the default allocator", file=sys.stderr)
    env = environment()
    if all(env.get(k) == os.environ.get(k) for k in ("LD_PRELOAD", "GLIBC_TUNABLES")):
        return
    env[_REEXEC_GUARD] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    except OSError:
        return  # could not start again: carry on as it is


def name() -> str:
    """The allocator in use, for logs and benchmark records: the library's file name with the tcmalloc
    settings the process runs under, "glibc (tuned)" or "glibc"."""
    path = loaded()
    if not path:
        return "glibc (tuned)" if glibc_tuned() else "glibc"
    rate = os.environ.get("TCMALLOC_RELEASE_RATE")
    return os.path.basename(path) + (f" TCMALLOC_RELEASE_RATE={rate}" if rate is not None else "")
