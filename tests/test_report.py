import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from ser import intervals as stats
from ser import registry
from ser.stages import report
from ser.errors import SerError
from ser.params import load_params
from ser.predictions import predictions_frame
from ser.runs import read_predictions

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["neutral", "happy", "sad"]


def metrics(y, p, n=500, seed=0, clusters=None):
    w = stats.resample_weights(len(y), n, seed, clusters)
    return stats.model_metrics(np.asarray(y), np.asarray(p), CLASSES, w, 0.95)


def test_model_metrics_hand_computed():
    y = np.array(["neutral"] * 4 + ["happy"] * 4 + ["sad"] * 2)
    p = np.array(["neutral"] * 4 + ["happy"] * 2 + ["sad"] * 2 + ["sad"] * 2)
    m = metrics(y, p)
    assert m["accuracy"].value == pytest.approx(0.8)
    assert m["balanced_accuracy"].value == pytest.approx((1 + 0.5 + 1) / 3)
    assert m["recall.happy"].value == pytest.approx(0.5)
    assert m["precision.sad"].value == pytest.approx(0.5)
    assert m["accuracy"].low < 0.8 < m["accuracy"].high
    # binomial sd of an 80% accuracy on 10 clips is 12.6 points: a 95% interval spans about 50
    assert 0.3 < m["accuracy"].high - m["accuracy"].low < 0.7


def test_metrics_are_scikit_learns_on_every_resample():
    rng = np.random.default_rng(1)
    y = np.array(CLASSES)[rng.integers(0, 3, 60)]
    p = np.where(rng.random(60) < 0.6, y, np.array(CLASSES)[rng.integers(0, 3, 60)])
    w = stats.resample_weights(60, 5, 3)
    m = stats.metrics_of(stats.confusions(y, p, CLASSES, w))
    for b in range(5):
        idx = np.repeat(np.arange(60), w[b].astype(int))
        assert m["accuracy"][b] == pytest.approx(accuracy_score(y[idx], p[idx]))
        assert m["balanced_accuracy"][b] == pytest.approx(balanced_accuracy_score(y[idx], p[idx]))
        assert m["macro_f1"][b] == pytest.approx(
            f1_score(y[idx], p[idx], labels=CLASSES, average="macro", zero_division=0))


def test_perfect_model_has_a_zero_width_interval():
    y = np.array(CLASSES * 5)
    m = metrics(y, y, n=200)
    assert (m["accuracy"].value, m["accuracy"].low, m["accuracy"].high) == (1.0, 1.0, 1.0)


def test_gap_and_mcnemar_counts():
    y = np.array(["sad"] * 20)
    svm = np.array(["sad"] * 10 + ["happy"] * 10)                 # 10 right
    cnn = np.array(["sad"] * 8 + ["happy"] * 2 + ["sad"] * 8 + ["happy"] * 2)  # 16 right
    g = stats.gap_metrics(y, cnn, svm, CLASSES, stats.resample_weights(20, 500, 0), 0.95)
    assert g["accuracy_pp"].value == pytest.approx(30.0)  # a minus b: cnn minus svm
    assert (g["only_a_right"], g["only_b_right"]) == (8, 2)
    assert g["mcnemar_p"] == pytest.approx(binomtest(8, 10, 0.5).pvalue)
    assert g["mcnemar_p"] == pytest.approx(0.109375)
    assert g["accuracy_pp"].low < 30 < g["accuracy_pp"].high


def test_cluster_bootstrap_is_wider_when_speakers_are_all_right_or_all_wrong():
    """20 actors of 30 clips: each actor's clips are all right or all wrong. The clips are then not
    independent, and resampling actors gives the honest, much wider interval."""
    actors = np.repeat(np.arange(20), 30)
    y = np.array(CLASSES * 200)
    right_actor = np.arange(20) % 2 == 0  # half the actors right
    p = np.where(right_actor[actors], y, np.roll(y, 1))
    by_clip = metrics(y, p, n=1000)["accuracy"]
    by_actor = metrics(y, p, n=1000, clusters=actors)["accuracy"]
    assert by_clip.value == by_actor.value == 0.5
    width = lambda i: i.high - i.low  # noqa: E731
    assert width(by_actor) > 3 * width(by_clip)
    # clip level: binomial, sd sqrt(.25 / 600) = 2 points; actor level: sd sqrt(.25 / 20) = 11
    assert width(by_clip) == pytest.approx(2 * 1.96 * 0.0204, rel=0.2)
    assert width(by_actor) == pytest.approx(2 * 1.96 * 0.112, rel=0.2)


def test_cluster_weights_give_each_clip_its_actors_count():
    actors = np.array([5, 5, 9, 9, 9, 2])
    w = stats.resample_weights(6, 50, 0, actors)
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 2] == w[:, 4]).all()
    assert (w[:, [0, 2, 5]].sum(axis=1) == 3).all()  # three actors drawn each time


# ---------------------------------------------------------------- the stage, on hand-made runs

RUNS = ["random-0", "random-1", "actor-0", "actor-1", "actor-2", "actor-3"]


def make_runs(tmp_path, acc=(("svm_stats", 0.5), ("svm_stats_conditioned", 0.5), ("svm_egemaps", 0.5),
                             ("svm_egemaps_conditioned", 0.5), ("cnn_lstm", 0.75))):
    """Predictions of every family for 4 actors x 30 clips under both protocols, with known
    accuracies per protocol: every clip of the right share is right under both protocols."""
    n = 120
    ids = [f"c{i:03d}" for i in range(n)]
    actors = np.repeat([1, 2, 3, 4], 30)
    y = np.array(CLASSES)[np.arange(n) % 3]
    pd.DataFrame({"clip_id": ids, "path": ids, "actor": actors, "label": y}).to_csv(
        tmp_path / "manifest.csv", index=False)
    right = {m: np.arange(n) % 4 < a * 4 for m, a in acc}  # exactly a of every 4 clips right
    pred = {m: np.where(right[m], y, np.roll(y, 1)) for m in right}
    i = np.arange(n)
    folds = {"random-0": (i % 2 == 0, i % 6 == 1), "random-1": (i % 2 == 1, i % 6 == 0)}
    folds.update({f"actor-{k}": (actors == k + 1, actors == (k + 1) % 4 + 1) for k in range(4)})
    runs = tmp_path / "runs"
    for run, (test, val) in folds.items():
        rows = test | val
        for m in pred:
            proba = np.eye(3)[[CLASSES.index(c) for c in pred[m][rows]]] * 0.7 + 0.1
            t = predictions_frame(np.array(ids)[rows], np.where(test[rows], "test", "val"),
                                  y[rows], proba, CLASSES)
            (runs / m / run).mkdir(parents=True)
            t.to_csv(runs / m / run / "predictions.csv", index=False)
        (runs / "cnn_lstm" / run / "metrics.json").write_text(json.dumps(
            {"best_epoch": 7, "val": {"accuracy": 0.6}}))
        live = runs / "cnn_lstm" / run / "live" / "plots" / "metrics"
        for part in ("train", "val"):
            (live / part).mkdir(parents=True)
            for name in ("loss", "acc"):
                pd.DataFrame({"step": [0, 1, 2], name: [0.5, 0.6, 0.7]}).to_csv(
                    live / part / f"{name}.tsv", sep="\t", index=False)
    return runs


def params_file(tmp_path, corpora=None, **report_params):
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["report"].update(bootstrap=200, **report_params)
    data["download"]["actors"] = [1, 2, 3, 4]
    data["folds"].update(runs=RUNS, actor_fold_size=1)
    data["corpora"] = corpora if corpora is not None else {}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "params.yaml"


def test_report_from_known_predictions(tmp_path):
    runs = make_runs(tmp_path)
    out = tmp_path / "reports"
    report.run(params_file(tmp_path), runs, tmp_path / "manifest.csv", out)
    m = json.loads((out / "metrics.json").read_text())
    for prot in ("random", "actor"):
        assert m[f"{prot}.svm_stats.accuracy"] == 0.5 and m[f"{prot}.cnn_lstm.accuracy"] == 0.75
        gap = f"{prot}.gap.cnn_lstm-svm_stats"
        assert m[f"{gap}.accuracy_pp"] == 25.0
        assert m[f"{gap}.accuracy_pp_ci_low"] < 25 < m[f"{gap}.accuracy_pp_ci_high"]
        assert m[f"{gap}.mcnemar_p"] == pytest.approx(binomtest(30, 30, 0.5).pvalue, rel=1e-2)
        assert m[f"{prot}.gap.svm_egemaps-svm_stats.accuracy_pp"] == 0.0  # all three pairs
        assert m[f"{prot}.gap.cnn_lstm-svm_egemaps.accuracy_pp"] == 25.0
    assert m["drop.svm_stats.accuracy_pp"] == 0.0 == m["drop.cnn_lstm.accuracy_pp"]
    folds = json.loads((out / "metrics_folds.json").read_text())
    assert folds["runs.actor-0.svm_stats.accuracy"] == round(16 / 30, 4)  # clips 0-29: i % 4 < 2
    assert "runs.actor-0.gap.svm_egemaps-svm_stats.accuracy_pp" in folds
    assert folds["runs.random-0.cnn_lstm.best_epoch"] == 7
    md = (out / "report.md").read_text()
    lines = md.splitlines()
    assert lines[2].startswith("**Under random 2-fold cross-validation") and "25.0 points more" in lines[2]
    assert lines[4].startswith("**Under unseen speakers")
    assert "| SVM | 50.0 [" in md and "| eGeMAPS SVM | 50.0 [" in md
    assert "## Every family in every setting (%, 95% CI)" in md  # both protocols, every family
    starts = [line.split(" | ")[0] for line in lines]
    assert starts.count("| unseen speakers") == len(registry.FAMILIES) == starts.count("| random CV")
    assert 0 < m["actor.svm_stats.top_share"] < 1
    assert "finds a **larger** gap (+10 lies below the interval)" in md
    for png in ("accuracy", "actors", "forest_random", "forest_actor", "confusion_random",
                "per_class_f1_actor", "curves_random", "curves_actor"):
        data = (out / "figures" / f"{png}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 10
    pooled = pd.read_csv(out / "predictions" / "actor.csv")
    assert len(pooled) == 120 and pooled["clip_id"].is_unique
    assert list(pd.read_csv(out / "plots" / "confusion" / "svm_egemaps_random.csv").columns) == [
        "actual", "predicted"]
    assert len(pd.read_csv(out / "plots" / "curves" / "actor-3.csv")) == 3


def test_intervals_are_labelled_with_their_confidence(tmp_path):
    runs = make_runs(tmp_path)
    out = tmp_path / "reports"
    report.run(params_file(tmp_path, confidence=0.9), runs, tmp_path / "manifest.csv", out)
    md = (out / "report.md").read_text()
    assert "90% CI" in md and "95%" not in md


def test_a_clip_tested_twice_or_tables_that_disagree_are_refused(tmp_path):
    runs = make_runs(tmp_path)
    params = params_file(tmp_path)
    f = runs / "cnn_lstm" / "random-1" / "predictions.csv"
    t = pd.read_csv(f)
    t.loc[0, "clip_id"] = "zzz"
    t.to_csv(f, index=False)
    with pytest.raises(SerError, match="random-1: CNN-LSTM and SVM predictions hold different clips"):
        report.run(params, runs, tmp_path / "manifest.csv", tmp_path / "out")
    for m in registry.FAMILIES:  # every family tests c000 in both folds
        a = pd.read_csv(runs / m / "random-0" / "predictions.csv")
        b = pd.read_csv(runs / m / "random-1" / "predictions.csv")
        b = pd.concat([b[b["clip_id"] != "zzz"], a[a["clip_id"] == "c000"]])
        b.loc[b["clip_id"] == "c000", "split"] = "test"
        b = b[~b["clip_id"].duplicated(keep="last")]
        b.to_csv(runs / m / "random-1" / "predictions.csv", index=False)
    with pytest.raises(SerError, match="random: clip c000 is tested in two folds"):
        report.run(params, runs, tmp_path / "manifest.csv", tmp_path / "out")


def test_a_missing_fold_is_named(tmp_path):
    runs = make_runs(tmp_path)
    (runs / "svm_egemaps" / "actor-2" / "predictions.csv").unlink()
    with pytest.raises(SerError, match=r"actor-2/predictions\.csv: predictions table not found"):
        report.run(params_file(tmp_path), runs, tmp_path / "manifest.csv", tmp_path / "out")


@pytest.mark.parametrize("damage,message", [
    (lambda t: pd.concat([t, t.iloc[:1]]), "clip c000 appears twice"),
    (lambda t: t.assign(label=["angry"] + list(t["label"][1:])), "label 'angry' is not one of"),
    (lambda t: t.assign(pred=["sad"] + list(t["pred"][1:])), "pred is not the most probable class"),
    (lambda t: t.assign(prob_sad=[np.nan] + list(t["prob_sad"][1:])), "probabilities missing"),
    (lambda t: t.assign(split=["train"] + list(t["split"][1:])), "split 'train' (expected val or test)"),
])
def test_predictions_tables_are_checked_where_read(tmp_path, damage, message):
    y = np.array(["neutral", "happy", "sad", "happy"])
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.3, 0.6, 0.1]])
    t = predictions_frame(["c000", "c001", "c002", "c003"], ["test"] * 4, y, proba, CLASSES)
    f = tmp_path / "p.csv"
    damage(t).to_csv(f, index=False)
    with pytest.raises(SerError) as err:
        read_predictions(f)
    assert str(err.value).startswith(f"{f}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_file_that_is_not_csv_is_one_line(tmp_path):
    f = tmp_path / "p.csv"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    with pytest.raises(SerError, match=r"p\.csv: not a predictions table"):
        read_predictions(f)


def test_report_stage_declares_the_params_it_quotes():
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    declared = set(stage["stages"]["report"]["params"])
    quoted = {f"train_cnn_lstm.{k}" for k in report.QUOTED_TRAINING_PARAMS} | {
        "train_cnn_lstm.seed", "train_cnn_lstm.patience", "train_svm.seed", "train_svm.cv_folds",
        "features_logmel.seed", "features_logmel.augment_copies", "download.actors",
        "prepare.classes", "folds", "report", "features_logmel.offset_s"} | {
        f"features_{f.features}.{k}" for f in registry.FAMILIES.values() if f.features != "logmel"
        for k in ("sample_rate", "level_dbfs", "floor_db", "trim_db")}
    assert quoted <= declared, quoted - declared


def test_the_protocol_says_what_each_family_reads(tmp_path):
    """From params: the table families' conditioning, grouped where it is the same, and the
    network's windows; the cost of cutting the silence is said only when it is cut."""
    p = load_params(ROOT / "params.yaml")
    line = report.reading_line(p)
    assert line.startswith("What each family reads. SVM and eGeMAPS SVM: each clip at 16 kHz, as "
                           "it is; SVM (conditioned) and eGeMAPS SVM (conditioned): each clip at "
                           "16 kHz, cut to its sound (leading and trailing frames more than 40 dB below")
    assert "scaled to -30 dBFS" in line and "white noise 30 dB below that level" in line
    assert "CNN-LSTM: log-mel windows of each clip from 0.5 s" in line and "shared speakers" in line
    raw = p.model_copy(update={"features_egemaps_conditioned": p.features_egemaps})
    line = report.reading_line(raw)
    assert "SVM (conditioned): each clip at 16 kHz, cut to its sound" in line
    assert "SVM and eGeMAPS SVM and eGeMAPS SVM (conditioned): each clip at 16 kHz, as it is" in line
    assert "shared speakers" in line
    none = raw.model_copy(update={"features_stats_conditioned": p.features_stats})
    assert "shared speakers" not in report.reading_line(none)


def test_an_unseen_corpus_section_with_counts_collapse_spread_gaps_and_drops(tmp_path):
    """A corpus of 2 speakers (clips resampled, said so): a family that answers one class for
    every clip shows it plainly; the fold models' spread, the gaps and the drops are there."""
    runs = make_runs(tmp_path)
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    n = 60
    y = np.array(CLASSES)[np.arange(n) % 3]
    rows = []
    for fam in registry.FAMILIES:
        for model in ["ensemble", "actor-0", "actor-1", "actor-2", "actor-3"]:
            pred = np.full(n, "sad") if fam == "svm_stats" else np.where(np.arange(n) % 2 == 0, y, np.roll(y, 1))
            for i in range(n):
                p = {c: 0.8 if c == pred[i] else 0.1 for c in CLASSES}
                rows.append({"clip_id": f"t{i:03d}", "speaker": "AB"[i % 2], "label": y[i], "family": fam,
                             "model": model, "pred": pred[i], "short": i < 5, "warnings": 0,
                             **{f"prob_{c}": v for c, v in p.items()}})
    (runs / "corpus" / "tess").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(runs / "corpus" / "tess" / "predictions.csv", index=False)
    (runs / "corpus" / "tess" / "info.json").write_text(json.dumps(
        {"corpus": "tess", "clips": 70, "kept": n, "speakers": 2, "dropped": {"bored": 10},
         "classes_absent": [], "short_clips": 5, "models": {"cnn_lstm": ["actor-0"]}}))
    out = tmp_path / "reports"
    report.run(params_file(tmp_path, corpora={"tess": data["corpora"]["tess"]}), runs,
               tmp_path / "manifest.csv", out)
    m = json.loads((out / "metrics.json").read_text())
    assert m["corpus.tess.svm_stats.top_share"] == 1.0 and m["corpus.tess.cnn_lstm.accuracy"] == 0.5
    rows = [r for r in (out / "report.md").read_text().splitlines() if r.startswith("| tess | ")]
    assert len(rows) == len(registry.FAMILIES)  # the corpus in the table of every setting
    assert rows[0].startswith("| tess | SVM | ") and "| 100% sad |" in rows[0]
    assert "corpus.tess.gap.cnn_lstm-svm_stats.accuracy_pp" in m
    assert m["corpus.tess.drop.cnn_lstm.accuracy_pp"] == pytest.approx(25.0)  # 75% -> 50%
    md = (out / "report.md").read_text()
    summary = md.split("## All families side by side")[1].split("\n\n")[1].splitlines()
    assert "| tess (unseen corpus) |" in summary[0]  # beside the protocols in the headline table
    assert summary[2].startswith("| SVM | 50.0 [") and "| 33.3 [" in summary[2]  # its tess cell
    assert summary[7].startswith("| gap, CNN-LSTM minus SVM (points; McNemar exact p) | +25.0 [")
    assert "| +16.7 [-1.7, +30.0], p 0.099 |" in summary[7]  # the corpus's gap and its test
    assert "## Unseen corpus: tess" in md and "100% sad" in md and "bored (10)" in md
    assert "clips are resampled, since 2 speakers are too few" in md
    assert (out / "figures" / "confusion_tess.png").stat().st_size > 5000


def test_the_report_applies_the_rule_for_predicts_default_families(tmp_path):
    """Of each SVM's two variants, the one more accurate under unseen speakers; a tie goes to the
    published one. The report says whether params.yaml's predict.families follows the rule."""
    out = tmp_path / "reports"
    (tmp_path / "tie").mkdir()
    (tmp_path / "cond").mkdir()
    tie = make_runs(tmp_path / "tie")
    report.run(params_file(tmp_path), tie, tmp_path / "tie" / "manifest.csv", out)
    m = json.loads((out / "metrics.json").read_text())
    assert m["predict.families_follow_the_rule"] == 0  # all 0.5: the published ones win
    assert "SVM (50.0%), eGeMAPS SVM (50.0%), CNN-LSTM (75.0%)" in (out / "report.md").read_text()
    assert "does NOT follow it" in (out / "report.md").read_text()
    better = make_runs(tmp_path / "cond", acc=(("svm_stats", 0.25), ("svm_stats_conditioned", 0.5),
                                               ("svm_egemaps", 0.5), ("svm_egemaps_conditioned", 0.75),
                                               ("cnn_lstm", 0.75)))
    report.run(params_file(tmp_path), better, tmp_path / "cond" / "manifest.csv", out)
    m = json.loads((out / "metrics.json").read_text())
    assert m["predict.families_follow_the_rule"] == 1
    assert "predict.families follows it" in (out / "report.md").read_text()
