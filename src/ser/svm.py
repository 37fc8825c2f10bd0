"""Stage train_svm: the classical baseline, an RBF SVM on the clips' 200 global statistics.

    python -m ser.svm --features data/features/stats.parquet \
        --manifest data/prepared/manifest.csv --model data/models/svm.joblib --out reports/svm

One scikit-learn Pipeline fitted on the training clips only: StandardScaler -> ANOVA F-test
selection (p < p_value) -> PCA -> SVC(rbf), with C and gamma chosen by stratified k-fold
grid search on the training clips. Probabilities are calibrated decision scores
(CalibratedClassifierCV with sigmoid calibration on cross-validated scores, ensemble=False:
one pipeline refitted on all training clips); `pred` is that pipeline's SVC.predict.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.feature_selection import SelectFpr, f_classif
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from ser.errors import SerError, run_cli
from ser.evaluate import predictions_frame, split_summaries
from ser.io import atomic_path, write_json
from ser.labels import class_names
from ser.params import TrainSvm, load_params

log = logging.getLogger("train_svm")


class CappedPCA(PCA):
    """PCA whose n_components is capped at what the data it is fitted on allows.

    The number of features left by the selection step is only known at fit time, and differs
    between cross-validation folds.
    """

    def _capped(self, method, X, y=None):
        requested = self.n_components
        if isinstance(requested, int):
            self.n_components = min(requested, *X.shape)
        try:
            return method(X, y)
        finally:
            self.n_components = requested

    def fit(self, X, y=None):
        return self._capped(super().fit, X, y)

    def fit_transform(self, X, y=None):
        return self._capped(super().fit_transform, X, y)


def build_pipeline(p: TrainSvm) -> Pipeline:
    steps = [("scale", StandardScaler()), ("select", SelectFpr(f_classif, alpha=p.p_value))]
    if p.pca_components:
        steps.append(("pca", CappedPCA(n_components=p.pca_components, random_state=p.seed)))
    steps.append(("svc", SVC(kernel="rbf", random_state=p.seed)))
    return Pipeline(steps)


def fit(X: np.ndarray, y: np.ndarray, p: TrainSvm) -> tuple[CalibratedClassifierCV, GridSearchCV]:
    """Grid-search C and gamma, then refit the best pipeline, calibrated, on all of X."""
    cv = StratifiedKFold(n_splits=p.cv_folds, shuffle=True, random_state=p.seed)
    search = GridSearchCV(build_pipeline(p), {"svc__C": p.C, "svc__gamma": p.gamma},
                          scoring="accuracy", cv=cv, n_jobs=p.n_jobs, refit=False)
    try:
        search.fit(X, y)
    except ValueError as err:
        raise SerError(f"train_svm: grid search failed ({str(err).splitlines()[0]})") from None
    best = clone(build_pipeline(p)).set_params(**search.best_params_)
    model = CalibratedClassifierCV(best, method="sigmoid", cv=cv, ensemble=False).fit(X, y)
    return model, search


def fitted_pipeline(model: CalibratedClassifierCV) -> Pipeline:
    """The pipeline inside the calibrated model, fitted on all training clips."""
    return model.calibrated_classifiers_[0].estimator


def load_split_features(features: Path, manifest_path: Path) -> pd.DataFrame:
    """The statistics joined with each clip's split and label, in manifest order."""
    try:
        feats = pd.read_parquet(features)
        manifest = pd.read_csv(manifest_path, dtype={"clip_id": str})
    except FileNotFoundError as err:
        raise SerError(f"{err.filename}: not found (run the earlier stages first)") from None
    missing = set(manifest["clip_id"]) - set(feats.index)
    if missing:
        raise SerError(f"{features}: no features for clip {sorted(missing)[0]} of the manifest")
    return manifest[["clip_id", "split", "label"]].join(feats, on="clip_id")


def run(params_path: Path, features: Path, manifest_path: Path, model_path: Path, out: Path) -> dict:
    params = load_params(params_path)
    p = params.train_svm
    df = load_split_features(features, manifest_path)
    cols = [c for c in df.columns if c not in ("clip_id", "split", "label")]
    train = df[df["split"] == "train"]
    log.info("grid search over %d C x %d gamma, %d-fold CV on %d training clips, %d features",
             len(p.C), len(p.gamma), p.cv_folds, len(train), len(cols))
    t0 = time.perf_counter()
    model, search = fit(train[cols].to_numpy(), train["label"].to_numpy(), p)
    seconds = time.perf_counter() - t0
    classes = [c for c in class_names(params.prepare.classes) if c in set(model.classes_)]
    order = [list(model.classes_).index(c) for c in classes]
    evals = df[df["split"].isin(["val", "test"])]
    X = evals[cols].to_numpy()
    pred = predictions_frame(evals["clip_id"], evals["split"], evals["label"],
                             model.predict_proba(X)[:, order], classes,
                             pred=fitted_pipeline(model).predict(X))  # the SVC's own decision
    with atomic_path(model_path) as tmp:
        joblib.dump(model, tmp)
    with atomic_path(out / "predictions.csv") as tmp:
        pred.to_csv(tmp, index=False)
    pipe = fitted_pipeline(model)
    selected = int(pipe.named_steps["select"].get_support().sum())
    metrics = {**split_summaries(pred), "C": search.best_params_["svc__C"],
               "gamma": search.best_params_["svc__gamma"], "cv_accuracy": search.best_score_,
               "selected_features": selected,
               "pca_components": int(pipe.named_steps["pca"].n_components_) if p.pca_components else 0,
               "train_clips": len(train), "fit_time_s": round(seconds, 1)}
    write_json(out / "metrics.json", metrics)
    log.info("C %g, gamma %g (CV acc %.3f, %d features kept): val acc %.3f, test acc %.3f, %.0f s",
             metrics["C"], metrics["gamma"], metrics["cv_accuracy"], selected,
             metrics.get("val", {}).get("accuracy", np.nan),
             metrics.get("test", {}).get("accuracy", np.nan), seconds)
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    run(a.params, a.features, a.manifest, a.model, a.out)


if __name__ == "__main__":
    run_cli(main)
