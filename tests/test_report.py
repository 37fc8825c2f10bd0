import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import binomtest

from ser import report
from ser.evaluate import predictions_frame

CLASSES = ["neutral", "happy", "sad"]


def test_model_metrics_hand_computed():
    y = np.array(["neutral"] * 4 + ["happy"] * 4 + ["sad"] * 2)
    p = np.array(["neutral"] * 4 + ["happy"] * 2 + ["sad"] * 2 + ["sad"] * 2)
    m = report.model_metrics(y, p, CLASSES, n=500, confidence=0.95, seed=0)
    assert m["accuracy"].value == pytest.approx(0.8)
    assert m["balanced_accuracy"].value == pytest.approx((1 + 0.5 + 1) / 3)
    assert m["recall.happy"].value == pytest.approx(0.5)
    assert m["precision.sad"].value == pytest.approx(0.5)
    assert m["accuracy"].low < 0.8 < m["accuracy"].high
    # binomial sd of an 80% accuracy on 10 clips is 12.6 points: a 95% interval spans about 50
    assert 0.3 < m["accuracy"].high - m["accuracy"].low < 0.7


def test_perfect_model_has_a_zero_width_interval():
    y = np.array(CLASSES * 5)
    m = report.model_metrics(y, y, CLASSES, n=200, confidence=0.95, seed=0)
    assert (m["accuracy"].value, m["accuracy"].low, m["accuracy"].high) == (1.0, 1.0, 1.0)


def test_gap_and_mcnemar_counts():
    y = np.array(["sad"] * 20)
    svm = np.array(["sad"] * 10 + ["happy"] * 10)                 # 10 right
    cnn = np.array(["sad"] * 8 + ["happy"] * 2 + ["sad"] * 8 + ["happy"] * 2)  # 16 right
    g = report.gap_metrics(y, svm, cnn, n=500, confidence=0.95, seed=0)
    assert g["accuracy_pp"].value == pytest.approx(30.0)
    assert (g["only_cnn_lstm_right"], g["only_svm_right"]) == (8, 2)
    assert g["mcnemar_p"] == pytest.approx(binomtest(8, 10, 0.5).pvalue)
    assert g["mcnemar_p"] == pytest.approx(0.109375)
    assert g["accuracy_pp"].low < 30 < g["accuracy_pp"].high


def _tables(tmp_path, n=40, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"c{i}" for i in range(n)]
    split = ["test"] * (n // 2) + ["val"] * (n - n // 2)
    y = np.array(CLASSES)[rng.integers(0, 3, n)]
    out = {}
    for name, acc in (("svm", 0.6), ("cnn", 0.8)):
        right = rng.random(n) < acc
        pred = np.where(right, y, np.roll(y, 1))
        proba = np.eye(3)[[CLASSES.index(c) for c in pred]] * 0.7 + 0.1
        f = tmp_path / f"{name}.csv"
        t = predictions_frame(ids, split, y, proba, CLASSES)
        t.to_csv(f, index=False)
        out[name] = f
    return out


def test_report_files(tmp_path):
    t = _tables(tmp_path)
    data = yaml.safe_load(open("params.yaml"))
    data["report"]["bootstrap"] = 200
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    curves = tmp_path / "live"
    for part in ("train", "val"):
        (curves / part).mkdir(parents=True)
        for name in ("loss", "acc"):
            pd.DataFrame({"step": [0, 1, 2], name: [0.5, 0.6, 0.7]}).to_csv(
                curves / part / f"{name}.tsv", sep="\t", index=False)
    out = tmp_path / "reports"
    report.run(tmp_path / "params.yaml", t["svm"], t["cnn"], curves, None, out)
    md = (out / "report.md").read_text()
    first = md.splitlines()[2]
    assert first.startswith("**On 20 test clips the CNN-LSTM is ") and "McNemar p =" in first
    assert "SVM" in md and "CNN-LSTM" in md and "74%" in md and "72%" in md
    for png in ("accuracy", "confusion_test", "confusion_val", "per_class_f1", "training_curves"):
        data = (out / "figures" / f"{png}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5
    m = json.loads((out / "metrics.json").read_text())
    for key in ("svm.test.accuracy", "cnn_lstm.test.accuracy", "gap.test.accuracy_pp",
                "gap.test.accuracy_pp_ci_low", "gap.test.mcnemar_p", "gap.val.accuracy_pp"):
        assert key in m
    assert m["gap.test.accuracy_pp"] == pytest.approx(
        100 * (m["cnn_lstm.test.accuracy"] - m["svm.test.accuracy"]), abs=0.01)
    conf = pd.read_csv(out / "plots" / "confusion_svm_test.csv")
    assert list(conf.columns) == ["actual", "predicted"] and len(conf) == 20


def test_mismatched_tables_are_refused(tmp_path):
    t = _tables(tmp_path)
    other = pd.read_csv(t["cnn"])
    other.loc[0, "clip_id"] = "zzz"
    other.to_csv(t["cnn"], index=False)
    from ser.errors import SerError
    with pytest.raises(SerError, match="different test clips"):
        report.run("params.yaml", t["svm"], t["cnn"], tmp_path / "none", None, tmp_path / "out")


def test_report_stage_declares_the_params_it_quotes():
    stage = yaml.safe_load((Path(__file__).resolve().parents[1] / "dvc.yaml").read_text())
    declared = set(stage["stages"]["report"]["params"])
    quoted = {f"train_cnn_lstm.{k}" for k in report.QUOTED_TRAINING_PARAMS} | {
        "train_cnn_lstm.seed", "train_svm.seed", "features_logmel.seed",
        "features_logmel.augment_copies", "download.actors", "prepare", "report"}
    assert quoted <= declared, quoted - declared
