"""Where samples go: stdout, one file, or one file per sample in a directory.

Files are written atomically (temp file + rename) and an existing file is never replaced unless the user
says --overwrite: a sampling run must not destroy anybody's work.
"""

from __future__ import annotations

import os
import pathlib
import re
import sys
import tempfile

from zoo.errors import UsageError


def is_directory_target(out: str) -> bool:
    return out.endswith(("/", os.sep)) or pathlib.Path(out).is_dir()


def planned_paths(out: str, count: int, extension: str) -> list[pathlib.Path]:
    """The files `--out` means for `count` samples: DIR/000.EXT ... or the one file itself."""
    if is_directory_target(out):
        return [pathlib.Path(out) / f"{i:03d}.{extension}" for i in range(count)]
    return [pathlib.Path(out)]


def default_target(prompt: str, count: int, extension: str, directory: str | os.PathLike = ".") -> str:
    """Where binary samples go without --out: `PROMPT-WORDS.EXT` (or the directory `PROMPT-WORDS/` for
    several samples) in `directory`, with -2, -3 ... added rather than touching anything that exists."""
    slug = "-".join(re.findall(r"\w+", prompt.lower()))[:40].strip("-_") or "sample"
    for n in range(1, 10_000):
        name = slug if n == 1 else f"{slug}-{n}"
        path = pathlib.Path(directory) / (name if count > 1 else f"{name}.{extension}")
        if not path.exists():
            return str(path) + os.sep if count > 1 else str(path)
    raise UsageError(f"no free file name for {slug!r} in {directory}; pass --out")


def check_writable(paths: list[pathlib.Path], overwrite: bool) -> None:
    """Fails before any work is done, so a bad --out costs nothing."""
    for path in paths:
        if path.exists() and not overwrite:
            raise UsageError(f"{path} already exists; pass --overwrite to replace it")
        if path.exists() and path.is_dir():
            raise UsageError(f"{path} is a directory")
        existing = next((p for p in path.parents if p.exists()), None)  # the directory it would be made in
        if existing is not None and not existing.is_dir():
            raise UsageError(f"cannot write into {existing}: not a directory")
    if len(set(paths)) < len(paths):
        raise UsageError("two outputs would go to the same file")


def write_bytes(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        f.write(data)
        temp = f.name
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o666 & ~umask)  # a temp file is private (0600); the result should read like any new file
    os.replace(temp, path)


def write_texts(texts: list[str], out: str | None, overwrite: bool) -> list[pathlib.Path]:
    """Poems to stdout (separated by a blank line), to one file, or to DIR/000.txt ..."""
    if out is None:
        sys.stdout.write("\n\n".join(t.rstrip("\n") for t in texts) + "\n")
        return []
    paths = planned_paths(out, len(texts), "txt")
    check_writable(paths, overwrite)
    if len(paths) == 1 and len(texts) > 1:
        write_bytes(paths[0], ("\n\n".join(t.rstrip("\n") for t in texts) + "\n").encode())
    else:
        for path, text in zip(paths, texts, strict=True):
            write_bytes(path, (text.rstrip("\n") + "\n").encode())
    return paths
