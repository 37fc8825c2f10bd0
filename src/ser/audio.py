"""Decoding audio: the one place that reads clips, so a bad file is always the same clear error."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from ser.errors import SerError


SILENCE = 1e-3  # peak amplitude (-60 dBFS) below which a recording is silent
_SHORT_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.M)


def _exists(path: str | Path) -> None:
    p = Path(path)
    if not p.exists():
        raise SerError(f"{path}: no such file")
    if p.is_dir():
        raise SerError(f"{path}: is a directory, not an audio file")


def load(path: str | Path, sr: int | None, offset: float = 0.0) -> np.ndarray:
    """Mono float32 samples at `sr` (None: the file's own rate), from `offset` seconds on."""
    _exists(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, _ = librosa.load(path, sr=sr, mono=True, offset=offset)
    except (sf.LibsndfileError, RuntimeError, EOFError, ValueError) as err:
        raise SerError(f"{path}: cannot decode audio ({str(err).splitlines()[0]})") from None
    if y.size == 0 or not np.isfinite(y).all():
        raise SerError(f"{path}: no usable samples (empty, truncated or corrupt)")
    return y


def _read(path: str | Path) -> tuple[np.ndarray, int]:
    """The whole file, (frames, channels) float32, checked: decodable, not empty, not truncated."""
    _exists(path)
    try:  # through a file object: names that are not valid UTF-8 open too
        with open(path, "rb") as fh, sf.SoundFile(fh) as f:
            declared, header = f.frames, f.extra_info
            y = f.read(dtype="float32", always_2d=True)
            sr = f.samplerate
    except (sf.LibsndfileError, RuntimeError, EOFError, ValueError) as err:
        raise SerError(f"{path}: cannot decode audio ({str(err).splitlines()[0]})") from None
    except OSError as err:
        raise SerError(f"{path}: cannot read ({err.strerror or err})") from None
    if y.shape[0] == 0 or not np.isfinite(y).all():
        raise SerError(f"{path}: no usable samples (empty, truncated or corrupt)")
    if 0 < declared < 2**62 and y.shape[0] < declared:  # MP3s may declare no length
        raise SerError(f"{path}: truncated ({y.shape[0]} of {declared} samples decode)")
    # a cut WAV: libsndfile reads what is there, and its log says the data chunk is short
    short = _SHORT_DATA.search(header)
    if short:
        raise SerError(f"{path}: truncated ({short.group(2)} of the {short.group(1)} bytes of "
                       "audio its header declares)")
    return y, int(sr)


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """The whole file once, mono float32 at its own rate (WAV, FLAC, OGG, MP3: what libsndfile
    reads), for callers that need it at several rates: `at_rate` then gives exactly what `load`
    gives (the same offset rounding, downmix and resampler). A file silent once downmixed (what
    the models read: phase-inverted stereo is silent) is an error."""
    y, sr = _read(path)
    y = y[:, 0] if y.shape[1] == 1 else librosa.to_mono(y.T)
    if np.abs(y).max() < SILENCE:
        raise SerError(f"{path}: silent (peak below -60 dBFS once downmixed to mono): nothing to "
                       "recognise")
    return y, sr


def at_rate(y: np.ndarray, sr: int, target: int, offset: float = 0.0) -> np.ndarray:
    """Decoded samples from `offset` seconds on, resampled to `target` as `load` does."""
    y = y[int(offset * sr):]
    return y if target == sr else librosa.resample(y, orig_sr=sr, target_sr=target, res_type="soxr_hq")


def probe(path: str | Path) -> tuple[float, int]:
    """Decode the whole file once (so a truncated one fails here) and return (seconds, rate)."""
    y, sr = _read(path)
    return y.shape[0] / sr, sr
