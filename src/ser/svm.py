"""Stage train_svm: the classical baseline, an RBF SVM on the clips' global statistics, one run.

    python -m ser.svm --run random-0 --folds data/folds/random-0.csv \
        --features data/features/stats.parquet --model data/models/svm/random-0.joblib \
        --out data/runs/svm/random-0

One scikit-learn Pipeline fitted on the run's training clips only: StandardScaler -> ANOVA
F-test selection (p < p_value) -> PCA -> SVC(rbf), with C and gamma chosen by k-fold grid
search on the training clips: stratified for the random and holdout protocols, grouped by actor
for the actor protocol (no speaker in both an inner training and an inner validation fold).
Probabilities are calibrated decision scores (CalibratedClassifierCV, sigmoid, on the same
inner folds, ensemble=False: one pipeline refitted on all training clips), and `pred` is their
most probable class, as everywhere else.

The training validation clips are not used: the SVM has no early stopping, so they only
add to its evaluation (written with split "val").
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.feature_selection import SelectFpr, f_classif
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from ser.errors import SerError, run_cli
from ser.evaluate import predictions_frame, split_summaries
from ser.store import load_stats, read_fold
from ser.io import atomic_path, write_json
from ser.labels import class_names
from ser.params import TrainSvm, load_params, parse_run

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


def inner_folds(y: np.ndarray, groups: np.ndarray | None, p: TrainSvm) -> list:
    """The grid search's folds: stratified, or grouped (by actor) when groups are given."""
    if groups is None:
        cv = StratifiedKFold(n_splits=p.cv_folds, shuffle=True, random_state=p.seed)
    elif len(set(groups)) < p.cv_folds:
        raise SerError(f"train_svm.cv_folds is {p.cv_folds} but the training clips have only "
                       f"{len(set(groups))} actors to group by")
    else:
        cv = StratifiedGroupKFold(n_splits=p.cv_folds, shuffle=True, random_state=p.seed)
    try:
        return list(cv.split(np.zeros(len(y)), y, groups))
    except ValueError as err:
        raise SerError(f"train_svm: cannot make {p.cv_folds} inner folds ({err})") from None


def fit(X: np.ndarray, y: np.ndarray, p: TrainSvm,
        groups: np.ndarray | None = None) -> tuple[CalibratedClassifierCV, GridSearchCV]:
    """Grid-search C and gamma, then refit the best pipeline, calibrated, on all of X."""
    cv = inner_folds(y, groups, p)
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


def run(params_path: Path, run_name: str, fold_path: Path, features: Path, model_path: Path,
        out: Path) -> dict:
    params = load_params(params_path)
    p = params.train_svm
    protocol, k = parse_run(run_name)
    fold = read_fold(fold_path)
    feats = load_stats(features)
    missing = set(fold["clip_id"]) - set(feats.index)
    if missing:
        raise SerError(f"{features}: no statistics for clip {sorted(missing)[0]} of {fold_path}")
    cols = list(feats.columns)
    df = fold.join(feats, on="clip_id")
    train = df[df["split"] == "train"]
    groups = train["actor"].to_numpy() if protocol == "actor" else None
    log.info("%s: grid search over %d C x %d gamma, %d-fold %s CV on %d training clips, %d features",
             run_name, len(p.C), len(p.gamma), p.cv_folds,
             "actor-grouped" if groups is not None else "stratified", len(train), len(cols))
    t0 = time.perf_counter()
    model, search = fit(train[cols].to_numpy(), train["label"].to_numpy(), p, groups)
    seconds = time.perf_counter() - t0
    classes = [c for c in class_names(params.prepare.classes) if c in set(model.classes_)]
    order = [list(model.classes_).index(c) for c in classes]
    evals = df[df["split"].isin(["val", "test"])]
    pred = predictions_frame(evals["clip_id"], evals["split"], evals["label"],
                             model.predict_proba(evals[cols].to_numpy())[:, order], classes)
    with atomic_path(model_path) as tmp:
        joblib.dump({"kind": "svm", "model": model, "classes": classes, "columns": cols,
                     "params": p.model_dump(), "features": feats.attrs.get("params"),
                     "run": run_name, "protocol": protocol, "fold": k}, tmp)
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
    log.info("%s: C %g, gamma %g (CV acc %.3f, %d features kept): val acc %.3f, test acc %.3f, "
             "%.0f s", run_name, metrics["C"], metrics["gamma"], metrics["cv_accuracy"], selected,
             metrics["val"]["accuracy"], metrics["test"]["accuracy"], seconds)
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--run", required=True, help="the run, e.g. random-0 (protocol-fold)")
    ap.add_argument("--folds", type=Path, required=True, help="the run's table of the folds stage")
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    run(a.params, a.run, a.folds, a.features, a.model, a.out)


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy's: the model file then pickles
    # CappedPCA as ser.svm.CappedPCA, which any program that imports the package can load.
    from ser import svm
    run_cli(svm.main)
