"""`ser serve` latency in a real browser (Debian's Chromium driven by Playwright):

    .venv/bin/python benchmarks/bench_serve.py [--models models | --generated] [--chromium /usr/bin/chromium]

- upload: from the end of the upload of a 10 s recording (44.1 kHz WAV) to the answers on the
  page (the page's own clock: request sent to table drawn), median of 5 (the target: 1 s);
- live: a fake microphone plays a generated recording; for each segment, the time from the end
  of its window (as the recording's clock says) to its answers on the page (the target: 1 s).

Needs what `make setup` installs (Playwright's Python package) and a Chromium. Runs the server
in a thread on 127.0.0.1, as `ser serve` does, on the models in --models (default: the committed
models/), or with --generated on model files of the reference's sizes (bench_predict.write_models:
speed does not depend on what the weights learned).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bench_predict import models_or_generated  # noqa: E402
from generated import running_server, voice  # noqa: E402  (the tests' too; no pytest)
from ser.apps.serve import load_service  # noqa: E402
from ser.params import PARAMS_FILE  # noqa: E402


def main() -> None:
    from playwright.sync_api import sync_playwright
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--models", type=Path, default=None)
    which.add_argument("--generated", action="store_true", help="models of the real sizes, generated")
    ap.add_argument("--chromium", default=shutil.which("chromium"))
    ap.add_argument("--seconds", type=float, default=16.0, help="length of the live recording")
    a = ap.parse_args()
    if not a.chromium:
        sys.exit("bench_serve: no Chromium found: install it (Debian: apt-get install chromium) "
                 "or pass --chromium PATH")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        models = models_or_generated(None, tmp, a.params) if a.generated else a.models
        service = load_service(None, "auto", None, a.params, models)
        with running_server(service) as url:
            sf.write(tmp / "talk.wav", voice(10.0, 44100), 44100, subtype="PCM_16")
            sf.write(tmp / "mic.wav", voice(a.seconds + 4, 48000), 48000, subtype="PCM_16")
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=a.chromium, args=[
                    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-audio-capture={tmp / 'mic.wav'}"])
                page = b.new_page()
                page.goto(url)
                page.wait_for_function("() => document.getElementById('models').textContent.length > 20")
                times = []
                for _ in range(5):
                    page.evaluate("window.serState.shownMs = null")
                    page.set_input_files("#file", [])
                    page.set_input_files("#file", str(tmp / "talk.wav"))
                    page.wait_for_function("() => window.serState.shownMs !== null", timeout=60000)
                    times.append(page.evaluate("window.serState.shownMs"))
                print(f"upload of a 10 s recording to answers on the page: median {statistics.median(times):.0f} ms "
                      f"(all: {', '.join(f'{t:.0f}' for t in times)} ms; target 1000 ms)")
                page.click("#record")
                page.wait_for_timeout(int(a.seconds * 1000))
                page.click("#stop")
                page.wait_for_function("() => window.serState.final !== null", timeout=60000)
                segs = page.evaluate("window.serState.segments")
                shown = page.evaluate("window.serState.segmentTimes")
                lat = [t / 1000 - s["end_s"] for s, t in zip(segs, shown)]
                print(f"live: {len(segs)} segments in {a.seconds:g} s; answers on the page after the "
                      f"segment's end: median {1000 * statistics.median(lat):.0f} ms, max "
                      f"{1000 * max(lat):.0f} ms (target 1000 ms)")
                b.close()


if __name__ == "__main__":
    main()
