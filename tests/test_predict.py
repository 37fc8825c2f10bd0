"""How `ser predict` reads a recording shorter than the CNN-LSTM's window (no trained models
needed: a stand-in CNN-LSTM records what it is given). The models' answers are tested in
test_e2e; the default (predict.loop_below_s) was measured by benchmarks/bench_short.py."""

import numpy as np
import pytest
import torch

from conftest import section, tone
from ser import registry
from ser.analysis import Ensemble, analyse_audio, cnn_input
from ser.audio import at_rate
from ser.features.logmel import recording_windows

SR = 22050
CLASSES = ["neutral", "sad"]


class Recorder(torch.nn.Module):
    """Stands in for a CNN-LSTM: keeps its input, answers 'neutral'."""
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        return torch.tensor([[2.0, 0.0]]).repeat(len(x), 1)


@pytest.fixture
def grid():
    return section("features_logmel")


def cnn_family(grid) -> tuple[Ensemble, Recorder]:
    rec = Recorder()

    def proba(x):
        return torch.softmax(rec(torch.from_numpy(np.asarray(x, dtype=np.float32))), 1).numpy()
    return Ensemble(registry.get("cnn_lstm"), "random", ["random-0"], CLASSES, grid.saved(), None,
                    [proba]), rec


def test_cnn_input_loops_only_what_is_shorter_than_loop_below_s(grid):
    pp = section("predict", loop_below_s=1.75)
    y = tone(330, grid.sample_rate, 1.0)
    looped, did = cnn_input(y, pp, grid)
    assert did and len(looped) == grid.n_samples
    assert np.array_equal(looped[:len(y)], y) and np.array_equal(looped[len(y):2 * len(y)], y)
    y2 = tone(330, grid.sample_rate, 2.0)
    assert cnn_input(y2, pp, grid) == (y2, False)  # zero-padded later, as the stage pads
    assert not cnn_input(y, section("predict", loop_below_s=0.0), grid)[1]  # 0: never loop
    long = tone(330, grid.sample_rate, 4.0)  # never cut: loop_below_s past the window is moot
    assert cnn_input(long, section("predict", loop_below_s=10.0), grid) == (long, False)


@pytest.mark.parametrize("seconds,looped", [(1.2, True), (2.0, False)])
def test_the_cnn_lstm_reads_a_short_recording_as_cnn_input_says(grid, seconds, looped):
    pp = section("predict", loop_below_s=1.75, reliable_min_s=2.4)
    y = tone(330, SR, grid.offset_s + seconds)
    fam, rec = cnn_family(grid)
    r = analyse_audio(y, SR, "short.wav", [fam], pp, grid)
    y16 = at_rate(y, SR, grid.sample_rate, grid.offset_s)
    expect = recording_windows(np.resize(y16, grid.n_samples) if looped else y16, grid, 48000)
    [seen] = rec.seen
    assert np.array_equal(seen.numpy()[0], expect[0][2].astype(np.float32))  # one segment
    [seg] = r["segments"]  # timed as recorded, flagged short, the answer shown
    assert seg["start_s"] == grid.offset_s
    assert seg["end_s"] == pytest.approx(grid.offset_s + seconds, abs=1e-3)
    assert seg["short"] and seg["cnn_lstm"]["top"] == "neutral"
    [warning] = r["warnings"]
    assert ("looped" if looped else "zero-padded") in warning
    assert f"{seconds:.2f} s of audio" in warning


def test_a_recording_with_enough_audio_is_not_flagged(grid):
    pp = section("predict", loop_below_s=1.75, reliable_min_s=2.4)
    r = analyse_audio(tone(330, SR, grid.offset_s + 2.6), SR, "ok.wav", [], pp, grid)
    [seg] = r["segments"]
    assert not seg["short"] and r["warnings"] == []
    assert seg["end_s"] == pytest.approx(grid.offset_s + 2.6, abs=1e-3)


def uniform(x):
    """Stands in for a fitted SVM: every class equally likely."""
    return np.full((len(x), len(CLASSES)), 1 / len(CLASSES))


@pytest.mark.parametrize("sr,warned", [(8000, True), (16000, False), (44100, False)])
def test_audio_sampled_below_the_svms_rate_is_warned_about(grid, sr, warned):
    from ser.features.stats import columns
    sp = section("features_stats")
    fam = Ensemble(registry.get("svm_stats"), "random", ["random-0"], CLASSES, sp.saved(),
                   columns(sp), [uniform])
    pp = section("predict", loop_below_s=1.75, reliable_min_s=2.4)
    r = analyse_audio(tone(330, sr, 4.0), sr, "call.wav", [fam], pp, grid)
    assert r["sample_rate"] == sr
    assert any(f"sampled at {sr} Hz" in w for w in r["warnings"]) == warned
    assert r["whole"]["svm_stats"]["top"] in CLASSES  # answered all the same


def test_the_table_says_one_segment_and_fits_long_labels():
    """'1 segment', not '1 segments'; a family label longer than the column widens it, so every
    row lines up under its header."""
    from ser.apps.predict import to_text
    fams = [registry.get("svm_egemaps_conditioned"), registry.get("cnn_lstm")]
    ens = [Ensemble(f, "actor", ["actor-0"], CLASSES, {}, None, []) for f in fams]
    entry = {"top": "neutral", "prob": 0.9, "probs": {"neutral": 0.9, "sad": 0.1}}
    seg = {"start_s": 0.5, "end_s": 3.6, "short": False, "silent": False,
           **{f.name: entry for f in fams}}
    result = {"file": "a.wav", "duration_s": 3.6, "warnings": [], "segments": [seg],
              "whole": {f.name: entry for f in fams}}
    text = to_text([result], ens)
    assert "(3.6 s, 1 segment)" in text
    head, row = text.splitlines()[-2:]
    assert len(head) == len(row)
    assert head.index("eGeMAPS SVM (conditioned)") + len("eGeMAPS SVM (conditioned)") == \
        row.index("neutral 0.90") + len("neutral 0.90")
    assert "(3.6 s, 2 segments)" in to_text([{**result, "segments": [seg, seg]}], ens)
