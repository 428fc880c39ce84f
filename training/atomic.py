"""Atomic artifact writes: write to a temp file in the same folder, then rename over the target."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; it replaces `path` only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def publish_new(tmp: Path, path: Path) -> Path:
    """Move the finished temp file `tmp` to `path` without overwriting data: onto `path` if it is missing or an
    empty file, else onto the first free `STEM-2.SUFFIX`, `STEM-3.SUFFIX`, ...; returns where it went. A name is
    claimed by creating it exclusively (O_EXCL) before the rename, so a file made meanwhile is never replaced."""
    path, n = Path(path), 1
    while True:
        target = path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")
        try:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            if target.is_symlink() or not target.is_file() or target.stat().st_size > 0:
                n += 1
                continue
        os.replace(tmp, target)
        return target
