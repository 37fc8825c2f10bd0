"""Decoding audio: the one place that reads clips, so a bad file is always the same clear error."""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
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
        # libsndfile names the file object it was given ("Error opening <_io.BufferedReader
        # name=...>: "): the path is said already, the reason is what follows
        reason = re.sub(r"^Error opening <[^>]*>: ", "", str(err).splitlines()[0])
        raise SerError(f"{path}: cannot decode audio ({reason})") from None
    if y.size == 0 or not np.isfinite(y).all():
        raise _unusable(path)
    return y


@contextlib.contextmanager
def _opened(path: str | Path) -> Iterator[sf.SoundFile]:
    """The file open for reading (through a file object: names that are not valid UTF-8 open
    too); libsndfile's and the system's errors as one line naming it."""
    _exists(path)
    try:
        with open(path, "rb") as fh, sf.SoundFile(fh) as f:
            yield f
    except (sf.LibsndfileError, RuntimeError, EOFError, ValueError) as err:
        # libsndfile names the file object it was given ("Error opening <_io.BufferedReader
        # name=...>: "): the path is said already, the reason is what follows
        reason = re.sub(r"^Error opening <[^>]*>: ", "", str(err).splitlines()[0])
        raise SerError(f"{path}: cannot decode audio ({reason})") from None
    except OSError as err:
        raise SerError(f"{path}: cannot read ({err.strerror or err})") from None


def _check_complete(path: str | Path, n: int, declared: int, header: str) -> None:
    """Refuse a file of which nothing, or less than its header declares, decoded."""
    if n == 0:
        raise _unusable(path)
    if 0 < declared < 2**62 and n < declared:  # MP3s may declare no length
        raise SerError(f"{path}: truncated ({n} of {declared} samples decode)")
    # a cut WAV: libsndfile reads what is there, and its log says the data chunk is short
    short = _SHORT_DATA.search(header)
    if short:
        raise SerError(f"{path}: truncated ({short.group(2)} of the {short.group(1)} bytes of "
                       "audio its header declares)")


def _unusable(path: str | Path) -> SerError:
    return SerError(f"{path}: no usable samples (empty, truncated or corrupt)")


def silent_error(path: str | Path) -> SerError:
    """The error for a file that is silent once downmixed."""
    return SerError(f"{path}: silent (peak below -60 dBFS once downmixed to mono): nothing to "
                    "recognise")


def _read(path: str | Path) -> tuple[np.ndarray, int]:
    """The whole file, (frames, channels) float32, checked: decodable, not empty, not truncated."""
    with _opened(path) as f:
        declared, header = f.frames, f.extra_info
        y = f.read(dtype="float32", always_2d=True)
        sr = f.samplerate
    if not np.isfinite(y).all():
        raise _unusable(path)
    _check_complete(path, y.shape[0], declared, header)
    return y, int(sr)


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """The whole file once, mono float32 at its own rate (WAV, FLAC, OGG, MP3: what libsndfile
    reads), for callers that need it at several rates: `at_rate` then gives exactly what `load`
    gives (the same offset rounding, downmix and resampler). A file silent once downmixed (what
    the models read: phase-inverted stereo is silent) is an error."""
    y, sr = _read(path)
    y = y[:, 0] if y.shape[1] == 1 else librosa.to_mono(y.T)
    if np.abs(y).max() < SILENCE:
        raise silent_error(path)
    return y, sr


def at_rate(y: np.ndarray, sr: int, target: int, offset: float = 0.0) -> np.ndarray:
    """Decoded samples from `offset` seconds on, resampled to `target` as `load` does."""
    y = y[int(offset * sr):]
    return y if target == sr else librosa.resample(y, orig_sr=sr, target_sr=target, res_type="soxr_hq")


def probe(path: str | Path) -> tuple[float, int]:
    """Decode the whole file once (so a truncated one fails here) and return (seconds, rate)."""
    y, sr = _read(path)
    return y.shape[0] / sr, sr


def info(path: str | Path) -> tuple[int, int]:
    """(frames the header declares, rate) without decoding; frames is 0 when the header gives
    none (some MP3s)."""
    with _opened(path) as f:
        return (f.frames if 0 < f.frames < 2**62 else 0), int(f.samplerate)


def _mono(block: np.ndarray) -> np.ndarray:
    """(frames, channels) -> mono, as decode downmixes (per sample, so blockwise is the same)."""
    return block[:, 0] if block.shape[1] == 1 else librosa.to_mono(block.T)


def blocks(path: str | Path, frames: int) -> Iterator[np.ndarray]:
    """The file as mono float32 blocks of `frames` samples (the last shorter), read in bounded
    memory, with decode's checks: decodable, finite, not truncated (the error comes once the
    whole file is read). Concatenated, the blocks are exactly decode's samples."""
    n = 0
    with _opened(path) as f:
        declared, header = f.frames, f.extra_info
        for b in f.blocks(blocksize=frames, dtype="float32", always_2d=True):
            if not np.isfinite(b).all():
                raise _unusable(path)
            n += b.shape[0]
            yield _mono(b)
    _check_complete(path, n, declared, header)


class Resampler:
    """`at_rate` in a stream: feed the signal's blocks at `sr` in order (the last with
    last=True), get blocks at `target` that, concatenated, are exactly at_rate(signal, sr,
    target) of the samples after the first `skip` (libsoxr's stream gives its one-shot result bit
    for bit; the length is librosa's, ceil(n * target / sr), cut or zero-padded at the end)."""

    def __init__(self, sr: int, target: int, skip: int = 0):
        import soxr
        self.stream = None if sr == target else soxr.ResampleStream(sr, target, 1, dtype="float32",
                                                                    quality="HQ")
        self.ratio = float(target) / sr
        self.skip = skip   # input samples still to drop
        self.n_in = 0      # input samples fed after the skipped ones
        self.done = 0      # output samples given so far

    def feed(self, y: np.ndarray, last: bool = False) -> np.ndarray:
        if self.skip:
            cut = min(self.skip, len(y))
            y, self.skip = y[cut:], self.skip - cut
        self.n_in += len(y)
        out = y if self.stream is None else self.stream.resample_chunk(y, last=last)
        if last and self.stream is not None:
            n_out = int(np.ceil(self.n_in * self.ratio))
            have = self.done + len(out)
            if have > n_out:
                out = out[:len(out) - (have - n_out)]
            elif have < n_out:
                out = np.concatenate([out, np.zeros(n_out - have, np.float32)])
        self.done += len(out)
        return out
