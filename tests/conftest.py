"""Shared fixtures: a generated RAVDESS-shaped archive (the suite needs no corpus), and the real
corpus for the tests that need it, when it is there.

The generated archive has the real naming scheme and layout (Actor_NN/03-01-EE-II-SS-RR-NN),
every clip of each actor, and short synthetic voiced signals whose pitch, loudness and rhythm
depend on the emotion and the speaker, so that the models have something to learn. It comes in
FLAC (as the mirror) and WAV (as the original).

Tests marked `real_corpus` use the RAVDESS speech archive: $RAVDESS_ARCHIVE, else the FLAC mirror
at ../shared/data/ravdess-speech-flac.zip. Without it they are skipped, and the summary says how
to enable them; with SER_REQUIRE_CORPUS=1 (CI) a missing corpus fails them instead.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from generated import SECONDS, SR, running_server, synthetic_clip, voice  # noqa: F401 - the tests' too
from ser.cpu import MALLOC_ENV
from ser.labels import expected_stems

ROOT = Path(__file__).resolve().parents[1]
MIRROR = ROOT.parent / "shared" / "data" / "ravdess-speech-flac.zip"
SMALL_ACTORS = [1, 2, 3, 4]
E2E_RUNS = ["random-0", "random-1", "actor-0", "actor-1", "actor-2", "actor-3"]


TESS_EMOTIONS = ["angry", "disgust", "fear", "happy", "neutral", "ps", "sad"]
TESS_TO_RAVDESS = {"neutral": "02", "happy": "03", "sad": "04", "angry": "05", "fear": "06",
                   "disgust": "07", "ps": "08"}  # emotion codes, for the synthetic voice


def make_tess_archive(dest: Path, words=("bar", "dog"), sr: int = 24414) -> Path:
    """A zip laid out as TESS (TESS/<speaker>_<emotion>/<speaker>_<word>_<emotion>.wav): two
    speakers, seven emotions, a few words, short synthetic clips (1.4 s, as TESS's are short)."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as out:
        for k, speaker in enumerate(("OAF", "YAF")):
            for emotion in TESS_EMOTIONS:
                for w, word in enumerate(words):
                    stem = f"03-01-{TESS_TO_RAVDESS[emotion]}-01-01-0{w + 1}-{20 + 2 * k:02d}"
                    buf = io.BytesIO()
                    sf.write(buf, synthetic_clip(stem, sr, 1.4), sr, format="WAV", subtype="PCM_16")
                    folder = f"{speaker}_{emotion.capitalize() if k == 0 else emotion}"
                    out.writestr(f"TESS/{folder}/{speaker}_{word}_{emotion}.wav", buf.getvalue())
    return dest


def make_archive(dest: Path, actors: list[int], fmt: str = "flac") -> Path:
    """A zip laid out as RAVDESS (Actor_NN/<stem>.<fmt>), every clip of these actors."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as out:
        for a in actors:
            for stem in sorted(expected_stems(a)):
                buf = io.BytesIO()
                sf.write(buf, synthetic_clip(stem), SR, format=fmt.upper(), subtype="PCM_16")
                out.writestr(f"Actor_{a:02d}/{stem}.{fmt}", buf.getvalue())
    return dest


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory) -> Path:
    """Generated actors 1-4 (2 men, 2 women): 240 FLAC clips."""
    return make_archive(tmp_path_factory.mktemp("archive") / "small.zip", SMALL_ACTORS)


@pytest.fixture(scope="session")
def small_wav_archive(tmp_path_factory) -> Path:
    """The same clips as WAV, as in the original archive."""
    return make_archive(tmp_path_factory.mktemp("archive_wav") / "small.zip", SMALL_ACTORS, "wav")


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory, small_archive) -> Path:
    """The small archive extracted and validated by the download stage's own code."""
    from ser.stages.download import extract
    out = tmp_path_factory.mktemp("corpus") / "ravdess"
    extract(small_archive, out, SMALL_ACTORS)
    return out


@pytest.fixture
def corpus_copy(tmp_path, small_corpus) -> Path:
    """A writable copy of the small corpus, for tests that damage it."""
    dst = tmp_path / "ravdess"
    shutil.copytree(small_corpus, dst)
    return dst


def real_archive_path() -> Path | None:
    env = os.environ.get("RAVDESS_ARCHIVE")
    path = Path(env) if env else MIRROR
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def real_archive() -> Path:
    """The RAVDESS speech archive (original or FLAC mirror), or a skip saying how to get one."""
    path = real_archive_path()
    if path is None:
        msg = (f"needs the RAVDESS corpus: set RAVDESS_ARCHIVE=/path/to/archive.zip or put the FLAC "
               f"mirror at {MIRROR}")
        if os.environ.get("SER_REQUIRE_CORPUS") == "1":
            pytest.fail(msg + " (SER_REQUIRE_CORPUS=1)")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def real_small_corpus(tmp_path_factory, real_archive) -> Path:
    """Real actors 1-4 extracted from the real archive."""
    from ser.stages.download import extract
    out = tmp_path_factory.mktemp("real") / "ravdess"
    extract(real_archive, out, SMALL_ACTORS)
    return out


@pytest.fixture
def params():
    from ser.params import load_params
    return load_params(ROOT / "params.yaml")


def tone(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: Path, y: np.ndarray, sr: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr)
    return path


def section(name: str, **changes):
    """One section of the repository's params.yaml, with some values changed (no defaults exist)."""
    import yaml
    from ser.params import Params
    data = yaml.safe_load((ROOT / "params.yaml").read_text())[name]
    return Params.model_fields[name].annotation(**{**data, **changes})


def stub_cnn(grid, classes=("neutral", "sad")):
    """A CNN-LSTM ensemble without a model: every segment 0.9 the first class (no training)."""
    import numpy as np
    from ser import registry
    from ser.analysis import Ensemble

    def proba(x):
        return np.tile([0.9, 0.1], (len(x), 1))
    return Ensemble(registry.get("cnn_lstm"), "actor", ["actor-0"], list(classes), grid.saved(),
                    None, [proba])


def stub_svm(params):
    """A table family whose whole-recording row says neutral and every segment sad: the page
    must say why the whole answer is none of the segments'."""
    from ser import registry
    from ser.analysis import Ensemble
    from ser.features import stats

    def proba(x):
        out = np.tile([0.2, 0.8], (len(x), 1))
        out[0] = [0.7, 0.3]
        return out
    return Ensemble(registry.get("svm_stats"), "actor", ["actor-0"], ["neutral", "sad"],
                    params.features_stats.saved(), stats.columns(params.features_stats), [proba])


@pytest.fixture(scope="module")
def server(service):
    """`ser serve` on the test module's own `service` fixture, in a real uvicorn server on a free
    port of 127.0.0.1 (running_server): its URL."""
    with running_server(service) as url:
        yield url


def page_ready(page, url: str) -> None:
    """Open `ser serve`'s page and wait until it has named the models it listens with."""
    page.goto(url)
    page.wait_for_function("() => document.getElementById('models').textContent.includes('Neural network')")


def answered(page, timeout: int = 30000) -> None:
    """Wait until the page shows a final answer and is no longer busy."""
    page.wait_for_function("() => window.serState.final !== null && !document.body.classList.contains('busy')",
                           timeout=timeout)


def browser_of(fake_mic: Path):
    """Debian's Chromium driven by Playwright, its fake microphone playing `fake_mic` (a WAV), for
    a fixture to yield from. Without Chromium the test skips and says how to enable it; with
    SER_REQUIRE_BROWSER=1 (CI) it fails instead."""
    path = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if path is None:
        msg = "needs Chromium for the browser tests: apt-get install chromium"
        if os.environ.get("SER_REQUIRE_BROWSER") == "1":
            pytest.fail(msg + " (SER_REQUIRE_BROWSER=1)")
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=[
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={fake_mic}", "--autoplay-policy=no-user-gesture-required"])
        yield b
        b.close()


# ---------------------------------------------------------------- the tiny pipeline

def sh(*args, cwd, env, ok=True):
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, f"{' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout + r.stderr if ok else r


def make_repo(d: Path, archive: Path) -> dict:
    for name in ("src", "bin", "dvc.yaml", "params.yaml", "pyproject.toml", ".dvc/config",
                 ".dvcignore", ".gitignore"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, d / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, d / name)
    p = yaml.safe_load((d / "params.yaml").read_text())
    p["download"].update(md5=hashlib.md5(archive.read_bytes()).hexdigest(), actors=[1, 2, 3, 4])
    p["features_logmel"].update(augment_copies=1)
    p["folds"].update(runs=E2E_RUNS, actor_fold_size=1)
    # one process: starting workers takes longer than this grid (test_svm: same model either way)
    p["train_svm"].update(C=[1, 10], gamma=[0.005, 0.01], cv_folds=2)
    p["runtime"].update(n_jobs=1)
    p["train_cnn_lstm"].update(filters=[4, 4, 8, 8], lstm_units=16, epochs=3,
                               bn_recalibration_batches=2)
    p["report"].update(bootstrap=200)
    tess = make_tess_archive(d.parent / f"{d.name}-tess.zip")
    p["corpora"]["tess"].update(sha256=hashlib.sha256(tess.read_bytes()).hexdigest())
    (d / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    env = dict(os.environ, RAVDESS_ARCHIVE=str(archive), TESS_ARCHIVE=str(tess), DVC_NO_ANALYTICS="1",
               PYTHONPATH=str(d / "src"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    # Set as ser.cpu's restart sets it, so a trainer imports torch once, not twice (3-4 s each);
    # test_cli_errors runs the restart itself.
    env.update(MALLOC_ENV)
    sh("git", "init", "-q", cwd=d, env=env)
    sh("git", "config", "user.email", "e2e@localhost", cwd=d, env=env)  # dvc exp commits too
    sh("git", "config", "user.name", "e2e", cwd=d, env=env)
    sh("git", "add", "-A", cwd=d, env=env)
    sh("git", "commit", "-qm", "init", cwd=d, env=env)
    return env


@pytest.fixture(scope="session")
def repo(tmp_path_factory, small_archive):
    """The real `dvc repro` of the e2e tests' tiny settings in a temporary repository: its
    models serve test_e2e, test_serve and the browser tests."""
    d = tmp_path_factory.mktemp("repo")
    env = make_repo(d, small_archive)
    log = sh("dvc", "repro", cwd=d, env=env)
    sh("git", "add", "-A", cwd=d, env=env)
    sh("git", "commit", "-qm", "results", cwd=d, env=env)
    return d, env, log
