"""The classical families' model: the reference's SVM pipeline, on any feature table.

StandardScaler -> ANOVA F-test selection (p < p_value) -> PCA -> SVC(rbf), with C and gamma
chosen by k-fold grid search on the training clips: stratified for the random and holdout
protocols, grouped by actor for the actor protocol (no speaker in both an inner training and an
inner validation fold). Probabilities are calibrated decision scores (CalibratedClassifierCV,
sigmoid, on the same inner folds, ensemble=False: one pipeline refitted on all training clips).

Model files hold the fitted model in skops' format; TRUSTED lists every type it may contain, and
loading refuses any other (ser.modelfile).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.feature_selection import SelectFpr, f_classif
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from ser import modelfile
from ser.errors import SerError
from ser.params import TrainSvm


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



# Every type a fitted model holds (skops names them so); loading builds these and no other.
TRUSTED = [
    "sklearn.calibration.CalibratedClassifierCV", "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration", "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler", "sklearn.feature_selection._univariate_selection.SelectFpr",
    "sklearn.feature_selection._univariate_selection.f_classif", "sklearn.svm._classes.SVC",
    f"{CappedPCA.__module__}.CappedPCA",
]


def read_model(path: Path, family: str) -> tuple[dict, Callable[[np.ndarray], np.ndarray]]:
    """An SVM family's model file: (its meta, a function from feature rows (meta["columns"] in
    order) to class probabilities in meta["classes"]' order)."""
    meta, data = modelfile.read(path, modelfile.ESTIMATOR, family=family)
    model = modelfile.estimator_from(data, TRUSTED, path)
    try:
        order = [list(model.classes_).index(c) for c in meta["classes"]]
    except (AttributeError, KeyError, ValueError):
        raise SerError(f"{path}: the estimator's classes do not match the file's") from None

    fast = fast_proba(model)

    def proba(x: np.ndarray) -> np.ndarray:
        return fast(np.asarray(x, dtype=float))[:, order]
    return meta, proba


def fast_proba(model: CalibratedClassifierCV) -> Callable[[np.ndarray], np.ndarray]:
    """model.predict_proba without scikit-learn's checks of every input at every step, which
    cost 7 ms a call (most of a corpus clip's SVM time: benchmarks/README.md): the same
    operations on the fitted arrays in the same order, so the same bits (tests/test_svm.py
    compares them on fitted models). A model of another shape keeps predict_proba."""
    from scipy.special import expit
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils.multiclass import _ovr_decision_function

    plans = []
    for cc in model.calibrated_classifiers_:
        *steps, (_, svc) = cc.estimator.steps
        if (cc.method != "sigmoid" or not isinstance(svc, SVC) or svc.decision_function_shape != "ovr"
                or len(cc.classes) < 3 or callable(svc.kernel) or svc._sparse
                or not all(type(t) in (StandardScaler, SelectFpr, CappedPCA, PCA) for _, t in steps)
                or any(isinstance(t, PCA) and t.whiten for _, t in steps)):
            return model.predict_proba
        pos = LabelEncoder().fit(cc.classes).transform(svc.classes_)
        plans.append(([t for _, t in steps], svc, pos, cc.calibrators, len(cc.classes)))

    def transform(t, x: np.ndarray) -> np.ndarray:
        if isinstance(t, StandardScaler):  # its transform: a copy, centred then scaled in place
            x = x.copy()
            if t.with_mean:
                x -= t.mean_.astype(x.dtype)
            if t.with_std:
                x /= t.scale_.astype(x.dtype)
            return x
        if isinstance(t, SelectFpr):
            return x[:, t.get_support()]
        return t._transform(x, xp=np)  # PCA: project, then centre the projection

    def proba(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        mean = np.zeros((len(x), len(model.classes_)))
        for steps, svc, pos, calibrators, n_classes in plans:
            z = x
            for t in steps:
                z = transform(t, z)
            dec = svc._dense_decision_function(np.ascontiguousarray(z))
            dec = _ovr_decision_function(dec < 0, -dec, len(svc.classes_))
            p = np.zeros((len(x), n_classes))
            for k, col, cal in zip(pos, dec.T, calibrators):
                p[:, k] = expit(-(cal.a_ * col + cal.b_))
            den = np.sum(p, axis=1)[:, np.newaxis]
            p = np.divide(p, den, out=np.full_like(p, 1 / n_classes), where=den != 0)
            p[(1.0 < p) & (p <= 1.0 + 1e-5)] = 1.0
            mean += p
        mean /= len(plans)
        return mean
    return proba
