"""`ser serve` on the tiny pipeline's models: the JSON API with Starlette's test client (every
error status, the same object as `ser predict --json`, concurrency, the live WebSocket), and the
page in a real browser (Debian's Chromium driven by Playwright): upload, and a fake microphone
fed from a WAV file.

Without Chromium the browser tests skip and say how to enable them; with SER_REQUIRE_BROWSER=1
(CI) they fail instead."""

import base64
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from conftest import answered, browser_of, page_ready, synthetic_clip

pytestmark = pytest.mark.e2e


def recording(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A voiced recording: generated RAVDESS-like clips one after another."""
    stems = ["03-01-05-02-01-01-02", "03-01-03-01-02-01-01", "03-01-04-02-01-02-04",
             "03-01-06-01-01-01-03"]
    parts, n = [], 0
    k = seed
    while n < seconds * sr:
        clip = synthetic_clip(stems[k % len(stems)], sr, 1.6) / 32768
        parts.append(clip)
        n += len(clip)
        k += 1
    return np.concatenate(parts)[: int(seconds * sr)].astype(np.float32)


def wav_bytes(y: np.ndarray, sr: int, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


@pytest.fixture(scope="module")
def service(repo):
    from ser.apps.serve import load_service
    d = repo[0]
    return load_service(None, "auto", None, d / "params.yaml", d / "models")


@pytest.fixture(scope="module")
def client(service):
    from starlette.testclient import TestClient
    from ser.apps.serve import create_app
    with TestClient(create_app(service)) as c:
        yield c


def post(client, name: str, data: bytes, field: str = "file"):
    return client.post("/api/predict", files={field: (name, data, "application/octet-stream")})


def test_the_api_answers_what_ser_predict_json_gives(client, repo, tmp_path, monkeypatch):
    from ser.apps import predict
    d = repo[0]
    data = wav_bytes(recording(10.0, 22050), 22050)
    (tmp_path / "talk.wav").write_bytes(data)
    r = post(client, "talk.wav", data)
    assert r.status_code == 200, r.text
    monkeypatch.chdir(tmp_path)
    code = predict.run([Path("talk.wav")], json_out=str(tmp_path / "out.json"),
                       params_path=d / "params.yaml", models=d / "models")
    assert code == 0
    assert r.json() == json.loads((tmp_path / "out.json").read_text())
    assert list(r.json()["models"]) == yaml.safe_load((d / "params.yaml").read_text())["predict"]["families"]


@pytest.mark.parametrize("make,status,message", [
    (lambda: ("notes.wav", b"not audio at all, just text"), 415, "cannot decode audio"),
    (lambda: ("empty.wav", b""), 422, "empty file"),
    (lambda: ("silence.wav", wav_bytes(np.zeros(16000 * 3, np.float32), 16000)), 422, "silent"),
    (lambda: ("cut.wav", wav_bytes(recording(3.0), 16000)[:20000]), 422, "truncated"),
])
def test_api_errors_are_json_with_a_status_and_one_line(client, make, status, message):
    name, data = make()
    r = post(client, name, data)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert message in err and "\n" not in err and "/tmp" not in err  # no server path shown


def test_a_request_without_a_file_is_400(client):
    body = b'--b\r\nContent-Disposition: form-data; name="note"\r\n\r\nx\r\n--b--\r\n'
    r = client.post("/api/predict", content=body,
                    headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 400 and "expected one file, got 0" in r.json()["error"]
    r = client.post("/api/predict", content=b"raw bytes")
    assert r.status_code == 400 and "multipart/form-data" in r.json()["error"]


def test_limits_are_enforced_before_the_whole_body_is_read(service, client):
    from ser.apps.serve import HTTPFault, spool
    sp = service.params.serve
    big = b"0" * int(sp.max_upload_mb * 1e6 + 200_000)
    r = post(client, "big.wav", big)
    assert r.status_code == 413 and "serve.max_upload_mb" in r.json()["error"]

    class Stream:  # a client that says nothing of its length: counted as it arrives
        headers = {"content-type": "multipart/form-data; boundary=xyz"}
        read = 0

        async def stream(self):
            yield b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n"
            for _ in range(10_000):
                self.read += 1 << 16
                yield b"0" * (1 << 16)
    import asyncio
    s = Stream()
    with pytest.raises(HTTPFault, match="over serve.max_upload_mb"):
        asyncio.run(spool(s, int(sp.max_upload_mb * 1e6)))
    assert s.read < sp.max_upload_mb * 1e6 + (1 << 17)  # stopped as soon as the limit passed
    long = wav_bytes(recording(sp.max_seconds + 5, 8000), 8000)
    r = post(client, "long.wav", long)
    assert r.status_code == 413 and "serve.max_seconds" in r.json()["error"]


def test_uploads_leave_no_file_behind(client, tmp_path, monkeypatch):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    post(client, "talk.wav", wav_bytes(recording(4.0), 16000))
    post(client, "bad.wav", b"junk")
    assert list(tmp_path.iterdir()) == []


def test_concurrent_requests_give_the_sequential_answers(client):
    files = [(f"r{k}.wav", wav_bytes(recording(4.0 + k, 16000, seed=k), 16000)) for k in range(4)]
    sequential = [post(client, n, b).json() for n, b in files]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda f: post(client, *f).json(), files))
    assert together == sequential


def test_live_segments_then_the_final_answer(client):
    y = recording(11.0, 16000)
    pcm = (np.clip(y, -1, 1) * 32767).astype("<i2")
    with client.websocket_connect("/api/live") as ws:
        ws.send_text(json.dumps({"sample_rate": 16000}))
        segments = []
        for i in range(0, len(pcm), 4000):  # a quarter of a second at a time
            ws.send_bytes(pcm[i:i + 4000].tobytes())
        ws.send_text("stop")
        while True:
            msg = ws.receive_json()
            if "segment" in msg:
                segments.append(msg["segment"])
            else:
                break
    assert "final" in msg, msg
    assert [s["start_s"] for s in segments] == [0.5, 3.5, 6.5]  # every full window, as it filled
    assert all(set(s) >= {"svm_stats_conditioned", "svm_egemaps_conditioned", "cnn_lstm"} for s in segments)
    upload = post(client, "recording.wav", wav_bytes(pcm.astype(np.float32) / 32768, 16000)).json()
    assert msg["final"] == upload  # the same audio: the same answer as an upload


def test_a_live_client_that_says_no_rate_is_told(client):
    with client.websocket_connect("/api/live") as ws:
        ws.send_text("hello")
        assert "sample_rate" in ws.receive_json()["error"]


def test_ser_serve_binds_its_port_loads_the_models_and_answers(repo):
    """The command as a user runs it: `ser serve` on a free port answers /api/info with the
    default families, and stops on SIGINT (Ctrl-C)."""
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    d, env, _ = repo
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "ser.apps.cli", "serve", "--port", str(port)],
                            cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, info = time.time() + 90, None
        while info is None and time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=2) as r:
                    info = json.loads(r.read())
            except OSError:
                time.sleep(0.3)
        assert info is not None, proc.stderr.read() if proc.poll() is not None else "no answer"
        assert list(info["models"]) == yaml.safe_load((d / "params.yaml").read_text())["predict"]["families"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in err and "Traceback" not in err


def test_without_models_the_server_does_not_start(tmp_path):
    from ser.apps.serve import load_service
    from ser.errors import SerError
    root = Path(__file__).resolve().parents[1]
    with pytest.raises(SerError, match=r"no trained svm_stats_conditioned models \(SVM \(conditioned\)\) .* run `dvc repro` \(its train_svm@"):
        load_service(None, "auto", None, root / "params.yaml", tmp_path / "none")


# ---------------------------------------------------------------- in a real browser

@pytest.fixture(scope="module")
def fake_mic(tmp_path_factory):
    """What the fake microphone plays: 12 s of generated speech, 48 kHz 16-bit WAV."""
    path = tmp_path_factory.mktemp("mic") / "mic.wav"
    sf.write(path, recording(12.0, 48000), 48000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def browser(fake_mic):
    yield from browser_of(fake_mic)


def page_answers(page) -> dict:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.family')]
        .map(d => [d.dataset.family, d.querySelector('.whole .top')?.textContent]))""")


def test_upload_in_the_browser_shows_the_apis_answers(browser, server, client, tmp_path):
    data = wav_bytes(recording(10.0, 44100), 44100)
    (tmp_path / "talk.wav").write_bytes(data)
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    page_ready(page, server)
    page.set_input_files("#file", str(tmp_path / "talk.wav"))
    answered(page)
    api = post(client, "talk.wav", data).json()
    want = {name: e["top"] for name, e in api["files"][0]["whole"].items()}
    assert page_answers(page) == want
    n_segments = len(api["files"][0]["segments"])
    assert page.locator(".details-family[data-family=cnn_lstm] tr.segment").count() == n_segments
    assert page.locator("#timelines .strip g.seg").count() == 3 * n_segments  # per family
    shot = os.environ.get("SER_SCREENSHOT")
    if shot:
        page.screenshot(path=shot, full_page=True)
    phone = browser.new_page(viewport={"width": 390, "height": 844})  # readable on a phone
    page_ready(phone, server)
    phone.set_input_files("#file", str(tmp_path / "talk.wav"))
    answered(phone)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    page.close()
    phone.close()


def test_recording_from_the_microphone_grows_live_and_ends_with_the_apis_answer(browser, server, client):
    """The fake microphone plays a WAV; segments appear while recording; at Stop the page's answer
    is the API's answer for the audio the browser captured (the same samples: equal). How soon
    each segment comes is measured, not asserted: benchmarks/bench_serve.py."""
    page = browser.new_page()
    page_ready(page, server)
    page.click("#record")
    page.wait_for_function("() => window.serState.segments.length >= 1", timeout=30000)
    during = page.evaluate("window.serState.segments.length")
    assert during >= 1 and page.locator("#stop").is_enabled()  # still recording
    page.wait_for_function("() => window.serState.segments.length >= 2", timeout=30000)
    page.click("#stop")
    answered(page)
    final = page.evaluate("window.serState.final")
    wav = base64.b64decode(page.evaluate("""async () => {
        const b = new Uint8Array(await window.serState.recordedWav.arrayBuffer());
        let s = ''; for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
        return btoa(s); }"""))
    api = post(client, "recording.wav", wav).json()
    assert final == api
    assert page_answers(page) == {n: e["top"] for n, e in api["files"][0]["whole"].items()}
    page.close()
