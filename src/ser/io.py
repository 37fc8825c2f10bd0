"""Atomic writes: an interrupted stage never leaves a half-written file for DVC to cache, and
the next write of the same path removes whatever a killed one left behind.

Only regular files (or absent paths) are replaced atomically; a symbolic link is followed and its
target replaced (the link stays); a FIFO, a device or a socket is written through, never replaced
(`--csv /dev/stdout` writes to standard output). `check_output` says in one line, before any
work, when a path cannot be written.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ser.errors import SerError


def remove_stale_temps(path: Path) -> None:
    """Remove what a killed writer of `path` left (`.name.*.tmp` beside it).

    Only one writer of a path runs at a time (DVC's lock, the trainer's lock), so any such
    temporary found when a new write starts is stale.
    """
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        shutil.rmtree(stale) if stale.is_dir() and not stale.is_symlink() else stale.unlink()


def _target(path: Path) -> tuple[Path, bool]:
    """(the path to write, whether to write it atomically): see the module's docstring."""
    try:
        mode = os.stat(path).st_mode  # follows symbolic links
    except FileNotFoundError:
        return (Path(os.path.realpath(path)) if path.is_symlink() else path), True
    except NotADirectoryError:
        raise SerError(f"{path}: cannot write: a part of the path is a file, not a folder") from None
    except OSError as err:
        raise SerError(f"{path}: cannot write ({err.strerror})") from None
    if stat.S_ISDIR(mode):
        raise SerError(f"{path}: is a directory, not a file to write")
    if stat.S_ISREG(mode):
        return (Path(os.path.realpath(path)) if path.is_symlink() else path), True
    return path, False


def check_output(path: str | Path) -> None:
    """Fail in one line now if `path` cannot be written later (a folder, a path under a file, a
    read-only place such as /proc), by making and removing a temporary file where it would go."""
    path = Path(path)
    target, atomic = _target(path)
    if not atomic:
        if not os.access(target, os.W_OK):
            raise SerError(f"{path}: cannot write (permission denied)")
        return
    folder = target.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise SerError(f"{path}: cannot write: {folder} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".check.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise SerError(f"{path}: cannot write in {folder} ({err.strerror})") from None


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it into place, else remove it.
    A FIFO, device or socket at `path` is yielded itself: written through, never replaced."""
    path, atomic = _target(Path(path))
    if not atomic:
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_json(path: str | Path, data: object) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text(path: str | Path, text: str) -> None:
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    except SerError:
        raise
    except OSError as err:
        raise SerError(f"{path}: cannot write ({err.strerror or err})") from None
