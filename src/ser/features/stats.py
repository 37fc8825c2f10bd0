"""Feature family `stats`: global statistics of frame-level acoustic features (the reference SVM's
input), from any audio. Used by the features@stats stage and by prediction alike.

The reference's 20 short-term features (pyAudioAnalysis' set: zero-crossing rate, energy,
entropy of energy, spectral centroid, spread, entropy, flux, roll-off and 12 MFCCs) on 25 ms
frames every 10 ms, each summarised over the clip by 10 statistics: 200 named columns per clip.
The STFT is computed once per clip and shared by every spectral feature. Logarithms, the mel and
DCT projections and the moments come from ser.features.fixed, so that a clip gives the same bits
on every host (AVX-512 or not, any BLAS, any number of processes).
"""

from __future__ import annotations

import librosa
import numpy as np

from ser.features import fixed
from ser.features.level import condition
from ser.params import FeaturesStats

FAMILY = "stats"
PARAMS = FeaturesStats  # its params section: features_stats
STATS = ("mean", "std", "median", "kurtosis", "skew", "p01", "p99", "min", "max", "range")
_EPS = np.finfo(float).eps


def feature_names(p: FeaturesStats) -> list[str]:
    return ["zcr", "energy", "energy_entropy", "spectral_centroid", "spectral_spread",
            "spectral_entropy", "spectral_flux", "spectral_rolloff",
            *(f"mfcc_{i:02d}" for i in range(1, p.n_mfcc + 1))]


def columns(p: FeaturesStats) -> list[str]:
    return [f"{f}_{s}" for f in feature_names(p) for s in STATS]


def _entropy(energy: np.ndarray, blocks: int) -> np.ndarray:
    """Entropy (bits) of how energy spreads over `blocks` equal sub-blocks of axis 0, per column."""
    n = energy.shape[0] // blocks * blocks
    e = energy[:n].reshape(blocks, -1, energy.shape[1]).sum(axis=1)
    prob = e / (e.sum(axis=0, keepdims=True) + _EPS)
    return -(prob * fixed.log2(prob + _EPS)).sum(axis=0)


def frame_features(y: np.ndarray, sr: int, p: FeaturesStats) -> np.ndarray:
    """(features, frames): the 20 frame-level features of one waveform."""
    frame, hop = round(p.frame_s * sr), round(p.hop_s * sr)
    if len(y) < frame:
        y = np.pad(y, (0, frame - len(y)))
    y = y.astype(np.float64)
    frames = librosa.util.frame(y, frame_length=frame, hop_length=hop)
    mag = np.abs(librosa.stft(y, n_fft=frame, hop_length=hop, window="hamming", center=False))
    power = mag ** 2
    freqs = librosa.fft_frequencies(sr=sr, n_fft=frame)
    centroid = librosa.feature.spectral_centroid(S=mag, freq=freqs)
    spread = librosa.feature.spectral_bandwidth(S=mag, freq=freqs, centroid=centroid, p=2)
    unit = mag / (mag.sum(axis=0, keepdims=True) + _EPS)
    flux = ((unit[:, 1:] - unit[:, :-1]) ** 2).sum(axis=0)
    flux = np.concatenate([flux[:1], flux]) if flux.size else np.zeros(1)  # frame 0: as frame 1
    mel = fixed.project(fixed.mel_basis(sr, frame, p.n_mels), power)
    mfcc = fixed.project(fixed.dct_basis(p.n_mels, p.n_mfcc + 1), fixed.power_to_db(mel))[1:]  # no c0
    return np.vstack([
        librosa.feature.zero_crossing_rate(y, frame_length=frame, hop_length=hop, center=False),
        (frames ** 2).mean(axis=0),
        _entropy(frames ** 2, p.entropy_blocks),
        centroid,
        spread,
        _entropy(power, p.entropy_blocks),
        flux,
        librosa.feature.spectral_rolloff(S=mag, sr=sr, freq=freqs, roll_percent=p.rolloff),
        mfcc,
    ])


def summarise(feats: np.ndarray) -> np.ndarray:
    """(features, frames) -> (features, 10 statistics), in STATS' order."""
    lo, med, hi = np.percentile(feats, [1, 50, 99], axis=1)
    mn, mx, std = feats.min(axis=1), feats.max(axis=1), feats.std(axis=1)
    flat = std <= 1e-12 * np.maximum(np.abs(feats).max(axis=1), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        skew, kurt = fixed.moments(feats)
    skew, kurt = np.where(flat, 0.0, skew), np.where(flat, 0.0, kurt)
    return np.stack([feats.mean(axis=1), std, med, kurt, skew, lo, hi, mn, mx, mx - mn], axis=1)


def clip_stats(y: np.ndarray, sr: int, p: FeaturesStats) -> np.ndarray:
    """The SVM's 200 inputs for one waveform, trimmed, at the level and over the floor p asks for
    (ser.features.level): used by the stage and by prediction."""
    y = condition(y, sr, p.level_dbfs, p.floor_db, trim_db=p.trim_db)
    return summarise(frame_features(y, sr, p)).ravel()


from_samples = clip_stats  # the name every table family gives it (stage features, ser.analysis)
