"""Feature family `logmel`: log-mel spectrograms cut into rolling windows (the CNN-LSTM's input),
from any audio. Used by the features@logmel stage (a clip and its noisy copies) and by
prediction (a recording of any length, in segments) alike.

As the reference: 16 kHz from 0.5 s, z-scored, padded or cut to 49,100 samples, STFT 512 with a
256-sample Hamming window and hop 128, 128 mels up to 4 kHz, dB relative to the maximum, windows
of 128 frames every 64.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import librosa
import numpy as np

from ser.audio import load
from ser.params import FeaturesLogmel

FAMILY = "logmel"


def zscore(y: np.ndarray) -> np.ndarray:
    std = y.std()
    return (y - y.mean()) / (std if std > 0 else 1.0)


def fit_window(y: np.ndarray, p: FeaturesLogmel) -> np.ndarray:
    """Zero-pad or cut to n_samples (the reference's fixed length)."""
    out = np.zeros(p.n_samples, dtype=np.float64)
    n = min(len(y), p.n_samples)
    out[:n] = y[:n]
    return out


def prepare_signal(y: np.ndarray, p: FeaturesLogmel) -> np.ndarray:
    """Z-score the clip, then zero-pad or cut it to n_samples."""
    return fit_window(zscore(y), p)


def add_noise(y: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise at `snr_db` relative to the signal's mean power (as the reference does)."""
    noise = rng.standard_normal(len(y))
    k = np.sqrt(np.mean(y ** 2) / np.mean(noise ** 2) * 10.0 ** (-snr_db / 10.0))
    return y + k * noise


def logmel(y: np.ndarray, p: FeaturesLogmel) -> np.ndarray:
    """(n_mels, frames) power log-mel in dB relative to the clip's maximum."""
    power = np.abs(librosa.stft(y, n_fft=p.n_fft, hop_length=p.hop_length,
                                win_length=p.win_length, window=p.window)) ** 2
    mel = librosa.feature.melspectrogram(S=power, sr=p.sample_rate, n_mels=p.n_mels, fmax=p.fmax)
    return librosa.power_to_db(mel, ref=np.max)


def windows(image: np.ndarray, size: int, step: int) -> np.ndarray:
    """(n_mels, frames) -> (n_windows, n_mels, size): rolling windows along time."""
    n = 1 + (image.shape[1] - size) // step
    return np.stack([image[:, t * step:t * step + size] for t in range(n)])


def logmel_windows(y: np.ndarray, p: FeaturesLogmel) -> np.ndarray:
    """The CNN-LSTM's input for one prepared waveform: used by the stage and by prediction."""
    return windows(logmel(y, p), p.win_size, p.win_step)


def recording_windows(y: np.ndarray, p: FeaturesLogmel, hop: int) -> list[tuple[int, int, np.ndarray]]:
    """A recording of any length (samples at p.sample_rate from p.offset_s) as the CNN-LSTM sees
    it: z-scored as a whole, as the stage does a clip, then cut into segments of n_samples every
    `hop` samples, each fitted to the window and turned into log-mel windows in p.dtype.

    Returns (start, end, windows) per segment, start and end in samples of `y`. For a clip no
    longer than the window the one segment is exactly the stage's features of that clip.
    """
    z = zscore(y)
    return [(s, e, logmel_windows(fit_window(z[s:e], p), p).astype(p.dtype))
            for s, e in segment_bounds(len(z), p, hop)]


def segment_bounds(length: int, p: FeaturesLogmel, hop: int) -> list[tuple[int, int]]:
    """(start, end) of each segment of a recording of `length` samples: full windows of
    n_samples every `hop`, and, for a tail they leave out, one more full window ending with the
    recording. Only a recording shorter than the window has a shorter (zero-padded) segment."""
    starts = list(range(0, max(length - p.n_samples, 0) + 1, hop))
    if starts[-1] + p.n_samples < length:
        starts.append(length - p.n_samples)
    return [(s, min(s + p.n_samples, length)) for s in starts]


def clip_rng(seed: int, clip_id: str) -> np.random.Generator:
    """A generator per clip, so augmentation does not depend on n_jobs or the clip order."""
    return np.random.default_rng([seed, zlib.crc32(clip_id.encode())])


def clip_features(path: Path, clip_id: str, copies: int, p: FeaturesLogmel) -> np.ndarray:
    """(1 + copies, n_windows, n_mels, win_size): the clip, then its noisy copies."""
    y = prepare_signal(load(path, p.sample_rate, p.offset_s), p)
    out = [logmel_windows(y, p)]
    rng = clip_rng(p.seed, clip_id)
    for _ in range(copies):
        snr = rng.integers(p.snr_db_min, p.snr_db_max + 1)
        out.append(logmel_windows(add_noise(y, float(snr), rng), p))
    return np.stack(out).astype(p.dtype)
