"""Atomic writes: a temp file (or directory) beside the target, then a rename.

A failed run never leaves a half-written output, and an existing output is
replaced only with ``force``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from recommender.errors import InputError, OutputExistsError


def check_writable(path: str | os.PathLike[str], force: bool) -> Path:
    """Refuse an existing output unless ``force``; return the path."""
    target = Path(path)
    if target.exists() and not force:
        raise OutputExistsError(str(target))
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.exists():
        raise InputError(str(target), "parent directory does not exist")
    return target


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, force: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically."""
    target = check_writable(path, force)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def write_text_atomic(path: str | os.PathLike[str], text: str, force: bool = False) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"), force)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Yield a temp directory that replaces ``path`` when the block succeeds.

    On failure the temp directory is removed and ``path`` is untouched.
    """
    target = check_writable(path, force)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.rename(target, old / "x")
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
