"""Where a run's files live: a local (or mounted) directory, or a Cloud Storage URL (gs://BUCKET/PATH).

Everything that reads or writes a workdir or an export goes through `etils.epath` paths, which speak both:
Orbax and TensorBoard write gs:// natively, and the small files (config, metrics, tokenizer, assets) go
through gcsfs. Object storage differs from a disk in two ways that matter here, and the helpers below
name the guarantee each write relies on:

- An object appears whole or not at all (an upload becomes visible when it completes), so writing a file
  is atomic by itself; on a disk we write a temporary file and `os.replace` it.
- There is no rename: "moving" a directory is a copy of every object followed by deleting the source, so
  the data exists complete in at least one place at every moment, never in none.

Exports are small (they hold only what sampling needs), so reading one from a bucket means downloading it
to a temporary folder once per process; the samplers and tokenizers then read local files as always.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator

from etils import epath

from zoo.errors import UsageError

log = logging.getLogger(__name__)
# gcsfs warns on every new filesystem that it cannot probe the bucket's layout without Google credentials
# (an emulator, or a bucket it then reads fine), and fsspec logs each read at INFO: neither is news to a user.
for _name, _level in (("gcsfs", logging.ERROR), ("google.auth", logging.ERROR), ("fsspec", logging.WARNING)):
    logging.getLogger(_name).setLevel(_level)

Path = epath.Path
REMOTE_SCHEMES = ("gs",)
GCS_EXTRA_HINT = "install the gcs extra: pip install 'zoo[gcs]'"


def scheme(location: str | os.PathLike) -> str:
    text = os.fspath(location)
    return text.split("://", 1)[0].lower() if "://" in text else ""


def is_remote(path: str | os.PathLike) -> bool:
    return scheme(path) != ""


def as_path(location: str | os.PathLike) -> epath.Path:
    """A workdir or export location as a path: local ones made absolute, gs:// URLs as they are. Another
    URL scheme, or gs:// without the packages that speak it, is a UsageError."""
    kind = scheme(location)
    if not kind:
        return epath.Path(os.path.abspath(os.path.expanduser(os.fspath(location))))
    if kind not in REMOTE_SCHEMES:
        raise UsageError(f"{location}: {kind}:// is not supported; use a local path or gs://BUCKET/PATH")
    try:
        import gcsfs  # noqa: F401  (epath's gs:// backend)
    except ImportError:
        raise UsageError(f"{location}: gs:// needs gcsfs; {GCS_EXTRA_HINT}") from None
    text = os.fspath(location).rstrip("/")
    if len(text.split("://", 1)[1].split("/", 1)) < 2:
        raise UsageError(f"{location}: give a folder inside the bucket, e.g. gs://BUCKET/run")
    return epath.Path(text)


def bucket_and_key(path: str | os.PathLike) -> tuple[str, str]:
    """("BUCKET", "PATH") of gs://BUCKET/PATH."""
    bucket, _, key = os.fspath(path).split("://", 1)[1].partition("/")
    return bucket, key


def _fresh_fs(path: str | os.PathLike):
    """The fsspec filesystem (gcsfs) that epath, and so Orbax, use for `path`. It caches directory listings
    per process while other writers (Orbax's tensorstore, other processes) change the bucket behind its
    back, so listings are dropped before every tree operation (and after each move)."""
    from etils.epath import backend

    fs = backend.fsspec_backend.fs(os.fspath(path))
    fs.invalidate_cache()
    return fs


def check_reachable(path: epath.Path) -> None:
    """Fails fast (UsageError, one line) when a gs:// workdir's bucket cannot be reached, before any data
    loads; a local path needs nothing."""
    if not is_remote(path):
        return
    bucket = bucket_and_key(path)[0]
    try:
        found = _fresh_fs(path).exists(bucket)
    except Exception as e:  # auth, DNS, refused connection ...: all mean "cannot use this URL"
        raise UsageError(f"cannot reach gs://{bucket} ({path}): {type(e).__name__}: {_one_line(e)}") from None
    if not found:
        raise UsageError(f"bucket gs://{bucket} does not exist or is not visible to these credentials ({path})")


def write_atomic(path: epath.Path, data: str | bytes) -> None:
    """Replaces `path` so that a reader sees the old content or the new, never a mix.

    Object storage: one upload, which becomes visible only once complete. Disk: a temporary file in the same
    directory, then `os.replace` (atomic on POSIX filesystems)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if is_remote(path):
        path.write_bytes(payload)
        return
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as f:
        f.write(payload)
    os.replace(f.name, target)


def move_tree(source: epath.Path, target: epath.Path) -> None:
    """Moves a directory. Disk: one rename. Object storage: copy every object, then delete the source, so
    that an interrupted move leaves a complete copy behind (in the source, or in the target)."""
    if not is_remote(source):
        pathlib.Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), str(target))
        return
    fs = _fresh_fs(source)
    fs.copy(_strip(source) + "/", _strip(target) + "/", recursive=True)
    fs.rm(_strip(source), recursive=True)
    fs.invalidate_cache()


@contextlib.contextmanager
def writable_dir(target: epath.Path) -> Iterator[pathlib.Path]:
    """A local folder whose files end up in `target`: `target` itself on disk; for a bucket a temporary
    folder uploaded on success (each file one atomic upload) and dropped either way. For writers that only
    know local files (tokenizers, numpy)."""
    if not is_remote(target):
        pathlib.Path(target).mkdir(parents=True, exist_ok=True)
        yield pathlib.Path(target)
        return
    with tempfile.TemporaryDirectory(prefix="zoo-upload-") as staging:
        yield pathlib.Path(staging)
        upload_tree(pathlib.Path(staging), target)


def upload_tree(source: pathlib.Path, target: epath.Path) -> None:
    """Copies every file under local `source` into `target` (files that exist there are replaced)."""
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        (target / path.relative_to(source).as_posix()).write_bytes(path.read_bytes())


def local_dir(path: str | os.PathLike) -> pathlib.Path:
    """`path` as a local folder: itself on disk; a bucket folder is downloaded once per process into a
    temporary folder that is removed at exit (exports and tokenizers are small)."""
    if not is_remote(path):
        return pathlib.Path(path)
    return _download(os.fspath(path).rstrip("/"))


@functools.cache
def _download(url: str) -> pathlib.Path:
    local = pathlib.Path(tempfile.mkdtemp(prefix="zoo-download-"))
    atexit.register(shutil.rmtree, local, ignore_errors=True)
    fs = _fresh_fs(url)
    try:
        fs.get(_strip(url) + "/", str(local) + "/", recursive=True)
    except Exception as e:
        raise UsageError(f"cannot download {url}: {type(e).__name__}: {_one_line(e)}") from None
    log.info("downloaded %s to %s", url, local)
    return local


def _strip(path: str | os.PathLike) -> str:
    return os.fspath(path).split("://", 1)[1].rstrip("/")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]
