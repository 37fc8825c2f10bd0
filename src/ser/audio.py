"""Decoding audio: the one place that reads clips, so a bad file is always the same clear error."""

from __future__ import annotations

import warnings
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from ser.errors import SerError


def load(path: str | Path, sr: int | None, offset: float = 0.0) -> np.ndarray:
    """Mono float32 samples at `sr` (None: the file's own rate), from `offset` seconds on."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, _ = librosa.load(path, sr=sr, mono=True, offset=offset)
    except (sf.LibsndfileError, RuntimeError, EOFError, ValueError) as err:
        raise SerError(f"{path}: cannot decode audio ({str(err).splitlines()[0]})") from None
    if y.size == 0 or not np.isfinite(y).all():
        raise SerError(f"{path}: no usable samples (empty, truncated or corrupt)")
    return y


def probe(path: str | Path) -> tuple[float, int]:
    """Decode the whole file once (so a truncated one fails here) and return (seconds, rate)."""
    try:
        declared = sf.info(path).frames
        y, sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, EOFError, ValueError) as err:
        raise SerError(f"{path}: cannot decode audio ({str(err).splitlines()[0]})") from None
    if y.shape[0] == 0 or not np.isfinite(y).all():
        raise SerError(f"{path}: no usable samples (empty, truncated or corrupt)")
    if y.shape[0] < declared:
        raise SerError(f"{path}: truncated ({y.shape[0]} of {declared} samples decode)")
    return y.shape[0] / sr, int(sr)
