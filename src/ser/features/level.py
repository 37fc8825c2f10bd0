"""Recording level and digital silence, for the table families: the same speech at another level,
or with its runs of exact zeros replaced by one LSB of noise, should give the same features.

RAVDESS speech sits near -39 dBFS rms and its clips are 38% exact zeros (the median of a fold's
test clips); a microphone gives neither. Measured through `ser predict` on the 224 test clips of
fold actor-0 (benchmarks/bench_robustness.py), the reference statistics and eGeMAPS, unlike the
CNN-LSTM's z-scored input, follow the level (+20 dB changed 124 and 198 answers) and the zeros
(+-1 LSB of noise changed 74 and 20). `condition` scales a recording to a fixed level of its
active frames and adds a fixed noise floor below it, so neither reaches the features. And it can
cut the silence before and after the sound: how much of a file is silence depends on how it was
cut (RAVDESS's clips are about 38% silence, TESS's words almost none), and the low percentiles of
frame statistics measure exactly that (benchmarks/README.md).
"""

from __future__ import annotations

import librosa
import numpy as np

FRAME_S, HOP_S = 0.025, 0.010  # the frames whose rms measures the level
ACTIVE_DB = 40.0               # frames within this of the loudest one are the active ones
SEED = 0                       # of the floor's noise: the same samples for every recording


def _frames(sr: int) -> tuple[int, int]:
    """FRAME_S and HOP_S in samples at `sr`."""
    return max(1, round(FRAME_S * sr)), max(1, round(HOP_S * sr))


def active_rms(y: np.ndarray, sr: int) -> float:
    """The rms of a recording's active frames (within ACTIVE_DB of the loudest); 0 for silence."""
    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0:
        return 0.0
    frame, hop = _frames(sr)
    n = 1 + max(0, len(y) - frame) // hop
    energy = np.array([np.mean(y[i * hop:i * hop + frame] ** 2) for i in range(n)])
    if energy.max() <= 0:
        return 0.0
    return float(np.sqrt(energy[energy >= energy.max() * 10 ** (-ACTIVE_DB / 10)].mean()))


def trim(y: np.ndarray, sr: int, top_db: float | None) -> np.ndarray:
    """The recording from its first to its last frame within `top_db` of the loudest one
    (librosa.effects.trim on FRAME_S frames every HOP_S); as it is for None or digital silence."""
    y = np.asarray(y, dtype=np.float64)
    if top_db is None or len(y) == 0 or not np.any(y):
        return y
    frame, hop = _frames(sr)
    _, (start, end) = librosa.effects.trim(y, top_db=top_db, frame_length=frame, hop_length=hop)
    return y[start:end]


def condition(y: np.ndarray, sr: int, level_dbfs: float | None, floor_db: float | None, *,
              trim_db: float | None = None) -> np.ndarray:
    """The recording cut to its sound (`trim`: leading and trailing frames more than `trim_db`
    below the loudest dropped; None: kept), scaled so that its active frames' rms is `level_dbfs`
    (None: as it is), plus white noise `floor_db` below that level (None: none), drawn from a
    fixed seed. float64."""
    y = trim(y, sr, trim_db)
    if level_dbfs is None or len(y) == 0:
        level, out = None, y
    else:
        level, rms = 10 ** (level_dbfs / 20), active_rms(y, sr)
        out = y * (level / rms) if rms > 0 else y  # digital silence: nothing to scale
    if floor_db is not None:
        ref = level if level is not None else 1.0
        noise = np.random.default_rng(SEED).standard_normal(len(out))
        out = out + noise * (ref * 10 ** (-floor_db / 20))
    return out


def describe(level_dbfs: float | None, floor_db: float | None, trim_db: float | None) -> str:
    """What `condition` does to a recording with these params, in words (for the report)."""
    steps = []
    if trim_db is not None:
        steps.append(f"cut to its sound (leading and trailing frames more than {trim_db:g} dB "
                     "below the loudest dropped)")
    if level_dbfs is not None:
        steps.append(f"scaled to {level_dbfs:g} dBFS rms over its active frames")
    if floor_db is not None:
        below = "that level" if level_dbfs is not None else "full scale"
        steps.append(f"given white noise {floor_db:g} dB below {below}")
    return ", ".join(steps) if steps else "as it is"

