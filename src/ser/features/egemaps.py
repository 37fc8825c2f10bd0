"""Feature family `egemaps`: the eGeMAPS v02 parameter set (Eyben et al., 2016, IEEE Trans.
Affective Computing 7(2)), 88 functionals per recording computed by openSMILE (the `opensmile`
package, which ships the extractor), from any audio at `sample_rate`. Used by the
features@egemaps stage and by prediction alike.

openSMILE is free for research and education, not for commercial use (its licence: README).
"""

from __future__ import annotations

import threading

import numpy as np

from ser.features.level import condition
from ser.params import FeaturesEgemaps

FAMILY = "egemaps"
PARAMS = FeaturesEgemaps  # its params section: features_egemaps


_LOCAL = threading.local()  # an extractor runs one signal at a time: one per thread


def _smile(feature_set: str, level: str):
    cache = _LOCAL.__dict__.setdefault("smiles", {})
    if (feature_set, level) not in cache:
        import opensmile
        _known_distribution()
        cache[feature_set, level] = opensmile.Smile(feature_set=opensmile.FeatureSet[feature_set],
                                                    feature_level=opensmile.FeatureLevel[level])
    return cache[feature_set, level]


def _known_distribution() -> None:
    """Smile() names its class through audobject, which looks the module `opensmile` up among
    every installed distribution's metadata (importlib.metadata.packages_distributions: 0.2 s of
    a cold `ser predict`) unless its cache holds the answer: the distribution `opensmile`
    (tests/test_features.py checks that this is the scan's answer)."""
    from audobject.core import utils
    utils.PACKAGES_DISTRIBUTIONS.setdefault("opensmile", ["opensmile"])


def columns(p: FeaturesEgemaps) -> list[str]:
    return list(_smile(p.feature_set, "Functionals").feature_names)


def from_samples(y: np.ndarray, sr: int, p: FeaturesEgemaps) -> np.ndarray:
    """The functionals of one waveform (samples at `sr`, which should be p.sample_rate), trimmed,
    at the level and over the floor p asks for (ser.features.level). openSMILE reads 16-bit
    integers: samples beyond full scale are clipped to it (cast, they would wrap around)."""
    y = condition(y, sr, p.level_dbfs, p.floor_db, trim_db=p.trim_db)
    y = np.clip(y, -1.0, 32767 / 32768)
    df = _smile(p.feature_set, "Functionals").process_signal(y.astype(np.float32), sr)
    return df.to_numpy(dtype=np.float64)[0]
