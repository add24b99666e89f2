"""Atomic writes: a temp file (or directory) beside the target, then a rename.

A failed run never leaves a half-written output, and an existing output is
replaced only with ``force``.

A run killed outright (SIGKILL, OOM, power loss) cannot clean up after itself,
so its temp entries are named to be recognised (``.<name>.netpol-tmp-*`` and
``.<name>.netpol-old-*`` beside the target) and carry an ``flock`` for as long
as their writer lives. The next write to the same target removes those whose
lock is free (their writer is gone); one that held the previous output while a
``--force`` replacement was being swapped in is put back first when the new one
never landed. Data is fsynced before each rename, and the directory after it,
so a rename never exposes a file whose bytes are not on disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from recommender.errors import InputError, OutputExistsError

try:  # POSIX; elsewhere leftovers are only ignored, not removed
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

#: Tags of temp entries beside a target (``.<target>.<tag>XXXX``).
TMP_TAG = "netpol-tmp-"
OLD_TAG = "netpol-old-"


def check_writable(path: str | os.PathLike[str], force: bool) -> Path:
    """Refuse an existing output unless ``force``; return the path.

    Leftovers of a killed earlier write to ``path`` are cleaned up first (see
    :func:`remove_stale_temps`), so a previous output it was replacing is back
    in place before the check.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if parent.is_dir():
        remove_stale_temps(target)
    if target.exists() and not force:
        raise OutputExistsError(str(target))
    if not parent.exists():
        raise InputError(str(target), "parent directory does not exist")
    return target


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, force: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (fsynced before the rename)."""
    target = check_writable(path, force)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{TMP_TAG}", dir=target.parent or ".")
    try:
        _lock(fd)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; an output gets the usual mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def write_text_atomic(path: str | os.PathLike[str], text: str, force: bool = False) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"), force)


def dumps_json(obj: Any) -> str:
    """The one JSON rendering of every report: keys sorted, two-space indent, a final newline.

    Sorted keys make the bytes independent of how the dict was built (insertion
    order, set iteration under ``PYTHONHASHSEED``).

    >>> print(dumps_json({"b": 1, "a": [True, None]}), end="")
    {
      "a": [
        true,
        null
      ],
      "b": 1
    }
    """
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def write_json_atomic(path: str | os.PathLike[str], obj: Any, force: bool = False) -> Path:
    """Write ``obj`` as :func:`dumps_json` to ``path`` atomically (``force`` to replace)."""
    return write_text_atomic(path, dumps_json(obj), force)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Yield a temp directory that replaces ``path`` when the block succeeds.

    On failure the temp directory is removed and ``path`` is untouched. A
    replaced ``path`` is moved aside before the new tree is renamed in; if the
    process dies between the two renames, the next write puts it back.
    """
    target = check_writable(path, force)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{TMP_TAG}", dir=target.parent))
    lock = _lock_path(tmp)
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        yield tmp
        _fsync_tree(tmp)
        if target.exists():
            _swap_in(tmp, target)
        else:
            os.rename(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(lock)


def _swap_in(tmp: Path, target: Path) -> None:
    """Replace the directory ``target`` with ``tmp``: old aside (locked), new in, old gone."""
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.{OLD_TAG}", dir=target.parent))
    lock = _lock_path(old)
    try:
        os.rename(target, old / "x")
        os.rename(tmp, target)
    finally:
        os.close(lock)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------
# Leftovers of killed writers
# ---------------------------------------------------------------------------


def remove_stale_temps(target: str | os.PathLike[str]) -> list[Path]:
    """Remove temp entries of ``target`` whose writer is gone; return what was removed.

    An entry whose ``flock`` is still held belongs to a live writer and is left
    alone. A stale ``netpol-old-`` entry still holding the previous output
    (``x``) while ``target`` is missing is renamed back to ``target``: the
    replacement never landed, so the output is as before the killed run.
    """
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    removed = []
    for entry in sorted(parent.glob(f".{_glob_escape(target.name)}.netpol-*")):
        tag = entry.name[len(target.name) + 2 :]
        if not tag.startswith((TMP_TAG, OLD_TAG)) or not _is_stale(entry):
            continue
        previous = entry / "x"
        if tag.startswith(OLD_TAG) and previous.is_dir() and not target.exists():
            os.rename(previous, target)
        _remove(entry)
        removed.append(entry)
    return removed


def remove_stale_dirs(parent: str | os.PathLike[str], prefix: str) -> list[Path]:
    """Remove directories ``parent/<prefix>*`` whose ``flock`` is free (writer gone)."""
    removed = []
    for entry in sorted(Path(parent).glob(f"{_glob_escape(prefix)}*")):
        if entry.is_dir() and not entry.is_symlink() and _is_stale(entry):
            _remove(entry)
            removed.append(entry)
    return removed


def lock_directory(path: str | os.PathLike[str]) -> int:
    """Hold an exclusive ``flock`` on the directory ``path``; return the fd to close.

    The kernel drops the lock when the process dies, however it dies, which is
    what marks its temp entries stale for :func:`remove_stale_dirs`.
    """
    return _lock_path(Path(path))


def _lock_path(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY)
    _lock(fd)
    return fd


def _lock(fd: int) -> None:
    """Lock a fresh entry; a file system without ``flock`` leaves it unlocked (and so
    removable by a concurrent writer of the same target, which is a conflict anyway)."""
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _is_stale(entry: Path) -> bool:
    """True when nobody holds the entry's lock (it is not ours to judge without fcntl)."""
    if fcntl is None:  # pragma: no cover
        return False
    try:
        fd = os.open(entry, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held: a live writer
    finally:
        os.close(fd)
    return True


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()


def _glob_escape(name: str) -> str:
    """``glob`` treats ``[*?`` specially; a target name may contain them."""
    return "".join(f"[{c}]" if c in "[*?" else c for c in name)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (bottom-up), so the rename
    publishes data that is on disk."""
    for folder, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems refuse fsync on a directory
        fd = os.open(path if str(path) else ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
