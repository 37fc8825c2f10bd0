"""Arithmetic whose bits do not depend on the host: the same result whichever SIMD paths numpy
dispatches to (AVX-512 or not) and whichever kernel and thread count the BLAS picks.

numpy computes log, log10 and pow with processor-specific code (results differ in the last bit
between an AVX-512 host and another), and a BLAS matrix product sums in an order set by its
kernel and threads. Both reached the reference statistics (tests/test_features.py measures it:
40 of 1344 clips hashed differently with AVX-512 off; the MFCCs differed between one and two
processes). Here every result comes from IEEE-754 additions, multiplications, divisions and
square roots, which are correctly rounded on every processor, applied elementwise in a fixed
order; constant tables (filter banks, DCT bases) are rounded to float32 once, so a last-bit
difference in how a library builds them is rounded away (their hashes are pinned in the test).
"""

from __future__ import annotations

import functools

import librosa
import numpy as np

_LN2 = 0.6931471805599453094  # math.log(2), the float64 nearest to ln 2
_LN10 = 2.302585092994045684  # math.log(10)
_SQRT_HALF = 0.7071067811865476
_TERMS = 12  # of the series below: |s| < 0.1716, so s**25 / 25 < 1e-20 of the result


def log(x: np.ndarray) -> np.ndarray:
    """Natural log of positive finite values, to about 1 ulp: x = m 2**e with m in [sqrt(1/2),
    sqrt(2)), ln m = 2 atanh(s) = 2 (s + s**3/3 + ...) with s = (m - 1) / (m + 1)."""
    x = np.asarray(x, dtype=np.float64)
    m, e = np.frexp(x)  # exact: m in [0.5, 1)
    low = m < _SQRT_HALF
    m = np.where(low, m * 2.0, m)
    e = np.where(low, e - 1, e).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    acc = np.full_like(s, 1.0 / (2 * _TERMS + 1))
    for k in range(_TERMS - 1, -1, -1):  # Horner, highest term first
        acc = acc * s2 + 1.0 / (2 * k + 1)
    return 2.0 * s * acc + e * _LN2


def log10(x: np.ndarray) -> np.ndarray:
    return log(x) / _LN10


def log2(x: np.ndarray) -> np.ndarray:
    return log(x) / _LN2


def project(basis: np.ndarray, x: np.ndarray) -> np.ndarray:
    """basis @ x (basis: (out, k), x: (k, frames)) summed over k in order, elementwise: no BLAS."""
    basis = np.asarray(basis, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros((basis.shape[0], x.shape[1]))
    for k in range(basis.shape[1]):
        col = basis[:, k]
        if col.any():  # mel filters are sparse: most columns touch few bands
            out += col[:, None] * x[k][None, :]
    return out


def power_to_db(power: np.ndarray, amin: float = 1e-10, top_db: float = 80.0) -> np.ndarray:
    """librosa.power_to_db(power) (ref 1.0): 10 log10(max(power, amin)), floored top_db below
    its maximum."""
    db = 10.0 * log10(np.maximum(power, amin))
    return np.maximum(db, db.max() - top_db)


@functools.lru_cache(maxsize=16)
def mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """librosa's mel filter bank (Slaney), as float32 (read-only)."""
    out = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float32)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=16)
def dct_basis(n: int, k: int) -> np.ndarray:
    """The first k rows of the orthonormal DCT-II of length n (scipy's norm='ortho'), float32."""
    j = np.arange(n)
    rows = [np.cos(np.pi * (2 * j + 1) * i / (2 * n)) * np.sqrt((1 if i == 0 else 2) / n)
            for i in range(k)]
    out = np.array(rows).astype(np.float32)
    out.setflags(write=False)
    return out


def moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(skewness, excess kurtosis) of each row, biased as scipy.stats' defaults, from products
    alone (m3 / m2**1.5 as m3 / (m2 sqrt(m2)))."""
    d = x - x.mean(axis=1, keepdims=True)
    d2 = d * d
    m2 = d2.mean(axis=1)
    m3 = (d2 * d).mean(axis=1)
    m4 = (d2 * d2).mean(axis=1)
    return m3 / (m2 * np.sqrt(m2)), m4 / (m2 * m2) - 3.0
