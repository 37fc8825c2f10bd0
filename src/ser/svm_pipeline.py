"""The classical families' model: the reference's SVM pipeline, on any feature table.

StandardScaler -> ANOVA F-test selection (p < p_value) -> PCA -> SVC(rbf), with C and gamma
chosen by k-fold grid search on the training clips: stratified for the random and holdout
protocols, grouped by actor for the actor protocol (no speaker in both an inner training and an
inner validation fold). Probabilities are calibrated decision scores (CalibratedClassifierCV,
sigmoid, on the same inner folds, ensemble=False: one pipeline refitted on all training clips).

Model files hold the fitted model in skops' format (ser.modelfile); ser.inference reads them.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.feature_selection import SelectFpr, f_classif
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

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


def fit(X: np.ndarray, y: np.ndarray, p: TrainSvm, groups: np.ndarray | None = None,
        n_jobs: int = 1) -> tuple[CalibratedClassifierCV, GridSearchCV]:
    """Grid-search C and gamma (n_jobs processes: the same model whatever their number), then
    refit the best pipeline, calibrated, on all of X."""
    cv = inner_folds(y, groups, p)
    search = GridSearchCV(build_pipeline(p), {"svc__C": p.C, "svc__gamma": p.gamma},
                          scoring="accuracy", cv=cv, n_jobs=n_jobs, refit=False)
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
