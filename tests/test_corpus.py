import hashlib
import http.server
import socket
import threading
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from ser import fetch
from ser.stages import download as corpus
from ser.stages.download import extract, validate_corpus, verify_archive
from ser.errors import SerError
from ser.params import load_params

ROOT = Path(__file__).resolve().parents[1]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def download(url, dest, md5, **kw):
    """The stage's download with params.yaml's limits, some changed."""
    p = load_params(Path(__file__).resolve().parents[1] / "params.yaml").download
    limits = dict(retries=p.retries, timeout=p.timeout_s, stall_limit=p.stall_limit_s,
                  total_limit=p.total_limit_s)
    return fetch.download(url, dest, md5, **{**limits, **kw})


def write_params(tmp_path: Path, **download) -> Path:
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["download"].update(download)
    data["folds"].update(runs=["random-0", "random-1"])  # the loader checks them against the actors
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Server:
    """A real HTTP server on 127.0.0.1 serving one file, honouring Range; can cut a response."""

    def __init__(self, payload: bytes):
        self.payload, self.cut_next, self.ranges = payload, False, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if not self.path.endswith(".zip"):
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                if rng:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                body = outer.payload[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(outer.payload) - 1}/{len(outer.payload)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_next:  # drop the connection half-way
                    outer.cut_next = False
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/Audio_Speech_Actors_01-24.zip"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(small_archive):
    s = Server(small_archive.read_bytes())
    yield s
    s.close()


def test_download_resumes_after_cut(tmp_path, server, small_archive):
    server.cut_next = True
    dest = download(server.url, tmp_path / "a.zip", md5(small_archive), retries=2, backoff=0.01)
    assert md5(dest) == md5(small_archive)
    assert server.ranges[0] is None and server.ranges[1] == f"bytes={len(server.payload) // 2}-"
    assert not (tmp_path / "a.zip.part").exists()


def test_download_resumes_partial_file_from_earlier_run(tmp_path, server, small_archive):
    third = len(server.payload) // 3
    (tmp_path / "a.zip.part").write_bytes(server.payload[:third])
    download(server.url, tmp_path / "a.zip", md5(small_archive), retries=0)
    assert server.ranges == [f"bytes={third}-"]
    assert md5(tmp_path / "a.zip") == md5(small_archive)


def test_download_bad_checksum_removes_partial(tmp_path, server):
    with pytest.raises(SerError, match="bad checksum"):
        download(server.url, tmp_path / "a.zip", "0" * 32, retries=0)
    assert not (tmp_path / "a.zip").exists() and not (tmp_path / "a.zip.part").exists()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("url,what", [
    (lambda: f"http://127.0.0.1:{_closed_port()}/x.zip", "connection refused"),
    (lambda: "http://ravdess.invalid/x.zip", "cannot resolve the host name"),
])
def test_permanent_errors_fail_at_once(tmp_path, url, what):
    t0 = time.monotonic()
    with pytest.raises(SerError) as err:
        download(url(), tmp_path / "x.zip", "0" * 32, retries=5, backoff=5)
    assert time.monotonic() - t0 < 5  # no retry, no back-off
    msg = str(err.value)
    assert what in msg and "nothing was downloaded" in msg and "RAVDESS_ARCHIVE=" in msg
    assert "resume" not in msg and "\n" not in msg


def test_http_404_fails_at_once(tmp_path, server):
    t0 = time.monotonic()
    with pytest.raises(SerError, match=r"HTTP 404 .*nothing was downloaded.*RAVDESS_ARCHIVE"):
        download(server.url.replace(".zip", ".nope"), tmp_path / "x.zip", "0" * 32, retries=5, backoff=5)
    assert time.monotonic() - t0 < 5


def test_a_server_that_never_answers_is_given_up_in_bounded_time(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections, never answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/x.zip"
    t0 = time.monotonic()
    with pytest.raises(SerError, match=r"no byte for 1.5 s \(the stall limit\); nothing was downloaded"):
        download(url, tmp_path / "x.zip", "0" * 32, retries=20, timeout=0.3, stall_limit=1.5,
                 backoff=0.2)
    assert time.monotonic() - t0 < 4
    listener.close()


def test_a_cut_after_some_bytes_says_resume(tmp_path, server):
    server.cut_next = True
    with pytest.raises(SerError, match=r"after \d+\.\d MB arrived this run .*; run again to resume"):
        download(server.url, tmp_path / "x.zip", "0" * 32, retries=0)
    assert (tmp_path / "x.zip.part").stat().st_size > 0


def test_stage_downloads_from_url(tmp_path, server, small_archive, monkeypatch):
    monkeypatch.delenv(corpus.ARCHIVE_ENV, raising=False)
    params = write_params(tmp_path, url=server.url, md5=md5(small_archive), actors=[1, 2, 3, 4])
    corpus.run(params, tmp_path / "ravdess", tmp_path / "downloads")
    assert len(list((tmp_path / "ravdess").rglob("*.flac"))) == 240
    assert (tmp_path / "downloads" / "Audio_Speech_Actors_01-24.zip").exists()


def test_checksums(tmp_path, small_archive):
    p = load_params(write_params(tmp_path, md5=md5(small_archive))).download
    assert verify_archive(small_archive, p) == "original"
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(small_archive.read_bytes()[:100_000])
    with pytest.raises(SerError, match="bad checksum"):
        verify_archive(truncated, p)


def test_real_archive_checksum_is_accepted(params, real_archive):
    assert verify_archive(real_archive, params.download) in ("original", "flac mirror")


def test_truncated_archive_is_one_clear_error(tmp_path, small_archive):
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(small_archive.read_bytes()[: small_archive.stat().st_size // 2])
    with pytest.raises(SerError, match="not a readable zip archive"):
        extract(truncated, tmp_path / "out", [1, 2, 3, 4])
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no half-extracted leftovers


def test_local_archive_via_env(tmp_path, small_archive, monkeypatch):
    params = write_params(tmp_path, md5=md5(small_archive), actors=[2, 3])
    monkeypatch.setenv(corpus.ARCHIVE_ENV, str(small_archive))
    corpus.run(params, tmp_path / "ravdess", tmp_path / "downloads")
    assert sorted(p.name for p in (tmp_path / "ravdess").iterdir()) == ["Actor_02", "Actor_03"]
    monkeypatch.setenv(corpus.ARCHIVE_ENV, str(tmp_path / "missing.zip"))
    with pytest.raises(SerError, match="RAVDESS_ARCHIVE=.*missing.zip: no such file"):
        corpus.run(params, tmp_path / "ravdess2", tmp_path / "downloads")
    monkeypatch.setenv(corpus.ARCHIVE_ENV, str(tmp_path))
    with pytest.raises(SerError, match="RAVDESS_ARCHIVE=.*: is a directory"):
        corpus.run(params, tmp_path / "ravdess2", tmp_path / "downloads")
    monkeypatch.setenv(corpus.ARCHIVE_ENV, "")
    with pytest.raises(SerError, match="RAVDESS_ARCHIVE is set but empty"):
        corpus.run(params, tmp_path / "ravdess2", tmp_path / "downloads")
    assert not (tmp_path / "downloads").exists()  # no fall-back to the network


def test_missing_actor(tmp_path, small_archive):
    with pytest.raises(SerError, match="corpus is missing actor 05"):
        extract(small_archive, tmp_path / "out", [1, 2, 3, 4, 5])
    assert not (tmp_path / "out").exists()


def _rezip(src: Path, dest: Path, drop: str | None = None, add: str | None = None) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for m in zin.infolist():
            if m.filename != drop:
                zout.writestr(m, zin.read(m))
        if add:
            zout.writestr(add, b"hello")
    return dest


def test_unexpected_file(tmp_path, small_archive):
    bad = _rezip(small_archive, tmp_path / "bad.zip", add="Actor_01/notes.txt")
    with pytest.raises(SerError, match="unexpected file in archive: 'Actor_01/notes.txt'"):
        extract(bad, tmp_path / "out", [1, 2, 3, 4])


def test_missing_clip(tmp_path, small_archive):
    bad = _rezip(small_archive, tmp_path / "bad.zip", drop="Actor_03/03-01-05-02-01-02-03.flac")
    with pytest.raises(SerError, match="missing 1 clips of actor 03, e.g. 03-01-05-02-01-02-03"):
        extract(bad, tmp_path / "out", [1, 2, 3, 4])


def test_validate_rejects_stray_actor(corpus_copy):
    with pytest.raises(SerError, match="unexpected actor 04"):
        validate_corpus(corpus_copy, [1, 2, 3])


class Slow:
    """A server that sends its headers, then `first` bytes, then one byte every `every` seconds
    (or nothing more when every is None), for at most `seconds`."""

    def __init__(self, first: int, every: float | None, seconds: float = 10.0):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/x.zip"
        self.first, self.every, self.seconds = first, every, seconds
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        try:
            conn, _ = self.listener.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" + b"x" * self.first)
            t0 = time.monotonic()
            while time.monotonic() - t0 < self.seconds:
                time.sleep(self.every or 0.1)
                if self.every:
                    conn.sendall(b"x")
            conn.close()
        except OSError:
            pass


def test_a_stall_is_given_up_at_the_stall_limit_and_says_what_arrived(tmp_path):
    """A read timeout longer than the stall limit does not stretch it; the bytes that arrived
    before the stall are on disk and in the message."""
    srv = Slow(first=100_000, every=None)
    t0 = time.monotonic()
    with pytest.raises(SerError) as err:
        download(srv.url, tmp_path / "x.zip", "0" * 32, retries=3, timeout=30.0, stall_limit=1.0,
                 backoff=0.1)
    assert time.monotonic() - t0 < 2.5
    assert "after 100.0 kB arrived this run" in str(err.value) and "nothing" not in str(err.value)
    assert (tmp_path / "x.zip.part").stat().st_size == 100_000


def test_a_trickling_server_is_given_up_at_the_total_limit(tmp_path, capsys):
    srv = Slow(first=10, every=0.2)
    t0 = time.monotonic()
    with pytest.raises(SerError, match=r"the download's time limit \(1.5 s\) ran out after \d+ bytes arrived"):
        download(srv.url, tmp_path / "x.zip", "0" * 32, retries=0, timeout=5.0, stall_limit=1.0,
                 total_limit=1.5)
    assert time.monotonic() - t0 < 3
    assert (tmp_path / "x.zip.part").stat().st_size > 10  # every byte written as it came
