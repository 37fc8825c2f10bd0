"""What the tests and the benchmarks both generate and run, without pytest (benchmarks run after
`make setup`, which installs no test tools): RAVDESS-like synthetic speech, and `ser serve`'s app
in a real server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import numpy as np

from ser.labels import parse_name

SR = 48000
SECONDS = 1.6


def synthetic_clip(stem: str, sr: int = SR, seconds: float = SECONDS) -> np.ndarray:
    """A voiced, syllable-like 16-bit signal: pitch, loudness and rhythm set by emotion and speaker."""
    info = parse_name(stem)
    code = int(stem.split("-")[2])
    rng = np.random.default_rng([int(x) for x in stem.split("-")])
    t = np.arange(int(sr * seconds)) / sr
    f0 = (120 if info.gender == "male" else 210) + 18 * code + 3 * info.actor
    f0 = f0 * (1 + 0.04 * np.sin(2 * np.pi * (0.7 + 0.1 * code) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(k * phase) / k ** (1.0 + 0.1 * code) for k in range(1, 7))
    syllables = 0.5 * (1 + np.sin(2 * np.pi * (2.5 + 0.4 * code) * t - np.pi / 2))
    loud = 0.08 * (1 + 0.25 * code) * (1.3 if info.intensity == "strong" else 1.0)
    y = loud * syllables * voice + 0.003 * rng.standard_normal(len(t))
    return np.round(np.clip(y, -0.99, 0.99) * 32767).astype(np.int16)  # 16-bit, as RAVDESS


def voice(seconds: float, sr: int) -> np.ndarray:
    """A generated voice of `seconds` (float32): three emotions' synthetic clips in turn."""
    stems = ["03-01-05-02-01-01-02", "03-01-03-01-02-01-01", "03-01-04-02-01-02-04"]
    parts = [synthetic_clip(stems[k % 3], sr, 1.6) / 32768 for k in range(int(seconds / 1.6) + 1)]
    return np.concatenate(parts)[: int(seconds * sr)].astype(np.float32)


@contextlib.contextmanager
def running_server(service, start_s: float = 20.0):
    """`ser serve`'s app in a real uvicorn server on a free port of 127.0.0.1, in a thread: its
    URL (for the browser tests and benchmarks/bench_serve.py)."""
    import uvicorn
    from ser.apps.serve import create_app
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    srv = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port,
                                        log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.time() + start_s
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    if not srv.started:
        raise RuntimeError(f"uvicorn did not start within {start_s:g} s")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        t.join(10)
