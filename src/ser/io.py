"""Atomic writes: an interrupted stage never leaves a half-written file for DVC to cache, and
the next write of the same path removes whatever a killed one left behind.

Only regular files (or absent paths) are replaced atomically, keeping the file's mode; a symbolic
link is followed and its target replaced (the link stays); a FIFO, a device or a socket is written
through, never replaced (`--csv /dev/stdout` writes to standard output).

`check_output` says in one line, before any work, when a path must not be written, by the rule
of the shell's `>` and stricter: not a folder or a path under a file; not a file without write
permission (even for root: a read-only file is meant to stay); not a dangling symbolic link (it
would create a file somewhere the command line does not show); not a FIFO that nothing reads (the
write would wait forever); not one of the command's own inputs (it would destroy what it reads).
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
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
        if path.is_symlink():
            raise SerError(f"{path}: a symbolic link to {os.readlink(path)}, which does not exist: "
                           "refused (name the file to write itself)") from None
        return path, True
    except NotADirectoryError:
        raise SerError(f"{path}: cannot write: a part of the path is a file, not a folder") from None
    except OSError as err:
        raise SerError(f"{path}: cannot write ({err.strerror})") from None
    if stat.S_ISDIR(mode):
        raise SerError(f"{path}: is a directory, not a file to write")
    if stat.S_ISREG(mode):
        return (Path(os.path.realpath(path)) if path.is_symlink() else path), True
    return path, False


def _has_reader(path: Path) -> bool:
    """Whether a FIFO is open for reading now: opening it to write without blocking says so."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError as err:
        if err.errno == errno.ENXIO:
            return False
        raise SerError(f"{path}: cannot write ({err.strerror})") from None
    return True


def check_output(path: str | Path, inputs: Iterable[str | Path] = ()) -> None:
    """Fail in one line now if `path` must not or cannot be written later (see the module's
    rules; `inputs` are the files the command reads), the folder's part by making and removing
    a temporary file where it would go."""
    path = Path(path)
    target, atomic = _target(path)
    if target.exists():
        st = os.stat(target)
        for f in inputs:
            try:
                same = os.path.samestat(st, os.stat(f))
            except OSError:
                continue
            if same:
                raise SerError(f"{path}: is {f}, an input of this command: refused (name another "
                               "file to write)")
        if stat.S_ISFIFO(st.st_mode) and not _has_reader(target):
            raise SerError(f"{path}: a FIFO that nothing reads: refused (the write would wait "
                           "forever; start its reader first)")
        if not os.access(target, os.W_OK) or (stat.S_ISREG(st.st_mode) and not st.st_mode & 0o222):
            raise SerError(f"{path}: read-only: refused (make it writable, or name another file)")
    if not atomic:
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
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)  # a replaced file keeps its mode
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        yield tmp_path
        os.chmod(tmp_path, mode)
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
