"""`ser serve`'s bounds, on a stub model (no training): who may use the server (its own page
only), how many recordings at once, how long one may sit idle, how fast a sample rate, and how
much and how long an upload may send, each refused as soon as it shows (issue 43, items 7-8)."""

import asyncio
import io
import json
import logging
import threading

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, running_server, section, stub_cnn, tone
from ser.params import load_params


def make_service(**serve):
    from ser.apps.serve import Service
    params = load_params(ROOT / "params.yaml")
    params = params.model_copy(update={"serve": section("serve", **serve)})
    return Service([stub_cnn(params.features_logmel)], params, threading.Lock())


def client_of(service):
    from starlette.testclient import TestClient
    from ser.apps.serve import create_app
    return TestClient(create_app(service))


def wav(seconds: float, sr: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(220, sr, seconds), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# ---------------------------------------------------------------- the live socket (item 7)

def test_a_page_of_another_site_may_not_use_the_server():
    """Any Origin was accepted: a page on another site could use a visitor's local server."""
    from starlette.websockets import WebSocketDisconnect
    with client_of(make_service()) as c:
        with pytest.raises(WebSocketDisconnect) as err:
            with c.websocket_connect("/api/live", headers={"origin": "https://evil.example"}):
                pass
        assert err.value.code == 1008
        r = c.post("/api/predict", files={"file": ("a.wav", wav(3.0))},
                   headers={"origin": "https://evil.example"})
        assert r.status_code == 403 and "another site" in r.json()["error"]
        with c.websocket_connect("/api/live", headers={"origin": "http://testserver"}) as ws:
            ws.send_text(json.dumps({"sample_rate": 16000}))  # its own page: served
            ws.send_text("stop")
            assert ws.receive_json() == {"error": "no audio was received"}


def test_recordings_at_once_are_limited_and_a_slot_frees_when_one_ends():
    with client_of(make_service(live_sessions=1)) as c:
        with c.websocket_connect("/api/live") as first:
            first.send_text(json.dumps({"sample_rate": 16000}))
            with c.websocket_connect("/api/live") as second:
                msg = second.receive_json()
                assert "1 recordings are live already (serve.live_sessions)" in msg["error"]
            first.send_text("stop")
            first.receive_json()
        with c.websocket_connect("/api/live") as third:
            third.send_text(json.dumps({"sample_rate": 16000}))
            third.send_text("stop")
            assert third.receive_json() == {"error": "no audio was received"}


def test_an_idle_recording_is_closed():
    """There was no idle timeout. (A real server: the test client's receive cannot be cut.)"""
    from websockets.sync.client import connect
    service = make_service(live_idle_s=0.3)
    with running_server(service) as url:
        with connect(url.replace("http", "ws") + "/api/live") as ws:
            ws.send(json.dumps({"sample_rate": 16000}))
            msg = json.loads(ws.recv(timeout=10))
            assert "nothing arrived for 0.3 s (serve.live_idle_s): recording closed" in msg["error"]
        with connect(url.replace("http", "ws") + "/api/live") as ws:  # saying nothing at all, too
            assert "nothing arrived" in json.loads(ws.recv(timeout=10))["error"]
    assert service.live == 0


def test_a_sample_rate_over_the_limit_is_refused():
    """A 384 kHz session grew the server by about 1.7 GB before the 600 s cut."""
    with client_of(make_service()) as c:
        with c.websocket_connect("/api/live") as ws:
            ws.send_text(json.dumps({"sample_rate": 384000}))
            assert "out of 1000-96000 (serve.live_max_rate)" in ws.receive_json()["error"]


def test_a_live_session_holds_two_bytes_a_sample():
    from ser.apps.serve import LiveSession
    session = LiveSession(make_service(), 16000)
    pcm = (tone(220, 16000, 10.0) * 32767).astype("<i2")
    for i in range(0, len(pcm), 4000):
        session.add(pcm[i:i + 4000].tobytes())
    assert sum(c.nbytes for c in session.chunks) == 2 * len(pcm)
    np.testing.assert_array_equal(session.audio(), pcm.astype(np.float32) / 32768)


def test_a_client_that_leaves_mid_recording_ends_it_quietly(caplog):
    """A client that dropped mid-session logged an "Exception in ASGI application" traceback."""
    from websockets.sync.client import connect
    service = make_service()
    pcm = (tone(220, 16000, 8.0) * 32767).astype("<i2").tobytes()
    with caplog.at_level(logging.INFO), running_server(service) as url:
        for _ in range(3):
            with connect(url.replace("http", "ws") + "/api/live") as ws:
                ws.send(json.dumps({"sample_rate": 16000}))
                ws.send(pcm)  # two segments to answer: the answers find the client gone
                ws.socket.shutdown(2)  # dropped, no closing handshake
        for _ in range(100):
            if service.live == 0 and "live: the client left" in caplog.text:
                break
            threading.Event().wait(0.05)
    assert "Exception in ASGI application" not in caplog.text and "Traceback" not in caplog.text
    assert service.live == 0


# ---------------------------------------------------------------- uploads (item 8)

class Body:
    """A client streaming a multipart body without saying its length: what it sent is counted."""
    headers = {"content-type": "multipart/form-data; boundary=xyz"}

    def __init__(self, *parts: bytes, repeat: bytes = b"", times: int = 0, pause: float = 0.0):
        self.parts, self.repeat, self.times, self.pause, self.sent = parts, repeat, times, pause, 0

    async def stream(self):
        for p in self.parts:
            self.sent += len(p)
            yield p
        for _ in range(self.times):
            await asyncio.sleep(self.pause)
            self.sent += len(self.repeat)
            yield self.repeat


FILE = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
FIELD = b'--xyz\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
LIMIT = 2_000_000


def spooled(body, **kw):
    from ser.apps.serve import spool
    return asyncio.run(spool(body, LIMIT, **kw))


@pytest.mark.parametrize("body", [
    Body(FILE, b"RIFF", b"\r\n" + FIELD, repeat=b"0" * (1 << 16), times=1000),  # a huge field
    Body(FILE, b"RIFF", b"\r\n" + FILE, repeat=b"0" * (1 << 16), times=1000),   # a second file
])
def test_every_part_counts_against_the_limit(body):
    """Over chunked transfer a 300 MB non-file field or a second file was read whole."""
    from ser.apps.serve import HTTPFault
    with pytest.raises(HTTPFault, match=r"request body over serve.max_upload_mb \(2 MB\)") as err:
        spooled(body)
    assert err.value.status == 413 and body.sent < LIMIT + (1 << 18)


def test_a_body_cut_before_its_closing_boundary_is_refused():
    """An unterminated multipart body was answered 200 on the cut audio."""
    from ser.apps.serve import HTTPFault
    with pytest.raises(HTTPFault, match=r"incomplete multipart body \(no closing boundary\)") as err:
        spooled(Body(FILE, wav(3.0)[:30000]))
    assert err.value.status == 400
    path, name, folder = spooled(Body(FILE, wav(3.0), b"\r\n--xyz--\r\n"))
    try:
        assert name == "a.wav" and path.read_bytes() == wav(3.0)
    finally:
        folder.cleanup()


def test_a_trickle_is_cut_at_the_body_timeout():
    """A 1-byte-per-second trickle had no body timeout."""
    from ser.apps.serve import HTTPFault
    body = Body(FILE, repeat=b"0", times=10_000, pause=0.01)
    with pytest.raises(HTTPFault, match=r"did not arrive within serve.body_timeout_s \(0.3 s\)") as err:
        spooled(body, timeout=0.3)
    assert err.value.status == 408 and body.sent < len(FILE) + 100


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_audio_too_long_is_refused_from_its_header_as_it_arrives(fmt):
    """An 11-minute WAV was refused (413) only after its whole body had arrived."""
    from ser.apps.serve import HTTPFault, spool
    service = make_service(max_seconds=600.0)
    buf = io.BytesIO()
    sf.write(buf, np.tile(tone(220, 8000, 1.0), 660), 8000, format=fmt, subtype="PCM_16")
    data = buf.getvalue()
    chunks = [data[i:i + 8192] for i in range(0, len(data), 8192)]
    body = Body(FILE, *chunks, b"\r\n--xyz--\r\n")
    with pytest.raises(HTTPFault, match=r"a.wav: 660 s of audio, over serve.max_seconds \(600 s\)") as err:
        asyncio.run(spool(body, 50_000_000, check_head=service.check_head))
    assert err.value.status == 413 and body.sent < 100_000 < len(data)
    with client_of(service) as c:  # and through the API
        r = c.post("/api/predict", files={"file": ("long.wav", data)})
        assert r.status_code == 413 and "over serve.max_seconds" in r.json()["error"]


def test_a_local_server_answers_only_its_own_names():
    """A page of another site whose name points at 127.0.0.1 (DNS rebinding) sends an Origin that
    matches its Host: only the names of this machine are answered."""
    from starlette.testclient import TestClient
    from ser.apps.serve import create_app, local_hosts
    app = create_app(make_service(), local_hosts("127.0.0.1"))
    for base, status in (("http://127.0.0.1:8000", 200), ("http://localhost:8000", 200),
                         ("http://rebound.example:8000", 400)):
        with TestClient(app, base_url=base) as c:
            assert c.get("/api/info", headers={"origin": base}).status_code == status, base
    assert local_hosts("0.0.0.0") is None  # bound for others: any name (and a warning at start)
    app = create_app(make_service(), local_hosts("::1"))  # IPv6's loopback: once answered any name
    for base, status in (("http://[::1]:8000", 200), ("http://localhost:8000", 200),
                         ("http://rebound.example:8000", 400), ("http://127.0.0.1:8000", 400)):
        with TestClient(app, base_url=base) as c:
            assert c.get("/api/info", headers={"origin": base}).status_code == status, base
    assert local_hosts("127.0.0.2") == {"127.0.0.2", "localhost"} and local_hosts("::") is None
