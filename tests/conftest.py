"""Shared fixtures: small archives and corpora cut from the FLAC mirror in ../shared."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
MIRROR = ROOT.parent / "shared" / "data" / "ravdess-speech-flac.zip"


def mirror() -> Path:
    if not MIRROR.is_file():
        pytest.fail(f"the FLAC mirror is missing: {MIRROR} (see README, 'Tests')")
    return MIRROR


def cut_archive(dest: Path, actors: list[int]) -> Path:
    """A zip with only these actors' clips, same layout as the mirror."""
    want = {f"Actor_{a:02d}/" for a in actors}
    with zipfile.ZipFile(mirror()) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as out:
        for m in src.infolist():
            if any(m.filename.startswith(w) for w in want) and not m.is_dir():
                out.writestr(m.filename, src.read(m))
    return dest


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory) -> Path:
    """Actors 1-4 (2 men, 2 women): 240 clips."""
    return cut_archive(tmp_path_factory.mktemp("archive") / "small.zip", [1, 2, 3, 4])


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory, small_archive) -> Path:
    """The small archive extracted and validated by the download stage's own code."""
    from ser.corpus import extract
    out = tmp_path_factory.mktemp("corpus") / "ravdess"
    extract(small_archive, out, [1, 2, 3, 4])
    return out


@pytest.fixture
def corpus_copy(tmp_path, small_corpus) -> Path:
    """A writable copy of the small corpus, for tests that damage it."""
    dst = tmp_path / "ravdess"
    shutil.copytree(small_corpus, dst)
    return dst


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
