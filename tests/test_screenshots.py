"""The README's pictures of `ser serve`'s page, desktop and phone, made in a real browser
(Debian's Chromium driven by Playwright, as tests/test_page.py):

    SER_SCREENSHOTS=docs .venv/bin/python -m pytest tests/test_screenshots.py

With SER_SCREENSHOTS: the committed models (params.yaml predict.families, their actor
ensembles; the test fails in one line while one is incomplete) answer TESS clips, a corpus they
never saw (../shared/data or TESS_ARCHIVE), and the pictures go into that folder. Without it:
the stub models of test_page.py answer a generated voice into a temporary folder, so that what
makes the pictures runs on every test run."""

import io
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, answered, browser_of, page_ready, stub_cnn, stub_svm, voice
from ser.params import load_params

TESS = Path(os.environ.get("TESS_ARCHIVE", ROOT.parent / "shared" / "data" / "tess-flac-160words.zip"))
CLIPS = [f"TESS/YAF_{folder}/YAF_dog_{name}.flac" for folder, name in (
    ("angry", "angry"), ("happy", "happy"), ("sad", "sad"), ("neutral", "neutral"), ("fear", "fear"))]
SIZES = {"page-desktop": {"width": 1280, "height": 1120}, "page-phone": {"width": 390, "height": 844}}
REAL = bool(os.environ.get("SER_SCREENSHOTS"))


def tess_recording(path: Path) -> None:
    """One speaker's "Say the word dog" in five emotions, one after another, at 24.4 kHz."""
    if not TESS.is_file():
        pytest.fail(f"SER_SCREENSHOTS needs the TESS archive at {TESS} (or TESS_ARCHIVE=...)")
    parts, rates = [], set()
    with zipfile.ZipFile(TESS) as z:
        for name in CLIPS:
            y, sr = sf.read(io.BytesIO(z.read(name)), dtype="float32")
            parts.append(y)
            rates.add(sr)
    sf.write(path, np.concatenate(parts), rates.pop(), subtype="PCM_16")


@pytest.fixture(scope="module")
def service():
    from ser.apps.serve import Service, load_service
    if REAL:
        return load_service(None, "actor", None, ROOT / "params.yaml", None)
    params = load_params(ROOT / "params.yaml")
    return Service([stub_svm(params), stub_cnn(params.features_logmel)], params, threading.Lock())


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("shots") / "recording.wav"
    if REAL:
        tess_recording(path)
    else:
        sf.write(path, voice(10.0, 44100), 44100, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def browser(recording):
    yield from browser_of(recording)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = Path(os.environ["SER_SCREENSHOTS"]) if REAL else tmp_path_factory.mktemp("pictures")
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.mark.parametrize("name", list(SIZES))
def test_the_readmes_pictures_of_the_page(browser, server, recording, folder, name):
    """The page as a visitor first sees it after an upload: the answer, then the strips."""
    page = browser.new_page(viewport=SIZES[name])
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page_ready(page, server)
    page.set_input_files("#file", str(recording))
    answered(page, timeout=60000)
    out = folder / f"{name}.png"
    page.screenshot(path=str(out))
    page.close()
    assert errors == []
    head = out.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")) == \
        (SIZES[name]["width"], SIZES[name]["height"])
