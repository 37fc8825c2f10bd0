"""Long recordings (over predict.whole_max_s): read in blocks, twice, in memory independent of
their length (ser.analysis.analyse_long), with answers that do not depend on how the file is cut
into blocks or whether it comes from a file or from memory. Stand-in models (no training): a
CNN-LSTM whose answer follows its input's level, an SVM whose answer follows two features."""

import numpy as np
import pytest
import soundfile as sf

from conftest import section, write_wav
from ser import analysis, registry
from ser.analysis import Ensemble, analyse, analyse_audio
from ser.audio import Resampler, at_rate, blocks, decode
from ser.errors import SerError

CLASSES = ["neutral", "sad"]


def speech_like(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """A tone whose loudness and pitch wander, with a gap of digital silence in the middle."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = (0.3 * np.sin(2 * np.pi * (150 + 40 * np.sin(0.7 * t)) * t) * (0.6 + 0.4 * np.sin(0.9 * t))
         + 0.01 * rng.standard_normal(len(t)))
    y[int(0.45 * len(y)):int(0.45 * len(y)) + 4 * sr] = 0.0  # 4 s of digital zeros
    return y.astype(np.float32)


def _softmax2(z: np.ndarray) -> np.ndarray:
    z = np.stack([z, -z], axis=1)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def families(grid):
    from ser.features.stats import columns
    sp = section("features_stats")
    cols = columns(sp)

    def cnn(x, batch=64):  # the windows' mean level, per segment
        return _softmax2(np.asarray(x, dtype=np.float64).mean(axis=(1, 2, 3)) / 20 + 2)

    def svm(x):
        return _softmax2(np.asarray(x)[:, 0] * 10 - np.asarray(x)[:, 1])
    return [Ensemble(registry.get("cnn_lstm"), "actor", ["actor-0"], CLASSES, grid.saved(), None, [cnn]),
            Ensemble(registry.get("svm_stats"), "actor", ["actor-0"], CLASSES, sp.saved(), cols, [svm])]


@pytest.mark.parametrize("sr,target,skip", [(44100, 16000, 22050), (22050, 16000, 0),
                                            (16000, 16000, 8000), (8000, 16000, 4000)])
def test_the_resampling_stream_gives_the_whole_signals_samples_bit_for_bit(sr, target, skip):
    y = speech_like(7.3, sr)
    ref = at_rate(y, sr, target, skip / sr)
    for n in (1000, 4096, len(y)):
        rs = Resampler(sr, target, skip)
        parts = [rs.feed(y[i:i + n], last=i + n >= len(y)) for i in range(0, len(y), n)]
        assert np.array_equal(np.concatenate(parts), ref), n


def test_blocks_are_decodes_samples_and_a_cut_file_is_refused(tmp_path):
    y = speech_like(5.0, 44100)
    path = write_wav(tmp_path / "st.wav", np.stack([y, -0.5 * y], 1), 44100)
    whole, _ = decode(path)
    assert np.array_equal(np.concatenate(list(blocks(path, 3001))), whole)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    with pytest.raises(SerError, match="cut.wav: truncated"):
        list(blocks(cut, 3001))


def test_a_long_file_streamed_in_any_blocks_answers_as_in_memory(tmp_path, monkeypatch):
    grid, pp = section("features_logmel"), section("predict", hop_s=3.0, whole_max_s=10.0)
    ens = families(grid)
    sr = 22050
    path = write_wav(tmp_path / "long.wav", speech_like(40.0, sr), sr)
    y, _ = decode(path)
    monkeypatch.setattr(analysis, "BLOCK_S", 2.9)
    streamed = analyse(path, ens, pp, grid, folds=True, name="long.wav")
    monkeypatch.setattr(analysis, "BLOCK_S", 11.0)
    assert analyse_audio(y, sr, "long.wav", ens, pp, grid, folds=True) == streamed
    segs = streamed["segments"]
    assert len(segs) == 14 and any(s["silent"] for s in segs) and not any(s["short"] for s in segs)
    for e in ens:  # the whole answer: the mean of the heard segments' answers, for every family
        heard = [s[e.name]["probs"]["neutral"] for s in segs if not s["silent"]]
        assert streamed["whole"][e.name]["probs"]["neutral"] == pytest.approx(np.mean(heard), abs=1e-4)
        assert all(s[e.name] is None for s in segs if s["silent"])


def test_a_long_recordings_segments_are_read_as_a_short_recordings(tmp_path):
    """A segment's answer is the same whether the recording streams or is read whole: the
    table families' features of its samples exactly, the CNN-LSTM's up to the z-score's
    float64 accumulation."""
    grid = section("features_logmel")
    ens = families(grid)
    y, sr = speech_like(40.0, 16000), 16000
    long = analyse_audio(y, sr, "a", ens, section("predict", whole_max_s=10.0), grid)
    whole = analyse_audio(y, sr, "a", ens, section("predict", whole_max_s=60.0), grid)
    assert len(long["segments"]) == len(whole["segments"])
    for a, b in zip(long["segments"], whole["segments"]):
        assert (a["start_s"], a["end_s"], a["silent"]) == (b["start_s"], b["end_s"], b["silent"])
        if not a["silent"]:
            assert a["svm_stats"] == b["svm_stats"]
            assert a["cnn_lstm"]["probs"]["neutral"] == pytest.approx(
                b["cnn_lstm"]["probs"]["neutral"], abs=2e-4)
    # read whole, the SVM answers from the whole recording's features, not its segments' mean
    assert whole["whole"]["svm_stats"] != long["whole"]["svm_stats"]


def test_memory_does_not_grow_with_the_recording(tmp_path, monkeypatch):
    """The most samples held at once is the same for 40 s and 160 s (blocks of 5 s)."""
    grid, pp = section("features_logmel"), section("predict", whole_max_s=10.0)
    ens = families(grid)
    held = []
    add = analysis._Buffer.add

    def tracked(self, x):
        add(self, x)
        held.append(len(self.data))
    monkeypatch.setattr(analysis._Buffer, "add", tracked)
    monkeypatch.setattr(analysis, "BLOCK_S", 5.0)
    peaks = []
    for seconds in (40.0, 160.0):
        held.clear()
        path = write_wav(tmp_path / f"{seconds:g}.wav", speech_like(seconds, 16000), 16000)
        analyse(path, ens, pp, grid)
        peaks.append(max(held))
    assert peaks[0] == peaks[1] <= (5.0 + 2 * 3.07) * 16000


def test_a_long_silent_file_is_refused_in_one_line(tmp_path):
    grid, pp = section("features_logmel"), section("predict", whole_max_s=10.0)
    path = write_wav(tmp_path / "quiet.wav", np.zeros(16000 * 20, np.float32), 16000)
    with pytest.raises(SerError, match=r"quiet.wav: silent"):
        analyse(path, families(grid), pp, grid)


def test_a_header_without_a_length_still_reads_a_short_file_whole(tmp_path, monkeypatch):
    grid, pp = section("features_logmel"), section("predict", whole_max_s=10.0)
    ens = families(grid)
    path = write_wav(tmp_path / "s.wav", speech_like(6.0, 16000)[:16000 * 6], 16000)
    direct = analyse(path, ens, pp, grid)
    monkeypatch.setattr(analysis, "info", lambda p: (0, sf.info(str(p)).samplerate))
    assert analyse(path, ens, pp, grid) == direct
