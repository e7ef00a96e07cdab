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

# epath would route gs:// through TensorFlow's gfile where TensorFlow is installed (tfds, TF TPU images):
# then neither the gcsfs listing cache handled below nor the emulator settings would apply. One backend.
os.environ.setdefault("EPATH_USE_TF", "false")

from etils import epath  # noqa: E402

from zoo.errors import UsageError  # noqa: E402

log = logging.getLogger(__name__)
# gcsfs warns on every new filesystem that it cannot probe the bucket's layout, and google.auth that it found
# no metadata server, whenever credentials come another way (an emulator, a key file); fsspec logs each read
# at INFO. None of it is news to a user; a request that really fails says so itself.
for _name, _level in (("gcsfs", logging.ERROR), ("google.auth", logging.ERROR), ("fsspec", logging.WARNING)):
    logging.getLogger(_name).setLevel(_level)

Path = epath.Path
REMOTE_SCHEMES = ("gs",)
GCS_EXTRA_HINT = "install the gcs extra: pip install 'zoo[gcs]'"


def scheme(location: str | os.PathLike) -> str:
    text = os.fspath(location)
    return text.split("://", 1)[0] if "://" in text else ""


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
        from google.cloud import storage  # noqa: F401  (the workdir lease, TensorBoard's gs:// writer)
    except ImportError:
        raise UsageError(f"{location}: gs:// needs gcsfs and google-cloud-storage; {GCS_EXTRA_HINT}") from None
    text = os.fspath(location).rstrip("/")
    if len(text.split("://", 1)[1].split("/", 1)) < 2:
        raise UsageError(f"{location}: give a folder inside the bucket, e.g. gs://BUCKET/run")
    return epath.Path(text)


def bucket_and_key(path: str | os.PathLike) -> tuple[str, str]:
    """("BUCKET", "PATH") of gs://BUCKET/PATH."""
    bucket, _, key = os.fspath(path).split("://", 1)[1].partition("/")
    return bucket, key


def forget_listings(path: str | os.PathLike) -> None:
    """Drops the directory listings that gcsfs (epath's, and so Orbax's, gs:// backend) caches per process.
    Other writers (Orbax's tensorstore, other processes) change the bucket behind its back: call this
    before listing what they may have changed. A no-op on disk."""
    if is_remote(path):
        _fs(path).invalidate_cache()


def _fs(path: str | os.PathLike):
    from etils.epath import backend

    return backend.fsspec_backend.fs(os.fspath(path))


def check_reachable(path: epath.Path) -> None:
    """Fails fast (UsageError, one line) when a gs:// workdir's bucket cannot be used, before any data loads.
    It lists at most one object under the workdir: the permission a run needs anyway (a bucket-level read
    needs more than a training job's usual role). A local path needs nothing."""
    if not is_remote(path):
        return
    from google.api_core import exceptions
    from google.cloud import storage as gcs

    bucket, key = bucket_and_key(path)
    try:
        list(gcs.Client().list_blobs(bucket, prefix=f"{key}/", max_results=1, timeout=30))
    except exceptions.NotFound:
        raise UsageError(f"bucket gs://{bucket} does not exist ({path})") from None
    except exceptions.Forbidden as e:
        raise UsageError(f"no permission to list {path}: {_one_line(e)}") from None
    except Exception as e:  # auth, DNS, refused connection ...: all mean "cannot use this URL"
        raise UsageError(f"cannot reach gs://{bucket} ({path}): {type(e).__name__}: {_one_line(e)}") from None


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
    os.chmod(f.name, 0o666 & ~_umask())  # a temporary file is private (0600); the file it replaces was not
    os.replace(f.name, target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def move_tree(source: epath.Path, target: epath.Path) -> None:
    """Moves a directory. Disk: one rename. Object storage: copy every object, then delete the source, so
    that an interrupted move leaves a complete copy behind (in the target; the source may then be partly
    deleted, which the next reader finds damaged and moves aside again)."""
    if not is_remote(source):
        pathlib.Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), str(target))
        return
    forget_listings(source)
    fs = _fs(source)
    fs.copy(_strip(source) + "/", _strip(target) + "/", recursive=True)
    fs.rm(_strip(source), recursive=True)
    forget_listings(source)


@contextlib.contextmanager
def writable_dir(target: epath.Path, last: str = "") -> Iterator[pathlib.Path]:
    """A local folder whose files end up in `target`, with the file named `last` (a reader's "complete"
    marker) arriving after all the others.

    Disk: a new `target` is staged in a sibling folder and renamed into place (atomic); an existing one is
    written in place. Bucket: staged in a temporary folder, then uploaded file by file (each file one
    atomic upload), `last` last."""
    if not is_remote(target):
        target = pathlib.Path(target)
        if target.is_dir():
            yield target
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = pathlib.Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            yield staging
            staging.chmod(0o777 & ~_umask())
            os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return
    with tempfile.TemporaryDirectory(prefix="zoo-upload-") as staging:
        yield pathlib.Path(staging)
        files = sorted((p for p in pathlib.Path(staging).rglob("*") if p.is_file()),
                       key=lambda p: (p.relative_to(staging).as_posix() == last, p.as_posix()))
        for path in files:
            (target / path.relative_to(staging).as_posix()).write_bytes(path.read_bytes())


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
    forget_listings(url)
    fs = _fs(url)
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
