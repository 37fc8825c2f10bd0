import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import make_classification

from conftest import section
from ser import inference, modelfile, modelread, svm_pipeline as svm
from ser.errors import SerError
from ser.features import stats
from ser.runs import read_predictions
from ser.stages import train_svm


def test_pipeline_steps_and_grid_from_params():
    p = section("train_svm", C=[1, 3], gamma=[0.01], cv_folds=3, pca_components=5)
    X, y = make_classification(n_samples=120, n_features=30, n_informative=8, n_classes=3,
                               random_state=0)
    model, search = svm.fit(X, y, p)
    assert [s for s, _ in svm.build_pipeline(p).steps] == ["scale", "select", "pca", "svc"]
    assert search.param_grid == {"svc__C": [1, 3], "svc__gamma": [0.01]}
    assert len(search.cv_results_["params"]) == 2 and search.n_splits_ == 3
    proba = model.predict_proba(X)
    assert proba.shape == (120, 3) and np.allclose(proba.sum(axis=1), 1)


def test_the_grid_search_chooses_the_same_model_whatever_n_jobs():
    """The e2e pipeline runs the search in one process (its worker start-up dwarfs its tiny
    grid); the real one uses every core: both give the same fitted model."""
    X, y = make_classification(n_samples=120, n_features=30, n_informative=8, n_classes=3,
                               random_state=0)
    fits = [svm.fit(X, y, section("train_svm", C=[1, 3], gamma=[0.01, 0.05], cv_folds=3,
                                  pca_components=5), n_jobs=jobs) for jobs in (1, 2)]
    (m1, s1), (m2, s2) = fits
    assert s1.best_params_ == s2.best_params_
    assert np.array_equal(s1.cv_results_["mean_test_score"], s2.cv_results_["mean_test_score"])
    assert np.array_equal(m1.predict_proba(X), m2.predict_proba(X))


@pytest.mark.parametrize("pca", [5, 0])
def test_the_fast_probabilities_are_scikit_learns_bit_for_bit(pca):
    """inference.fast_proba skips scikit-learn's input checks, not one of its operations."""
    p = section("train_svm", C=[1, 3], gamma=[0.01, 0.05], cv_folds=3, pca_components=pca)
    X, y = make_classification(n_samples=140, n_features=30, n_informative=8, n_classes=7,
                               n_clusters_per_class=1, random_state=2)
    model, _ = svm.fit(X, y, p)
    fast = inference.fast_proba(model)
    assert fast is not model.predict_proba  # the fast path, not the fallback
    rng = np.random.default_rng(0)
    for x in (X[:1], X, rng.normal(size=(9, 30)) * 3, X[:5][:, ::-1].copy()):
        assert np.array_equal(fast(x), model.predict_proba(x))


def test_pca_is_capped_at_what_selection_leaves():
    p = section("train_svm", C=[1], gamma=[0.01], cv_folds=2, pca_components=140, p_value=0.01)
    X, y = make_classification(n_samples=80, n_features=20, n_informative=5, random_state=1)
    model, _ = svm.fit(X, y, p)
    pipe = svm.fitted_pipeline(model)
    kept = pipe.named_steps["select"].get_support().sum()
    assert 0 < kept < 20 and pipe.named_steps["pca"].n_components_ == kept
    assert pipe.named_steps["pca"].n_components == 140  # the param itself is left as given


def _write_inputs(tmp_path, n=150, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.array(["sad", "happy", "angry"])[rng.integers(0, 3, n)]
    split = np.array(["train"] * 100 + ["val"] * 30 + ["test"] * (n - 130))
    p = section("features_stats")
    columns = stats.columns(p)  # a stats table as the features stage writes it, of random values
    feats = rng.normal(size=(n, len(columns))) + (labels == "sad")[:, None] * 1.5
    ids = [f"c{i:03d}" for i in range(n)]
    pd.DataFrame({"clip_id": ids, "actor": np.arange(n) % 10 + 1, "label": labels,
                  "split": split}).to_csv(tmp_path / "fold.csv", index=False)
    df = pd.DataFrame(feats, index=pd.Index(ids, name="clip_id"), columns=columns)
    df.attrs = {"family": "stats", "params": p.saved()}
    return df, split


def _params(tmp_path, **svm_params):
    data = yaml.safe_load(open("params.yaml"))
    data["train_svm"].update(C=[1], gamma=[0.01], cv_folds=3, pca_components=4, **svm_params)
    data["runtime"]["n_jobs"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "params.yaml"


def test_no_leakage_fitted_on_training_rows_only(tmp_path):
    df, split = _write_inputs(tmp_path)
    df.iloc[100:] += 1000.0  # validation and test clips far away: any leak moves the scaler
    df.to_parquet(tmp_path / "f.parquet")
    train_svm.run(_params(tmp_path), "svm_stats", "random-0", tmp_path / "fold.csv",
                  tmp_path / "f.parquet", tmp_path / "svm.model", tmp_path / "out")
    meta, data = modelread.read(tmp_path / "svm.model", modelfile.ESTIMATOR, family="svm_stats")
    assert meta["run"] == "random-0" and meta["protocol"] == "random" and meta["fold"] == 0
    assert meta["classes"] == ["happy", "sad", "angry"]  # the protocol's order
    pipe = svm.fitted_pipeline(modelread.estimator_from(data, inference.TRUSTED, tmp_path / "svm.model"))
    assert np.allclose(pipe.named_steps["scale"].mean_, df.iloc[:100].mean().to_numpy())
    pred = read_predictions(tmp_path / "out" / "predictions.csv")  # checked: pred is the argmax
    assert list(pred.columns[:4]) == ["clip_id", "split", "label", "pred"]
    assert sorted(c for c in pred.columns if c.startswith("prob_")) == ["prob_angry", "prob_happy", "prob_sad"]
    assert set(pred["split"]) == {"val", "test"} and len(pred) == 50
    import json
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["C"] == 1 and m["gamma"] == 0.01 and 0 <= m["test"]["accuracy"] <= 1
    assert m["train_clips"] == 100


def test_pred_is_the_most_probable_class(tmp_path):
    """The SVC's own decision and the calibrated probabilities disagree on some clips; the table
    says the probabilities' top class, so a reader of either finds the same answer."""
    df, _ = _write_inputs(tmp_path, n=400, seed=3)
    df.to_parquet(tmp_path / "f.parquet")
    train_svm.run(_params(tmp_path), "svm_stats", "random-0", tmp_path / "fold.csv",
                  tmp_path / "f.parquet", tmp_path / "svm.model", tmp_path / "out")
    pred = pd.read_csv(tmp_path / "out" / "predictions.csv")
    probs = pred[[c for c in pred.columns if c.startswith("prob_")]]
    assert (probs.idxmax(axis=1).str.removeprefix("prob_") == pred["pred"]).all()


def test_inner_cv_is_grouped_by_actor_under_the_actor_protocol():
    p = section("train_svm", cv_folds=4)
    y = np.array(["a", "b"] * 40)
    actors = np.repeat(np.arange(1, 9), 10)
    for train, val in svm.inner_folds(y, actors, p):
        assert not set(actors[train]) & set(actors[val])  # no speaker on both sides
    mixed = [set(actors[t]) & set(actors[v]) for t, v in svm.inner_folds(y, None, p)]
    assert any(mixed)  # without groups, speakers are shared (what the actor protocol forbids)
    with pytest.raises(SerError, match="cv_folds is 10 but the training clips have only 8 actors"):
        svm.inner_folds(y, actors, section("train_svm", cv_folds=10))


def test_model_file_loads_in_any_program_and_is_the_same_bytes(tmp_path):
    """Run as `python -m ser.stages.train_svm`, the model file loads in another program (skops,
    trusted types only) with the same probabilities, and a second run writes the same bytes."""
    import subprocess
    import sys
    df, _ = _write_inputs(tmp_path)
    df.to_parquet(tmp_path / "f.parquet")
    for name in ("a", "b"):
        r = subprocess.run([sys.executable, "-m", "ser.stages.train_svm", "--params",
                            str(_params(tmp_path)), "--family", "svm_stats",
                            "--run", "actor-0", "--folds", str(tmp_path / "fold.csv"),
                            "--features", str(tmp_path / "f.parquet"), "--model",
                            str(tmp_path / f"{name}.model"), "--out", str(tmp_path / f"out_{name}")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "a.model").read_bytes() == (tmp_path / "b.model").read_bytes()
    code = ("import numpy as np; from pathlib import Path; from ser.inference import read_svm as read_model; "
            f"m, p = read_model(Path({str(tmp_path / 'a.model')!r}), 'svm_stats'); "
            "print(m['protocol'], p(np.zeros((1, 200))).shape)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "actor (1, 3)", r.stderr


def test_missing_features_for_a_clip(tmp_path):
    df, _ = _write_inputs(tmp_path)
    df.iloc[:-1].to_parquet(tmp_path / "f.parquet")
    with pytest.raises(SerError, match="no features for clip c149"):
        train_svm.run(_params(tmp_path), "svm_stats", "random-0", tmp_path / "fold.csv",
                      tmp_path / "f.parquet", tmp_path / "svm.model", tmp_path / "out")
