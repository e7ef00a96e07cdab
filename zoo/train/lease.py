"""One run per workdir: a lease that a second `train.py` on the same workdir cannot take while the first lives.

Two runs writing one workdir would interleave checkpoints and metrics and corrupt both runs. The lease lives
in `WORKDIR/lock` and names its holder (host, pid, start time), so the refusal can say who holds it.

- Local disk: an exclusive `flock` on the file. The kernel drops it when the holder dies, even by kill -9,
  so a crashed run never blocks its own resume.
- gs://: the object's generation is the lock. It is created only if absent (`ifGenerationMatch=0`), renewed
  every `ttl/4` seconds only if unchanged (`ifGenerationMatch=<ours>`), and taken over only from the exact
  generation that was seen dead. Dead means: the holder's process is gone (same host), or the lease was
  not renewed for `ttl` seconds (another host: a preempted VM). A holder on another host that is still
  renewing is seen renewing within `ttl/4` seconds, and then the newcomer is refused.

The renewals double as a health probe of the storage. A watchdog fences the run when no renewal has
succeeded for `ttl/2` seconds (the bucket unreachable, requests hanging), or at once when another run
took the lease over (this one stalled for `ttl`): it prints one line naming the URL and ends the process
(exit 1). Waiting for the main thread instead could take minutes (client libraries retry a dead server
with backoff). Since a newcomer takes over only after `ttl` without renewal, the fence comes `ttl/2`
before any takeover, and the loop also checks the lease before every checkpoint and export (`check`).
What no client-side lease can exclude: a process paused between that check and its write. A rerun
resumes from the last complete checkpoint.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import logging
import os
import pathlib
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from etils import epath

from zoo import storage
from zoo.errors import UsageError

log = logging.getLogger(__name__)

LOCK_NAME = "lock"
TTL_ENV = "ZOO_LEASE_SECONDS"  # how long an unrenewed gs:// lease stays valid (default 60)
DEFAULT_TTL = 60.0
MIN_TTL = 4.0  # renewals every ttl/4 s; Cloud Storage allows about one write a second to one object


def _process_start(pid: int) -> str:
    """The kernel's start time of `pid` (clock ticks since boot): tells a live holder from a recycled pid."""
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _machine() -> str:
    """This boot of this machine's kernel and this pid namespace: what makes a holder's pid checkable here
    (a host name alone is shared by containers, or by VMs of one name in different zones)."""
    try:
        boot = pathlib.Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def _holder() -> dict[str, Any]:
    return {"host": socket.gethostname(), "machine": _machine(), "pid": os.getpid(),
            "process_start": _process_start(os.getpid()),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "token": uuid.uuid4().hex}


def _here(holder: dict[str, Any]) -> bool:
    return holder.get("host") == socket.gethostname() and bool(holder.get("machine")) and \
        holder.get("machine") == _machine()


def _alive_here(holder: dict[str, Any]) -> bool:
    """Whether a holder on THIS host still runs (its pid exists and started when the lease says)."""
    pid = int(holder.get("pid", -1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except (OSError, ValueError):
        return False
    recorded = holder.get("process_start", "")
    return not recorded or recorded == _process_start(pid)


def describe(holder: dict[str, Any]) -> str:
    return f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, started {holder.get('started', '?')}"


def in_use(workdir: str | os.PathLike, holder: dict[str, Any]) -> str:
    return (f"{os.fspath(workdir)} is in use by another run ({describe(holder)}); wait for it to finish or stop "
            "it, or use another --workdir")


def fence(message: str) -> None:
    """What a run does when it loses its lease: one line, and the process ends now (see the module doc)."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(1)


class Lease:
    """A held lease (this base holds none: for processes other than the run's first)."""

    def check(self) -> None:
        """Before writing to the workdir: returns only while the lease is surely held (else fences)."""

    def confirm(self) -> None:
        """After an unexpected error: fences now if the storage is the cause, else returns."""

    def release(self) -> None:
        """Gives the lease up (the run ended, or it was preempted)."""


def acquire(workdir: epath.Path, on_lost: Callable[[str], None] = fence) -> Lease:
    """Takes the workdir's lease, or raises UsageError naming the live run that holds it. `on_lost(message)`
    runs on the lease's thread if a gs:// lease is lost later."""
    if not storage.is_remote(workdir):
        return _LocalLease(pathlib.Path(workdir))
    try:
        return _GCSLease(workdir, on_lost)
    except UsageError:
        raise
    except Exception as e:  # no credentials, no permission, unreachable ...: the run cannot safely start
        raise UsageError(f"cannot take the lease {workdir}/{LOCK_NAME}: {type(e).__name__}: "
                         f"{' '.join(str(e).split())[:300]}") from None


class _LocalLease(Lease):
    def __init__(self, workdir: pathlib.Path):
        workdir.mkdir(parents=True, exist_ok=True)
        self.path = workdir / LOCK_NAME
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            try:
                holder = json.loads(self.path.read_text() or "{}")
            except (OSError, ValueError):
                holder = {}
            raise UsageError(in_use(workdir, holder)) from None
        record = json.dumps(_holder()).encode()
        os.pwrite(self._fd, record, 0)  # then cut the rest: a reader never sees an empty record
        os.ftruncate(self._fd, len(record))

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


class _GCSLease(Lease):
    def __init__(self, workdir: epath.Path, on_lost: Callable[[str], None]):
        from google.api_core import exceptions
        from google.cloud import storage as gcs

        self.url = f"{os.fspath(workdir)}/{LOCK_NAME}"
        self.ttl = lease_seconds()
        self._precondition_failed = exceptions.PreconditionFailed
        bucket, key = storage.bucket_and_key(workdir)
        self._bucket, self._key = gcs.Client().bucket(bucket), f"{key}/{LOCK_NAME}"
        self._blob = self._bucket.blob(self._key)  # what we write; reads use a fresh one (see _read)
        # Every request is bounded (connect, read) and so are its retries: a hung request must not outlive
        # the watchdog's ttl/2.
        self._request = {"retry": gcs.retry.DEFAULT_RETRY.with_timeout(self.ttl / 4),
                         "timeout": (min(5.0, self.ttl / 8), self.ttl / 8)}
        self._holder = _holder()
        self._payload = json.dumps({**self._holder, "ttl_seconds": self.ttl}).encode()
        self._generation = self._take()
        self._renewed = time.monotonic()
        self._on_lost = on_lost
        self._lock = threading.Lock()  # one renewal at a time (the thread's, or confirm()'s)
        self._stop = threading.Event()
        for target in (self._renew_loop, self._watchdog):
            threading.Thread(target=target, name=f"zoo-lease-{target.__name__}", daemon=True).start()

    def _read(self) -> tuple[int, dict[str, Any], float] | None:
        """(generation, holder, seconds since its last renewal) of the lease object, or None if absent."""
        # A fresh Blob: one that has seen a generation asks for that generation, not for the newest.
        blob = self._bucket.get_blob(self._key, **self._request)
        if blob is None:
            return None
        try:
            holder = json.loads(blob.download_as_bytes(**self._request))
        except self._precondition_failed:
            return None
        except ValueError:
            holder = {}
        except Exception as e:  # replaced between the two calls (404 for the old generation): look again
            if getattr(e, "code", None) == 404:
                return None
            raise
        return int(blob.generation), holder, time.time() - blob.updated.timestamp()

    def _write(self, if_generation_match: int) -> int | None:
        """Uploads our holder record if the object's generation is `if_generation_match` (0: absent)."""
        try:
            self._blob.upload_from_string(self._payload, content_type="application/json",
                                          if_generation_match=if_generation_match, **self._request)
        except self._precondition_failed:
            return None
        return int(self._blob.generation)

    def _take(self) -> int:
        watched: int | None = None  # the generation first seen of a holder on another host
        while True:
            current = self._read()
            if current is None:
                generation = self._write(0)
                if generation is not None:
                    return generation
                time.sleep(0.1)  # someone else created it meanwhile: look again
                continue
            generation, holder, age = current
            if holder.get("token") == self._holder["token"]:  # our own create landed; its reply was lost
                return generation
            here = _here(holder)
            if (here and not _alive_here(holder)) or age > float(holder.get("ttl_seconds", self.ttl)):
                taken = self._write(generation)
                if taken is not None:
                    log.warning("took over the lease of a run that is gone (%s)", describe(holder))
                    return taken
                time.sleep(0.1)
                continue
            if here or (watched is not None and watched != generation):  # alive: it renewed meanwhile
                raise UsageError(in_use(self.url.rsplit("/", 1)[0], holder))
            if watched is None:
                watched = generation
                log.warning("%s is held by %s elsewhere; waiting up to %.0f s to see whether it is alive",
                            self.url, describe(holder), self.ttl)
            time.sleep(min(self.ttl / 4, max(0.1, float(holder.get("ttl_seconds", self.ttl)) - age)))

    def _renew(self) -> None:
        with self._lock:
            generation = self._write(self._generation)
            if generation is None:  # our own retried write may have landed: is the record still ours?
                current = self._read()
                if current is None or current[1].get("token") != self._holder["token"]:
                    holder = describe(current[1]) if current else "nobody"
                    self._lost(f"lost the lease on {self.url} to another run ({holder}); stopped")
                    return
                generation = current[0]
            self._generation, self._renewed = generation, time.monotonic()

    def _lost(self, message: str) -> None:
        self._stop.set()
        self._on_lost(message)

    def _unreachable(self, error: BaseException | None) -> None:
        cause = f": {type(error).__name__}: {' '.join(str(error).split())[:200]}" if error else ""
        self._lost(f"cannot reach {self.url} (no lease renewal for {time.monotonic() - self._renewed:.0f} s), "
                   f"stopped; rerun to resume from the last complete checkpoint{cause}")

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                self._renew()
            except Exception as e:  # the watchdog decides; keep trying until then
                log.warning("lease renewal failed (%s); retrying", type(e).__name__)

    def _watchdog(self) -> None:
        while not self._stop.wait(self.ttl / 16):
            if time.monotonic() - self._renewed > self.ttl / 2:
                self._unreachable(None)
                return

    def check(self) -> None:
        if time.monotonic() - self._renewed > self.ttl / 2:
            self._unreachable(None)

    def confirm(self) -> None:
        try:
            self._renew()
        except Exception as e:
            self._unreachable(e)

    def release(self) -> None:
        self._stop.set()
        try:
            with self._lock:
                self._blob.delete(if_generation_match=self._generation, **self._request)
        except Exception as e:  # the lease expires by itself; a failed release blocks nobody for long
            log.warning("could not release the lease %s: %s", self.url, e)


def lease_seconds() -> float:
    """`ZOO_LEASE_SECONDS`, checked (a UsageError when it is not a number >= MIN_TTL)."""
    text = os.environ.get(TTL_ENV, str(DEFAULT_TTL))
    try:
        ttl = float(text)
    except ValueError:
        ttl = float("nan")
    if not ttl >= MIN_TTL:
        raise UsageError(f"{TTL_ENV}={text}: give a number of seconds >= {MIN_TTL:g}")
    return ttl
