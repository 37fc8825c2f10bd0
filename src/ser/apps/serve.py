"""`ser serve`: the trained models on a local web page and a JSON API (Starlette + uvicorn).

    ser serve [--host 127.0.0.1] [--port 8000] [--model FAMILY...] [--protocol ...] [--fold K]

The models are loaded once, at start, as `ser predict` loads them, and every answer comes from
`ser predict`'s own functions (ser.analysis.analyse_audio): no second code path.

- `GET /`: one page (ser/apps/web: plain HTML, JavaScript and CSS, nothing from the internet):
  upload or drop a file, or speak into the microphone (the browser captures and sends PCM; nothing
  records on the server) and watch each family's timeline grow.
- `POST /api/predict` (multipart, one file): exactly the object `ser predict --json` gives for
  that file. Errors are JSON `{"error": "..."}` with 413 (too large or too long), 415 (not
  audio), 422 (unreadable, empty or silent) or 400 (no file).
- `WS /api/live`: a JSON `{"sample_rate": N}`, then binary chunks of 16-bit little-endian mono
  PCM, then the text `stop`. Every `predict.hop_s` of new audio the server sends the new
  segment's answers (`{"segment": ...}`, the segment read alone); at `stop` it sends
  `{"final": ...}`, the whole recording's answer, as `POST /api/predict` gives for the same audio.

Limits are params (`serve`), each enforced as soon as it shows: an upload's whole body (every
part) is counted as it arrives, never read whole into memory, spooled to a temporary file that is
removed, refused past `max_upload_mb`, past `body_timeout_s`, when cut before its closing
boundary, and when its header declares more than `max_seconds` of audio; a recording holds 2
bytes a sample, at most `live_max_rate` and `max_seconds`, at most `live_sessions` at once, and
ends after `live_idle_s` without a message. Only this server's own page may call it (a browser's
Origin must be this host; bound to this machine, it answers only its names). Nothing from a
request reaches a file path. Requests are answered one at a time by the models (a lock), so
concurrent requests cannot disturb each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import socket
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser import analysis, registry
from ser.apps import predict, project_params
from ser.audio import decode, info
from ser.errors import SerError
from ser.params import Params, load_params

log = logging.getLogger("serve")
WEB = Path(__file__).resolve().parent / "web"
PAGES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/app.js": ("app.js", "text/javascript; charset=utf-8"),
         "/capture.js": ("capture.js", "text/javascript; charset=utf-8"),
         "/style.css": ("style.css", "text/css; charset=utf-8")}


class HTTPFault(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Service:
    """What every request uses: the loaded ensembles and the settings, and the models' lock."""
    ens: list
    params: Params
    lock: threading.Lock
    live: int = 0  # live sessions open (counted on the event loop's one thread)

    @functools.cached_property
    def grid(self):
        return analysis.window_grid(self.ens, self.params)

    def analyse_file(self, path: Path, name: str) -> dict:
        """`ser predict --json`'s object for one file (the same call), named as uploaded."""
        with _named(path, name):
            frames, sr = info(path)
            if frames == 0:  # a header without a length (some MP3s): decode to count
                frames = len(decode(path)[0])
            self._check_length(frames / sr, name)
            with self.lock:
                result = analysis.analyse(path, self.ens, self.params.predict, self.grid, name=name)
        return predict.as_json([result], self.ens)

    def check_head(self, path: Path, name: str) -> None:
        """The first bytes of an upload still arriving: 413 at once when its header declares more
        audio than serve.max_seconds (a header this cannot read is judged when the file is whole)."""
        self._check_length(declared_seconds(path), name)

    def _check_length(self, seconds: float, name: str) -> None:
        if seconds > self.params.serve.max_seconds:
            raise HTTPFault(413, f"{name}: {seconds:.0f} s of audio, over serve.max_seconds "
                                 f"({self.params.serve.max_seconds:g} s)")

    def analyse(self, y: np.ndarray, sr: int, name: str) -> dict:
        self._check_length(len(y) / sr, name)
        with self.lock, _named(None, name):
            result = analysis.analyse_audio(y, sr, name, self.ens, self.params.predict, self.grid)
        return predict.as_json([result], self.ens)


_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be \d+\)", re.M)  # libsndfile's log of a short WAV
_RATE = re.compile(r"^\s*Bytes/sec\s*:\s*(\d+)", re.M)


def declared_seconds(path: Path) -> float:
    """How long a file says it is from its header alone, while it is still arriving: a WAV's data
    chunk size over its byte rate (libsndfile counts only the bytes already there), else the
    frames its header declares (FLAC); 0 when it says nothing or cannot be read yet."""
    import soundfile as sf
    try:
        with sf.SoundFile(path) as f:
            log, frames, sr = f.extra_info, f.frames, f.samplerate
    except (sf.LibsndfileError, RuntimeError, EOFError, ValueError, OSError):
        return 0.0
    data, rate = _DATA.search(log), _RATE.search(log)
    if data and rate and int(rate.group(1)) > 0:
        return int(data.group(1)) / int(rate.group(1))
    return frames / sr if 0 < frames < 2**62 and sr > 0 else 0.0


@contextlib.contextmanager
def _named(path: Path | None, name: str):
    """A SerError as an HTTP error naming the upload (never the spooled file's path): 415 when
    the file is no audio at all, else 422."""
    try:
        yield
    except SerError as err:
        msg = str(err) if path is None else str(err).replace(str(path), name)
        raise HTTPFault(415 if "cannot decode" in msg else 422, msg) from None


def safe_name(name: str | None) -> str:
    """The upload's file name for the answer only (never a path): its last part, printable."""
    base = (name or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable())[:200]
    return base or "upload"


class _OneFile:
    """python-multipart's callbacks for a body of one file: its bytes to `out`, counted (413 past
    `limit`), its file name kept; other fields ignored, further files counted."""

    HEAD = 64 * 1024  # bytes of the file after which its header is checked (check_head)

    def __init__(self, out, limit: int, check_head=None):
        self.out, self.limit, self.check_head = out, limit, check_head
        self.field, self.value, self.name = b"", b"", None
        self.files, self.size, self.is_file, self.in_file = 0, 0, False, False
        self.ended = False  # the closing boundary was seen

    def callbacks(self) -> dict:
        return {f"on_{k}": getattr(self, k) for k in (
            "part_begin", "header_field", "header_value", "header_end", "headers_finished",
            "part_data", "end")}

    def end(self):
        self.ended = True

    def part_begin(self):
        self.is_file = False

    def header_field(self, data, start, end):
        self.field += data[start:end]

    def header_value(self, data, start, end):
        self.value += data[start:end]

    def header_end(self):
        from python_multipart.multipart import parse_options_header
        if self.field.lower() == b"content-disposition":
            _, o = parse_options_header(self.value)
            if b"filename" in o:
                self.is_file, self.name = True, o[b"filename"].decode("utf-8", "replace")
        self.field, self.value = b"", b""

    def headers_finished(self):
        self.files += self.is_file
        self.in_file = self.is_file and self.files == 1

    def part_data(self, data, start, end):
        if self.in_file:
            self.size += end - start
            if self.size > self.limit:
                raise HTTPFault(413, f"upload over serve.max_upload_mb ({self.limit / 1e6:g} MB)")
            self.out.write(data[start:end])
            if self.check_head is not None and self.size >= self.HEAD:
                self.out.flush()
                check, self.check_head = self.check_head, None
                check(self.name)


async def spool(request, limit: int, timeout: float = 120.0, check_head=None
                ) -> tuple[Path, str, tempfile.TemporaryDirectory]:
    """The upload's one file, counted as it arrives and written to a temporary folder removed by
    the caller; (path, file name, folder). Refused as soon as it shows: a body over `limit` bytes
    in all (any part: 413), one that takes longer than `timeout` seconds to arrive (408), one cut
    before its closing boundary (400); `check_head(path, name)` runs once on the file's first
    64 kB (the audio's declared length: 413 before the rest arrives)."""
    from python_multipart.multipart import MultipartParser, parse_options_header
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise HTTPFault(413, f"upload of {int(declared) / 1e6:.1f} MB, over serve.max_upload_mb "
                             f"({limit / 1e6:g} MB)")
    ctype, opts = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in opts:
        raise HTTPFault(400, "expected multipart/form-data with one file (field `file`)")
    folder = tempfile.TemporaryDirectory(prefix="ser-upload-")
    target = Path(folder.name) / "audio"  # a fixed name: nothing of the request in a path
    whole = limit + 64 * 1024  # the file, and room for its part's headers and a few small fields
    try:
        with open(target, "wb") as out:
            part = _OneFile(out, limit, check_head and (lambda name: check_head(target, safe_name(name))))
            parser = MultipartParser(opts[b"boundary"], part.callbacks())
            total = 0
            async with asyncio.timeout(timeout):
                async for chunk in request.stream():
                    total += len(chunk)
                    if total > whole:
                        raise HTTPFault(413, f"request body over serve.max_upload_mb ({limit / 1e6:g} MB)")
                    parser.write(chunk)
            parser.finalize()
        if not part.ended:
            raise HTTPFault(400, "incomplete multipart body (no closing boundary): the upload was cut")
        if part.files != 1:
            raise HTTPFault(400, f"expected one file, got {part.files}")
        if part.size == 0:
            raise HTTPFault(422, f"{safe_name(part.name)}: empty file")
    except HTTPFault:
        folder.cleanup()
        raise
    except TimeoutError:
        folder.cleanup()
        raise HTTPFault(408, f"the upload did not arrive within serve.body_timeout_s ({timeout:g} s)"
                        ) from None
    except Exception as err:  # noqa: BLE001 - a malformed body, whatever the parser says
        folder.cleanup()
        raise HTTPFault(400, f"malformed multipart body ({str(err).splitlines()[0]})") from None
    return target, safe_name(part.name), folder


def local_hosts(host: str) -> set[str] | None:
    """The host names a server bound to this machine only answers (the Host header's name: its
    loopback address, e.g. 127.0.0.1 or [::1], or localhost): a page of another site whose name
    was pointed at it (DNS rebinding) sends its own name, and is refused (400). None (any) for
    another address."""
    import ipaddress
    if host == "localhost":
        return {"127.0.0.1", "localhost"}  # listening_socket binds it as IPv4
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if not ip.is_loopback:
        return None
    return {f"[{ip}]" if ip.version == 6 else str(ip), "localhost"}


def create_app(service: Service, hosts: set[str] | None = None):
    """The app; with `hosts`, a request naming another host is refused (400)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route, WebSocketRoute

    async def page(request):
        name, media = PAGES[request.url.path]
        return Response((WEB / name).read_bytes(), media_type=media,
                        headers={"Cache-Control": "no-store"})

    async def api_predict(request):
        sp = service.params.serve
        folder = None
        try:
            if not same_origin(request.headers):
                raise HTTPFault(403, "a page of another site may not use this server")
            path, name, folder = await spool(request, int(sp.max_upload_mb * 1e6), sp.body_timeout_s,
                                             service.check_head)
            return JSONResponse(await run_in_threadpool(service.analyse_file, path, name))
        except HTTPFault as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        finally:
            if folder is not None:
                folder.cleanup()

    async def api_info(request):
        return JSONResponse({"models": {e.name: {"label": e.family.label, "plain": e.family.plain,
                                                 "hint": e.family.hint, "protocol": e.protocol,
                                                 "runs": e.runs, "classes": e.classes,
                                                 "describe": e.describe()} for e in service.ens},
                             "hop_s": service.params.predict.hop_s,
                             "window_s": service.grid.n_samples / service.grid.sample_rate,
                             "offset_s": service.grid.offset_s,
                             "max_seconds": service.params.serve.max_seconds,
                             "colors": registry.EMOTION_COLORS})

    async def live(ws):
        await _live(ws, service)

    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=sorted(hosts))] if hosts else []
    return Starlette(routes=[Route(p, page) for p in PAGES] + [
        Route("/api/predict", api_predict, methods=["POST"]),
        Route("/api/info", api_info),
        WebSocketRoute("/api/live", live)], middleware=middleware)


def same_origin(headers) -> bool:
    """Whether a request comes from this server's own page: a browser names the page's origin,
    which must be this host (another site's page could otherwise use a visitor's local server);
    a request without one (curl, a script) is no page's."""
    from urllib.parse import urlsplit
    origin = headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


async def _live_rate(ws, sp) -> int | None:
    """The live client's first message, {"sample_rate": N}; None (told, closed) when it is not."""
    try:
        config = json.loads(await asyncio.wait_for(ws.receive_text(), sp.live_idle_s))
        sr = int(config["sample_rate"])
        if not 1000 <= sr <= sp.live_max_rate:
            raise ValueError(f"sample_rate {sr} out of 1000-{sp.live_max_rate} (serve.live_max_rate)")
        return sr
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as err:
        await ws.send_json({"error": f"expected {{\"sample_rate\": N}} first ({err})"})
        await ws.close(code=1003)
        return None


async def _live(ws, service: Service) -> None:
    """`WS /api/live`: the rate, then PCM chunks (each complete segment answered as it comes),
    then `stop` (the whole recording's answer); the models run in Starlette's thread pool. Only
    this server's page (same_origin), at most serve.live_sessions at once, each closed after
    serve.live_idle_s without a message; a client that leaves ends its session quietly."""
    from starlette.websockets import WebSocketDisconnect
    sp = service.params.serve
    if not same_origin(ws.headers):
        await ws.close(code=1008)  # before accepting: the browser sees 403
        return
    await ws.accept()
    if service.live >= sp.live_sessions:
        await ws.send_json({"error": f"{sp.live_sessions} recordings are live already "
                                     "(serve.live_sessions): try again when one ends"})
        await ws.close(code=1013)
        return
    service.live += 1
    try:
        await _session(ws, service, sp)
    except TimeoutError:  # before OSError, of which it is one
        with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
            await ws.send_json({"error": f"nothing arrived for {sp.live_idle_s:g} s "
                                         "(serve.live_idle_s): recording closed"})
            await ws.close(code=1001)
    except (WebSocketDisconnect, OSError, RuntimeError):  # uvicorn's ClientDisconnected is an OSError
        log.info("live: the client left")
    finally:
        service.live -= 1


async def _session(ws, service: Service, sp) -> None:
    from starlette.concurrency import run_in_threadpool
    sr = await _live_rate(ws, sp)
    if sr is None:
        return
    session = LiveSession(service, sr)
    while True:
        msg = await asyncio.wait_for(ws.receive(), sp.live_idle_s)
        if msg["type"] == "websocket.disconnect":
            return
        if msg.get("bytes") is not None:
            try:
                session.add(msg["bytes"])
            except HTTPFault as err:
                await ws.send_json({"error": str(err)})
                await ws.close(code=1009)
                return
            for seg in await run_in_threadpool(session.new_segments):
                await ws.send_json({"segment": seg})
        elif msg.get("text") == "stop":
            try:
                await ws.send_json({"final": await run_in_threadpool(session.final)})
            except HTTPFault as err:
                await ws.send_json({"error": str(err)})
            await ws.close()
            return


class LiveSession:
    """One microphone recording: the audio so far, and which segments have been answered."""

    def __init__(self, service: Service, sr: int):
        self.service, self.sr = service, sr
        self.chunks: list[np.ndarray] = []
        self.n = 0
        self.sent = 0  # segments answered so far

    def add(self, data: bytes) -> None:
        pcm = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")  # kept as sent: 2 bytes a sample
        self.chunks.append(pcm)
        self.n += len(pcm)
        if self.n / self.sr > self.service.params.serve.max_seconds:
            raise HTTPFault(413, f"recording over serve.max_seconds ({self.service.params.serve.max_seconds:g} s)")

    def audio(self, start: int = 0, end: int | None = None) -> np.ndarray:
        """Samples [start, end) so far, float32."""
        if len(self.chunks) > 1:
            self.chunks = [np.concatenate(self.chunks)]
        pcm = self.chunks[0] if self.chunks else np.zeros(0, dtype="<i2")
        return pcm[start:end].astype(np.float32) / 32768

    def new_segments(self) -> list[dict]:
        """The segments whose window is now complete, each read alone (with the offset before
        it, which the models skip), timed as recorded."""
        grid, pp = self.service.grid, self.service.params.predict
        window, offset, hop = grid.n_samples / grid.sample_rate, grid.offset_s, pp.hop_s
        out = []
        while offset + self.sent * hop + window <= self.n / self.sr:
            start = self.sent * hop
            piece = self.audio(round(start * self.sr), round((start + offset + window) * self.sr))
            self.sent += 1
            if np.abs(piece).max() < 1e-3:
                out.append({"start_s": round(start + offset, 3), "end_s": round(start + offset + window, 3),
                            "short": False, "silent": True,
                            **{e.name: None for e in self.service.ens}})
                continue
            try:
                doc = self.service.analyse(piece, self.sr, "live")
            except HTTPFault:
                continue
            seg = doc["files"][0]["segments"][0]
            seg["start_s"] = round(seg["start_s"] + start, 3)
            seg["end_s"] = round(seg["end_s"] + start, 3)
            out.append(seg)
        return out

    def final(self) -> dict:
        y = self.audio()
        if len(y) == 0:
            raise HTTPFault(422, "no audio was received")
        return self.service.analyse(y, self.sr, "recording.wav")


def load_service(which: list[str] | None, protocol: str, fold: int | None, params_path: Path,
                 models: Path | None) -> Service:
    params = load_params(params_path)
    if models is None:
        models, where = analysis.default_models(project_params().parent)
        log.info("%s", where)
    ens = analysis.load_ensembles(models, predict.families_of(which, params),
                                 protocol, params, fold)
    return Service(ens, params, threading.Lock())


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound at once: a port already in use is one line before any model
    loads (they take seconds), not a traceback after."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise SerError(f"cannot serve on {host}:{port}: {err.strerror or err} (another server on "
                       "that port? choose another with --port)") from None
    return sock


def run(*, host: str | None = None, port: int | None = None, which: list[str] | None = None,
        protocol: str = "auto", fold: int | None = None, params_path: Path | None = None,
        models: Path | None = None) -> None:
    """Bind the port, load the models (refusing to start without them), serve until Ctrl-C."""
    import uvicorn
    params_path = params_path or project_params()
    sp = load_params(params_path).serve
    host, port = host or sp.host, port if port is not None else sp.port
    sock = listening_socket(host, port)
    try:
        service = load_service(which, protocol, fold, params_path, models)
    except BaseException:
        sock.close()
        raise
    for e in service.ens:
        log.info("%s: %s", e.family.label, e.describe())
    hosts = local_hosts(host)
    if hosts is None:
        log.warning("bound to %s, not 127.0.0.1: anyone who can reach this machine on port %d can "
                    "send it audio", host, port)
    log.info("serving on http://%s:%d/ (Ctrl-C stops)", f"[{host}]" if ":" in host else host, port)
    config = uvicorn.Config(create_app(service, hosts), host=host, port=port,
                            log_level="warning", ws_max_size=1 << 20)
    try:
        asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    log.info("stopped")
