"""Feature family `egemaps`: the eGeMAPS v02 parameter set (Eyben et al., 2016, IEEE Trans.
Affective Computing 7(2)), 88 functionals per recording computed by openSMILE (the `opensmile`
package, which ships the extractor), from any audio at `sample_rate`. Used by the
features_egemaps stage and by prediction alike.

openSMILE is free for research and education, not for commercial use (its licence: README).
"""

from __future__ import annotations

import functools

import numpy as np

from ser.params import FeaturesEgemaps

FAMILY = "egemaps"
PARAMS = FeaturesEgemaps  # its params section: features_egemaps


@functools.lru_cache(maxsize=4)
def _smile(feature_set: str, level: str):
    import opensmile
    return opensmile.Smile(feature_set=opensmile.FeatureSet[feature_set],
                           feature_level=opensmile.FeatureLevel[level])


def columns(p: FeaturesEgemaps) -> list[str]:
    return list(_smile(p.feature_set, "Functionals").feature_names)


def from_samples(y: np.ndarray, sr: int, p: FeaturesEgemaps) -> np.ndarray:
    """The functionals of one waveform (samples at `sr`, which should be p.sample_rate)."""
    df = _smile(p.feature_set, "Functionals").process_signal(np.asarray(y, dtype=np.float32), sr)
    return df.to_numpy(dtype=np.float64)[0]
