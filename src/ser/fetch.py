"""Fetching an archive over HTTP: resumable (Range), retried with back-off, bounded in time,
with progress, verified by md5 before it is renamed into place. Used by the download stage (and
any corpus whose params give a URL)."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ser.errors import SerError

log = logging.getLogger("download")
_CHUNK = 1 << 20


def file_hashes(path: Path) -> tuple[str, str]:
    """(md5, sha256) of a file in one pass."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def _classify(err: BaseException) -> tuple[bool, str]:
    """(permanent: retrying cannot mend it, what happened in a few words)."""
    if isinstance(err, urllib.error.HTTPError):
        return err.code < 500 and err.code not in (408, 429), f"HTTP {err.code} {err.reason}"
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    if isinstance(reason, _Limit):
        return True, str(reason)
    if isinstance(reason, socket.gaierror):
        return True, "cannot resolve the host name (offline, or no DNS?)"
    if isinstance(reason, ConnectionRefusedError):
        return True, "connection refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return False, "no answer in time"
    return False, str(reason) or type(reason).__name__


class _Limit(TimeoutError):
    """A limit of the download itself ran out (its message says which)."""


class _Progress:
    """What one download call has seen: bytes that arrived, when the last one did, its deadline."""

    def __init__(self, stall_limit: float, total_limit: float) -> None:
        self.start = self.last_byte = time.monotonic()
        self.stall_limit, self.deadline = stall_limit, self.start + total_limit
        self.arrived = 0

    def got(self, n: int) -> None:
        self.arrived += n
        self.last_byte = time.monotonic()

    def timeout(self, per_read: float) -> float:
        """The socket timeout for the next connection or read: never past the stall limit nor
        the deadline, so neither can be overshot by more than one scheduling tick."""
        now = time.monotonic()
        left = min(self.stall_limit - (now - self.last_byte), self.deadline - now)
        if self.deadline - now <= 0:
            raise _Limit(f"the download's time limit ({self.deadline - self.start:g} s) ran out")
        if left <= 0:
            raise _Limit(f"no byte for {self.stall_limit:g} s (the stall limit)")
        return min(per_read, left)


def download(url: str, dest: Path, md5: str | None, *, retries: int, timeout: float,
             stall_limit: float, total_limit: float, backoff: float = 2.0,
             archive_env: str = "RAVDESS_ARCHIVE") -> Path:
    """Download `url` to `dest`, resuming a partial `dest.part`; verify md5 (unless None: the
    caller checks) before renaming.

    A permanent error fails at once. A transient one is retried with back-off, at most `retries`
    times; no connection or read waits past `stall_limit` seconds without a byte arriving, and
    the whole download past `total_limit` seconds (a server trickling bytes is given up too).
    Progress shows every read; a failure says how much arrived.
    """
    if dest.exists() and (md5 is None or file_hashes(dest)[0] == md5):
        log.info("%s already downloaded and verified", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    had = part.stat().st_size if part.exists() else 0
    prog = _Progress(stall_limit, total_limit)
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, timeout, prog)
            break
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            permanent, what = _classify(err)
            now = time.monotonic()
            if now >= prog.deadline:  # a read cut short by the deadline: say so
                permanent, what = True, f"the download's time limit ({total_limit:g} s) ran out"
            elif isinstance(err, (TimeoutError, socket.timeout)) and now - prog.last_byte >= stall_limit:
                what = f"no byte for {stall_limit:g} s (the stall limit)"
            wait = backoff * 2 ** attempt
            out_of_time = (now - prog.last_byte + wait > stall_limit or now + wait > prog.deadline)
            if permanent or attempt == retries or out_of_time:
                raise SerError(_failure(url, what, prog.arrived, part, had, archive_env)) from None
            log.warning("download: %s; retrying in %.0f s", what, wait)
            time.sleep(wait)
    got = file_hashes(part)[0]
    if md5 is not None and got != md5:
        part.unlink()
        raise SerError(f"{url}: bad checksum (md5 {got}, expected {md5}); the partial file was "
                       "removed, run again to download afresh")
    os.replace(part, dest)
    return dest


def _failure(url: str, what: str, arrived: int, part: Path, had: int, archive_env: str) -> str:
    size = part.stat().st_size if part.exists() else 0
    local = f"set {archive_env}=/path/to/archive.zip to use a local copy"
    if size == 0 and arrived == 0:
        return f"{url}: {what}; nothing was downloaded. {local[0].upper()}{local[1:]}"
    return (f"{url}: {what} after {_size(arrived)} arrived this run ({_size(size)} in {part.name}"
            + (f", {_size(had)} of it from an earlier run" if had else "")
            + f"); run again to resume, or {local}")


def _size(n: int) -> str:
    return f"{n} bytes" if n < 1000 else f"{n / 1e3:.1f} kB" if n < 1e6 else f"{n / 1e6:.1f} MB"


def _fetch(url: str, part: Path, timeout: float, prog: _Progress) -> None:
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=prog.timeout(timeout))
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to fetch: the part file is complete
            return
        raise
    with resp:
        if have and resp.status != 206:
            have = 0  # the server ignored the range: start over
        total = resp.headers.get("Content-Length")
        total = int(total) + have if total is not None else None
        sock = getattr(getattr(getattr(resp, "fp", None), "raw", None), "_sock", None)
        with open(part, "ab" if have else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc="download") as bar:
            while True:
                if sock is not None:
                    sock.settimeout(prog.timeout(timeout))
                else:
                    prog.timeout(timeout)  # raises once a limit has run out
                chunk = resp.read1(_CHUNK)  # what has arrived, not a full chunk: progress shows
                if not chunk:
                    break
                f.write(chunk)
                f.flush()
                prog.got(len(chunk))
                bar.update(len(chunk))
        if total is not None and part.stat().st_size < total:
            raise ConnectionError(f"connection closed at {part.stat().st_size} of {total} bytes")
