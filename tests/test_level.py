"""The table families' recording conditioning (ser.features.level): the level of a recording and
its digital zeros stop reaching the features when params ask for it, and change nothing when
they do not (null, the reference's features)."""

import numpy as np
import pytest

from conftest import section, synthetic_clip
from ser.features import egemaps, stats
from ser.features.level import condition

SR = 16000


def clip(seed_stem: str = "03-01-05-02-01-01-02") -> np.ndarray:
    """A synthetic voice with RAVDESS's leading and trailing runs of exact zeros, 16-bit valued."""
    y = synthetic_clip(seed_stem, SR, 3.5).astype(np.float64) / 32768
    y[:int(0.6 * SR)] = 0.0
    y[-int(0.5 * SR):] = 0.0
    return y


def lsb_noise(y: np.ndarray) -> np.ndarray:
    pcm = np.round(y * 32768) + np.random.default_rng(1).integers(-1, 2, len(y))
    return pcm / 32768


def test_each_table_family_as_published_and_conditioned_differ_in_conditioning_alone():
    """params.yaml: features_<family> is the reference's (nothing conditioned) and
    features_<family>_conditioned the same with level, floor and trim (benchmarks/README.md)."""
    keys = {"level_dbfs", "floor_db", "trim_db"}
    for name in ("features_stats", "features_egemaps"):
        pub, cond = section(name), section(f"{name}_conditioned")
        assert (pub.level_dbfs, pub.floor_db, pub.trim_db) == (None, None, None)
        assert (cond.level_dbfs, cond.floor_db, cond.trim_db) == (-30.0, 30.0, 40.0)
        assert pub.model_dump(exclude=keys) == cond.model_dump(exclude=keys)


def test_null_params_leave_the_samples_as_they_are():
    y = clip().astype(np.float32)
    out = condition(y, SR, None, None)
    assert out.dtype == np.float64 and np.array_equal(out, y.astype(np.float64))


def test_the_level_no_longer_reaches_the_statistics():
    y = clip()
    plain = section("features_stats", level_dbfs=None, floor_db=None, trim_db=None)
    robust = section("features_stats", level_dbfs=-30.0, floor_db=50.0)
    for p, moved in ((plain, True), (robust, False)):
        a, b = stats.clip_stats(y, SR, p), stats.clip_stats(y * 0.1, SR, p)
        assert (not np.allclose(a, b, rtol=1e-6)) == moved
    np.testing.assert_allclose(stats.clip_stats(y * 0.1, SR, robust), stats.clip_stats(y, SR, robust),
                               rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("family,section_name", [(stats, "features_stats"), (egemaps, "features_egemaps")])
def test_one_lsb_of_noise_moves_the_features_far_less_over_the_floor(family, section_name):
    """Digital zeros against one LSB of noise: the features' relative change, its 90th percentile
    over them (measured: 1.0 -> 0.013 for the statistics, 0.18 -> 0.009 for eGeMAPS)."""
    y = clip()

    def change(p):
        a, b = family.from_samples(y, SR, p), family.from_samples(lsb_noise(y), SR, p)
        return float(np.percentile(np.abs(a - b) / (np.abs(a) + np.abs(b) + 1e-12), 90))
    plain = change(section(section_name, level_dbfs=None, floor_db=None, trim_db=None))
    robust = change(section(section_name, level_dbfs=-30.0, floor_db=50.0))
    assert robust < plain / 10, (plain, robust)


def test_egemaps_clips_samples_beyond_full_scale_instead_of_wrapping():
    p = section("features_egemaps", level_dbfs=None, floor_db=None, trim_db=None)
    y = clip() * 40  # peaks far beyond full scale, as a float WAV can hold
    assert np.abs(y).max() > 1.5
    np.testing.assert_array_equal(egemaps.from_samples(y, SR, p),
                                  egemaps.from_samples(np.clip(y, -1.0, 32767 / 32768), SR, p))


def test_silence_is_left_silent_but_for_the_floor():
    out = condition(np.zeros(SR), SR, -30.0, 50.0)
    assert 20 * np.log10(np.sqrt(np.mean(out ** 2))) == pytest.approx(-80.0, abs=0.2)
    assert np.array_equal(condition(np.zeros(SR), SR, -30.0, None), np.zeros(SR))


def test_a_model_without_the_new_feature_params_is_refused_in_one_line(tmp_path):
    """A model file made before level_dbfs and floor_db existed cannot say which features it
    was trained on: refused, not guessed."""
    from ser.analysis import _check_features
    from ser.errors import SerError
    current = section("features_stats").saved()
    old = {k: v for k, v in current.items() if k not in ("level_dbfs", "floor_db")}
    with pytest.raises(SerError, match=r"m.model: holds no features_stats.level_dbfs \(made by an older"):
        _check_features(tmp_path / "m.model", old, current, "features_stats")
    assert _check_features(tmp_path / "m.model", current, current, "features_stats") == current


def test_trimming_cuts_the_silence_around_the_sound():
    """How much silence a file holds depends on how it was cut (RAVDESS: about 38%, TESS's
    words: almost none); trim keeps the sound and at most a frame and a hop of silence each side
    (librosa's centred frames)."""
    from ser.features.level import FRAME_S, HOP_S, trim
    y = clip()
    start, end = int(0.6 * SR), len(y) - int(0.5 * SR)
    out = trim(y, SR, 40.0)
    margin = round(FRAME_S * SR) // 2 + round(HOP_S * SR)
    assert end - start <= len(out) <= end - start + 2 * margin
    # a contiguous piece of the recording that holds all of the sound
    a = next(a for a in range(start - 2 * margin, start + 1) if np.array_equal(out, y[a:a + len(out)]))
    assert a <= start and a + len(out) >= end
    assert np.array_equal(trim(y, SR, None), y)
    assert np.array_equal(trim(np.zeros(SR), SR, 40.0), np.zeros(SR))  # silence: as it is


@pytest.mark.parametrize("section_name,module", [("features_stats", stats), ("features_egemaps", egemaps)])
def test_silence_around_a_clip_barely_reaches_trimmed_features(section_name, module):
    """The same sound with and without RAVDESS-like runs of zeros around it: trimmed, the
    features move at least five times less (median relative change) than untrimmed."""
    y = clip()
    core = y[int(0.6 * SR):len(y) - int(0.5 * SR)]

    def moved(trim_db):
        p = section(section_name, trim_db=trim_db)
        a, b = module.from_samples(core, SR, p), module.from_samples(y, SR, p)
        return float(np.median(np.abs(a - b) / (np.abs(a) + 1e-9)))
    assert moved(40.0) * 5 < moved(None)
