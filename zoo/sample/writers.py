"""Where samples go: stdout, one file, or one file per sample in a directory (DESIGN.md "CLI contracts").

Files are written atomically (temp file + rename) and an existing file is never replaced unless the user
says --overwrite: a sampling run must not destroy anybody's work.
"""

from __future__ import annotations

import os
import pathlib
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


def check_writable(paths: list[pathlib.Path], overwrite: bool) -> None:
    """Fails before any work is done, so a bad --out costs nothing."""
    for path in paths:
        if path.exists() and not overwrite:
            raise UsageError(f"{path} already exists; pass --overwrite to replace it")
        if path.exists() and path.is_dir():
            raise UsageError(f"{path} is a directory")
        parent = path.parent
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"cannot write into {parent}: not a directory")


def write_bytes(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        f.write(data)
        temp = f.name
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
