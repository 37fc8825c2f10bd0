"""Every family's model file as a function from feature rows to class probabilities: what
`ser predict`, `ser serve` and the corpus stage run. The training stages never import it.

`read_model(family, path)` reads a file (ser.modelread: checked, no code runs) and returns its meta
and that function, by the family's kind: the network (ser.cnn_lstm, rebuilt from the constructor
arguments its file stores) or the SVM pipeline (ser.svm_pipeline, built from the types TRUSTED
lists, and run without scikit-learn's per-call checks: fast_proba).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.feature_selection import SelectFpr
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from ser import modelfile, modelread
from ser.cnn_lstm import CNNLSTM, prepare
from ser.errors import SerError
from ser.registry import Family
from ser.svm_pipeline import CappedPCA

Proba = Callable[[np.ndarray], np.ndarray]


def read_model(family: Family, path: Path) -> tuple[dict, Proba]:
    """(meta, proba): proba maps this family's feature rows to probabilities in meta["classes"]'
    order. The reader is the one of the family's kind of model: its training stage."""
    reader = READERS.get(family.stage)
    if reader is None:
        raise SerError(f"no reader of model files for family {family.name!r} (stage {family.stage})")
    return reader(path, family.name)


def read_cnn_lstm(path: Path, *, bf16: bool | str = "auto") -> tuple[dict, Proba]:
    """A CNN-LSTM model file: (its meta, a function from log-mel windows (segments, windows, mels,
    frames) to class probabilities in meta["classes"]' order). Precision is the reader's: bf16
    where the processor has it (bf16="auto"), else fp32; channels-last on the CPU."""
    meta, data = modelread.read(path, modelfile.WEIGHTS, family="cnn_lstm")
    state = modelread.tensors_from(data, path)
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise SerError(f"{path}: non-finite weights in {len(bad)} of {len(state)} tensors "
                       f"({bad[0]}, ...): refused")
    try:
        raw = CNNLSTM(len(meta["classes"]), **meta["network"])
        raw.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise SerError(f"{path}: network and weights do not match ({str(err).splitlines()[0]})") from None
    model, autocast = prepare(raw, device="cpu", channels_last=True, bf16=bf16)
    model.eval()

    @torch.no_grad()
    def proba(x: np.ndarray, batch: int = 64) -> np.ndarray:
        xb = torch.from_numpy(np.asarray(x, dtype=np.float32))
        logits = []
        for i in range(0, len(xb), batch):
            with autocast():
                logits.append(model(xb[i:i + batch]).float())
        return torch.softmax(torch.cat(logits), 1).numpy()
    return meta, proba


# Every type a fitted model holds (skops names them so); loading builds these and no other.
TRUSTED = [
    "sklearn.calibration.CalibratedClassifierCV", "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration", "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler", "sklearn.feature_selection._univariate_selection.SelectFpr",
    "sklearn.feature_selection._univariate_selection.f_classif", "sklearn.svm._classes.SVC",
    f"{CappedPCA.__module__}.CappedPCA",
]


def read_svm(path: Path, family: str) -> tuple[dict, Proba]:
    """An SVM family's model file: (its meta, a function from feature rows (meta["columns"] in
    order) to class probabilities in meta["classes"]' order)."""
    meta, data = modelread.read(path, modelfile.ESTIMATOR, family=family)
    model = modelread.estimator_from(data, TRUSTED, path)
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


# How each training stage's model files are read: (path, family name) -> (meta, proba).
READERS: dict[str, Callable[[Path, str], tuple[dict, Proba]]] = {
    "train_cnn_lstm": lambda path, family: read_cnn_lstm(path),
    "train_svm": read_svm,
}
