import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import make_classification

from ser import svm
from ser.params import TrainSvm


def test_pipeline_steps_and_grid_from_params():
    p = TrainSvm(C=[1, 3], gamma=[0.01], cv_folds=3, pca_components=5, n_jobs=1)
    X, y = make_classification(n_samples=120, n_features=30, n_informative=8, n_classes=3,
                               random_state=0)
    model, search = svm.fit(X, y, p)
    assert [s for s, _ in svm.build_pipeline(p).steps] == ["scale", "select", "pca", "svc"]
    assert search.param_grid == {"svc__C": [1, 3], "svc__gamma": [0.01]}
    assert len(search.cv_results_["params"]) == 2 and search.n_splits_ == 3
    proba = model.predict_proba(X)
    assert proba.shape == (120, 3) and np.allclose(proba.sum(axis=1), 1)


def test_pca_is_capped_at_what_selection_leaves():
    p = TrainSvm(C=[1], gamma=[0.01], cv_folds=2, pca_components=140, p_value=0.01, n_jobs=1)
    X, y = make_classification(n_samples=80, n_features=20, n_informative=5, random_state=1)
    model, _ = svm.fit(X, y, p)
    pipe = svm.fitted_pipeline(model)
    kept = pipe.named_steps["select"].get_support().sum()
    assert 0 < kept < 20 and pipe.named_steps["pca"].n_components_ == kept
    assert pipe.named_steps["pca"].n_components == 140  # the param itself is left as given


def _write_inputs(tmp_path, n=150, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.array(["sad", "happy", "angry"])[rng.integers(0, 3, n)]
    split = np.array(["train"] * 100 + ["val"] * 30 + ["test"] * 20)
    feats = rng.normal(size=(n, 12)) + (labels == "sad")[:, None] * 1.5
    ids = [f"c{i:03d}" for i in range(n)]
    pd.DataFrame({"clip_id": ids, "split": split, "label": labels}).to_csv(tmp_path / "m.csv", index=False)
    df = pd.DataFrame(feats, index=pd.Index(ids, name="clip_id"), columns=[f"f{i}" for i in range(12)])
    return df, split


def test_no_leakage_fitted_on_training_rows_only(tmp_path):
    df, split = _write_inputs(tmp_path)
    df.iloc[100:] += 1000.0  # validation and test clips far away: any leak moves the scaler
    df.to_parquet(tmp_path / "f.parquet")
    data = yaml.safe_load(open("params.yaml"))
    data["train_svm"].update(C=[1], gamma=[0.01], cv_folds=3, pca_components=4, n_jobs=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    svm.run(tmp_path / "params.yaml", tmp_path / "f.parquet", tmp_path / "m.csv",
            tmp_path / "svm.joblib", tmp_path / "out")
    import joblib
    pipe = svm.fitted_pipeline(joblib.load(tmp_path / "svm.joblib"))
    assert np.allclose(pipe.named_steps["scale"].mean_, df.iloc[:100].mean().to_numpy())
    pred = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert list(pred.columns[:4]) == ["clip_id", "split", "label", "pred"]
    assert sorted(c for c in pred.columns if c.startswith("prob_")) == ["prob_angry", "prob_happy", "prob_sad"]
    assert set(pred["split"]) == {"val", "test"} and len(pred) == 50
    import json
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["C"] == 1 and m["gamma"] == 0.01 and 0 <= m["test"]["accuracy"] <= 1
    assert m["train_clips"] == 100


def test_missing_features_for_a_clip(tmp_path):
    df, _ = _write_inputs(tmp_path)
    df.iloc[:-1].to_parquet(tmp_path / "f.parquet")
    from ser.errors import SerError
    with pytest.raises(SerError, match="no features for clip c149"):
        svm.load_split_features(tmp_path / "f.parquet", tmp_path / "m.csv")
