import numpy as np
import pandas as pd
import pytest

from conftest import section, tone
from ser.features.logmel import (add_noise, clip_features, logmel_windows, prepare_signal,
                                 recording_windows, segment_bounds)
from ser.features.stats import STATS, clip_stats, columns, feature_names, frame_features
from ser.store import load_logmel, logmel_index


def test_stats_columns():
    p = section("features_stats")
    cols = columns(p)
    assert len(feature_names(p)) == 20 and len(cols) == 200 and len(set(cols)) == 200
    assert "mfcc_03_p99" in cols and "spectral_flux_kurtosis" in cols
    assert len(clip_stats(tone(440, 48000, 1.0), 48000, p)) == 200


def test_pure_tone_centroid_and_zcr():
    p = section("features_stats")
    sr = 48000
    f = frame_features(tone(1000, sr, 1.0), sr, p)
    names = feature_names(p)
    centroid = f[names.index("spectral_centroid")]
    assert np.median(centroid) == pytest.approx(1000, rel=0.03)
    zcr = f[names.index("zcr")]  # two crossings per period
    assert np.median(zcr) == pytest.approx(2 * 1000 / sr, rel=0.05)
    # 1 s, 25 ms frames every 10 ms, no centring: 1 + (48000 - 1200) // 480 frames
    assert f.shape == (20, 1 + (48000 - 1200) // 480)


def test_silence_gives_finite_features():
    p = section("features_stats")  # conditioned: the noise floor alone
    assert np.isfinite(clip_stats(np.zeros(48000, dtype=np.float32), 48000, p)).all()
    p = section("features_stats", level_dbfs=None, floor_db=None, trim_db=None)  # the reference's: zeros
    v = clip_stats(np.zeros(48000, dtype=np.float32), 48000, p)
    assert np.isfinite(v).all()
    stats = dict(zip(columns(p), v))
    assert stats["energy_mean"] == 0 and stats["energy_kurtosis"] == 0


def test_stats_summarise_known_values():
    # a ramp 0..1 in energy per frame is not easy to make; check the summary function directly
    from ser.features.stats import summarise
    x = np.arange(101, dtype=float)[None, :]
    s = dict(zip(STATS, summarise(x)[0]))
    assert (s["mean"], s["median"], s["min"], s["max"], s["range"]) == (50, 50, 0, 100, 100)
    assert s["p01"] == pytest.approx(1) and s["p99"] == pytest.approx(99)
    assert s["skew"] == pytest.approx(0, abs=1e-12)


def test_signal_prep_pads_and_cuts():
    p = section("features_logmel")
    short = prepare_signal(np.ones(1000) + np.arange(1000), p)
    assert short.shape == (49100,) and (short[1000:] == 0).all()
    assert short[:1000].mean() == pytest.approx(0, abs=1e-9) and short[:1000].std() == pytest.approx(1)
    assert prepare_signal(np.random.default_rng(0).normal(size=60000), p).shape == (49100,)


def test_window_count_for_known_length():
    p = section("features_logmel")
    w = logmel_windows(prepare_signal(tone(440, 16000, 2.0).astype(float), p), p)
    # 49,100 samples, hop 128, centred STFT: 384 frames; windows of 128 every 64: 5
    assert w.shape == (5, 128, 128)
    assert w.max() == pytest.approx(0) and w.min() >= -80.0 - 1e-6
    assert np.array_equal(w[0][:, 64:], w[1][:, :64])  # windows overlap by half


def test_noise_at_requested_snr():
    rng = np.random.default_rng(0)
    y = np.sin(np.linspace(0, 2000, 49100))
    noisy = add_noise(y, 20.0, rng)
    snr = 10 * np.log10(np.mean(y ** 2) / np.mean((noisy - y) ** 2))
    assert snr == pytest.approx(20.0, abs=1e-6)


def test_augmentation_deterministic_and_per_clip(small_corpus):
    p = section("features_logmel")
    path = small_corpus / "Actor_01" / "03-01-05-01-01-01-01.flac"
    a = clip_features(path, "03-01-05-01-01-01-01", 2, p)
    b = clip_features(path, "03-01-05-01-01-01-01", 2, p)
    assert a.shape == (3, 5, 128, 128) and a.dtype == np.float16
    assert np.array_equal(a, b)
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])
    other = clip_features(path, "another-id", 2, p)  # the noise depends on the clip, not the order
    assert np.array_equal(a[0], other[0]) and not np.array_equal(a[1], other[1])


def test_float16_loses_nothing_that_matters(small_corpus):
    p32 = section("features_logmel", dtype="float32")
    path = small_corpus / "Actor_02" / "03-01-06-02-01-01-02.flac"
    x32 = clip_features(path, "c", 0, p32)
    err = np.abs(x32.astype(np.float16).astype(np.float32) - x32).max()
    assert err < 0.04  # dB, on a range of 80 dB


def test_index_puts_copies_after_each_clip():
    idx = logmel_index(["a", "b", "c"], 2)
    assert idx["clip_id"].tolist() == ["a", "a", "a", "b", "b", "b", "c", "c", "c"]
    assert idx["copy"].tolist() == [0, 1, 2] * 3
    assert idx["row"].tolist() == list(range(9))


@pytest.mark.parametrize("stage", ["features_stats", "features_egemaps", "features_logmel"])
def test_same_output_whatever_n_jobs(tmp_path, small_corpus, stage):
    import yaml
    from ser.stages.prepare import scan
    from ser.stages import features
    family = stage.removeprefix("features_")
    m = scan(small_corpus, "seven", n_jobs=1).iloc[::40].copy()  # 6 clips
    m.to_csv(tmp_path / "m.csv", index=False)
    outs = []
    for jobs in (1, 2):
        data = yaml.safe_load(open("params.yaml"))
        data["runtime"]["n_jobs"] = jobs
        (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
        out = tmp_path / f"out{jobs}"
        features.run(tmp_path / "p.yaml", family, small_corpus, tmp_path / "m.csv", out)
        outs.append(out)
    if stage != "features_logmel":
        a, b = (pd.read_parquet(o) for o in outs)
        pd.testing.assert_frame_equal(a, b)
    else:
        (xa, ia), (xb, ib) = (load_logmel(o) for o in outs)
        assert np.array_equal(xa, xb) and ia.equals(ib) and len(ia) == 6 * 3  # 2 copies each
        assert (outs[0] / "params.json").read_text() == (outs[1] / "params.json").read_text()


def test_recording_windows_start_with_the_stages_features(small_corpus):
    """`ser predict`'s path: the first segment of a clip is the stage's features of that clip."""
    from ser.audio import at_rate, decode, load
    p = section("features_logmel")
    path = small_corpus / "Actor_03" / "03-01-07-02-02-01-03.flac"
    stage = clip_features(path, "03-01-07-02-02-01-03", 0, p)[0]
    y, sr = decode(path)
    assert np.array_equal(at_rate(y, sr, p.sample_rate, p.offset_s), load(path, p.sample_rate, p.offset_s))
    (start, end, first), = recording_windows(at_rate(y, sr, p.sample_rate, p.offset_s), p, 48000)
    assert start == 0 and np.array_equal(first, stage)


def test_segments_cover_a_long_recording_with_full_windows():
    p = section("features_logmel")  # windows of 49,100 samples
    n = p.n_samples
    assert segment_bounds(1000, p, 48000) == [(0, 1000)]  # shorter than a window: one, padded
    assert segment_bounds(n, p, 48000) == [(0, n)]
    bounds = segment_bounds(10 * 16000, p, 48000)  # 10 s: 0, 3, 6 s, then one ending at 10 s
    assert bounds == [(0, n), (48000, 48000 + n), (96000, 96000 + n), (160000 - n, 160000)]
    y = np.random.default_rng(0).normal(size=10 * 16000).astype(np.float32)
    segs = recording_windows(y, p, 48000)
    assert [(s, e) for s, e, _ in segs] == bounds
    assert all(w.shape == (5, 128, 128) and w.dtype == np.float16 for _, _, w in segs)


_FEATURES_SCRIPT = """
import hashlib, sys, numpy as np
sys.path.insert(0, sys.argv[1])
from conftest import section, synthetic_clip
from ser.features import logmel, tables
clips = [synthetic_clip(s, 16000, 3.5).astype(np.float32) / 32768
         for s in ("03-01-05-02-01-01-02", "03-01-03-01-02-02-07", "03-01-08-02-02-01-12")]
for name in tables.SETS:  # every feature set, as its stage stores it
    p, mod = section(f"features_{name}"), tables.module(name)
    if mod is not None:
        v = np.stack([mod.from_samples(y, 16000, p) for y in clips])
    else:  # the windows, in features_logmel.dtype
        v = np.stack([logmel.logmel_windows(logmel.prepare_signal(y, p), p) for y in clips]).astype(p.dtype)
    print(name, hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest())
"""

# sha256 of each feature set's features of the three generated clips above, as stored.
# A change that alters a family's values on purpose updates its line (and reruns its stage).
PINNED = {
    "stats": "f22afb036686e4acac2c54a1ddb8bdeee84f4f20c56489b9bdf23f5d011234a4",
    "stats_conditioned": "12dca6a14bedf619579d6ee69700e60023c6314ef41f40b4a188cf29a7d497fb",
    "logmel": "232f34e19b57ff75a8996428aacbe40d95da2d9563b0d3d5ce33a4abfc245ce9",
    "egemaps": "dd120d310609a9cd1138ebaf8acfc4b58fa387973787627a139964402c5d105f",
    "egemaps_conditioned": "ea023f834d52fc3ac80a702943669b8953d30a7a9143007534826480be43bc20",
}


def _feature_hashes(env: dict) -> dict:
    import subprocess
    import sys
    from pathlib import Path
    r = subprocess.run([sys.executable, "-c", _FEATURES_SCRIPT, str(Path(__file__).parent)],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return dict(line.split() for line in r.stdout.splitlines())


def test_every_feature_family_gives_the_same_bytes_on_any_host():
    """Features are byte-identical on any x86-64 host, so that a trained fold's inputs can be
    rebuilt anywhere and DVC tells a finished fold from a stale one. Emulated here: numpy's
    AVX-512 paths off (NPY_DISABLE_CPU_FEATURES, as on a processor without AVX-512), OpenBLAS's
    oldest kernel (OPENBLAS_CORETYPE=Prescott) on one thread. Each family hashes as pinned."""
    import os
    import numpy
    dispatch = numpy._core._multiarray_umath.__cpu_dispatch__
    lower = [f for f in dispatch if f.startswith(("X86_V4", "AVX512"))]  # the AVX-512 levels
    here = _feature_hashes(dict(os.environ))
    other = _feature_hashes({**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(lower),
                             "OPENBLAS_CORETYPE": "Prescott", "OPENBLAS_NUM_THREADS": "1"})
    assert other == here
    assert here == PINNED


def test_opensmiles_distribution_is_the_one_its_metadata_names():
    """egemaps gives audobject the distribution of the module `opensmile` instead of letting it
    scan every installed distribution (0.2 s of a cold `ser predict`): the scan's own answer."""
    from importlib.metadata import packages_distributions
    from audobject.core import utils
    from ser.features import egemaps
    from ser.params import load_params
    from conftest import ROOT
    assert packages_distributions()["opensmile"][0] == "opensmile"
    saved = dict(utils.PACKAGES_DISTRIBUTIONS)
    try:
        utils.PACKAGES_DISTRIBUTIONS.clear()
        egemaps._known_distribution()
        assert utils.PACKAGES_DISTRIBUTIONS == {"opensmile": ["opensmile"]}
        assert len(egemaps.columns(load_params(ROOT / "params.yaml").features_egemaps)) == 88
    finally:
        utils.PACKAGES_DISTRIBUTIONS.clear()
        utils.PACKAGES_DISTRIBUTIONS.update(saved)
