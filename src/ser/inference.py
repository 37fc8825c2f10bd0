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
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from ser import modelfile, modelread
from ser.cnn_lstm import CNNLSTM, prepare
from ser.errors import SerError
from ser.labels import EMOTIONS
from ser.params import TrainCnnLstm
from ser.registry import Family
from ser.svm_pipeline import CappedPCA

Proba = Callable[[np.ndarray], np.ndarray]


Check = Callable[[dict], None]


def read_model(family: Family, path: Path, check: Check | None = None) -> tuple[dict, Proba]:
    """(meta, proba): proba maps this family's feature rows to probabilities in meta["classes"]'
    order. The reader is the one of the family's kind of model: its training stage. `check(meta)`
    runs before the payload is read or anything built (the caller's checks: place, features)."""
    reader = READERS.get(family.stage)
    if reader is None:
        raise SerError(f"no reader of model files for family {family.name!r} (stage {family.stage})")
    return reader(path, family.name, check)


MAX_BLOCKS = 16  # convolution blocks or LSTM layers a file may declare (the reference has 4 and 1)


def _classes(meta: dict, path: Path) -> list[str]:
    """meta["classes"]: distinct emotions of ser.labels, checked before anything is sized by it."""
    classes = meta.get("classes")
    if (not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes)
            or len(set(classes)) != len(classes) or not set(classes) <= set(EMOTIONS.values())):
        raise SerError(f"{path}: classes {str(classes)[:80]} are not distinct emotions of "
                       f"{', '.join(EMOTIONS.values())}: refused")
    return classes


def _network(meta: dict, state: dict, path: Path) -> CNNLSTM:
    """The network meta["network"] declares, checked before it is built: each argument by the
    train_cnn_lstm params' schema and MAX_BLOCKS, one window's shape by the file's feature params,
    and every tensor's shape (built on PyTorch's meta device: no memory) by the weights', whose
    size modelread bounds. So a file declaring a huge network is refused, not built."""
    net, n = meta.get("network"), len(_classes(meta, path))
    if not isinstance(net, dict):
        raise SerError(f"{path}: holds no network arguments: refused")
    err = TrainCnnLstm.first_error({k: v for k, v in net.items() if k in TrainCnnLstm.model_fields})
    if err is None and max(len(net.get("filters") or []), net.get("lstm_layers") or 0) > MAX_BLOCKS:
        err = f"more than {MAX_BLOCKS} blocks or LSTM layers"
    feats = (meta.get("features") or {}).get("params") or {}
    shape = [feats.get("n_mels"), feats.get("win_size")]
    if err is None and net.get("input_shape") != shape:
        err = f"input_shape {str(net.get('input_shape'))[:40]} is not its features' (n_mels, win_size) {shape}"
    if err:
        raise SerError(f"{path}: network {err}: refused")
    try:
        with torch.device("meta"):  # built without memory or initialisation, then given the weights
            raw = CNNLSTM(n, **net)
        declared = raw.state_dict()
        for of in (lambda v: tuple(v.shape), lambda v: v.dtype):  # shapes, then precisions
            want = {k: of(v) for k, v in declared.items()}
            got = {k: of(v) for k, v in state.items()}
            if want != got:
                k = next(k for k in sorted(want.keys() | got.keys()) if want.get(k) != got.get(k))
                raise ValueError(f"{k}: {want.get(k)} declared, {got.get(k)} in the weights")
        raw.load_state_dict(state, assign=True)
        if any(t.is_meta for t in (*raw.parameters(), *raw.buffers())):
            raise ValueError("a tensor the weights do not hold")
    except (TypeError, ValueError, RuntimeError) as err:
        raise SerError(f"{path}: network and weights do not match ({str(err).splitlines()[0]})") from None
    return raw


def read_cnn_lstm(path: Path, *, bf16: bool | str = "auto", check: Check | None = None
                  ) -> tuple[dict, Proba]:
    """A CNN-LSTM model file: (its meta, a function from log-mel windows (segments, windows, mels,
    frames) to class probabilities in meta["classes"]' order). Precision is the reader's: bf16
    where the processor has it (bf16="auto"), else fp32; channels-last on the CPU."""
    meta, data = modelread.read(path, modelfile.WEIGHTS, family="cnn_lstm", check=check)
    state = modelread.tensors_from(data, path)
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise SerError(f"{path}: non-finite weights in {len(bad)} of {len(state)} tensors "
                       f"({bad[0]}, ...): refused")
    raw = _network(meta, state, path)
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


def read_svm(path: Path, family: str, check: Check | None = None) -> tuple[dict, Proba]:
    """An SVM family's model file: (its meta, a function from feature rows (meta["columns"] in
    order) to class probabilities in meta["classes"]' order)."""
    meta, data = modelread.read(path, modelfile.ESTIMATOR, family=family, check=check)
    classes = _classes(meta, path)
    model = modelread.estimator_from(data, TRUSTED, path)
    _check_svm(model, meta, path)
    try:
        order = [list(model.classes_).index(c) for c in classes]
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


def _is_svm_pipeline(est: object) -> bool:
    steps = getattr(est, "steps", None)
    return (type(est) is Pipeline and bool(steps) and type(steps[-1][1]) is SVC
            and all(type(t) in (StandardScaler, SelectFpr, CappedPCA) for _, t in steps[:-1]))


def _check_svm(model: object, meta: dict, path: Path) -> None:
    """What train_svm writes and nothing else: a calibrated pipeline of TRUSTED steps ending in
    an SVC, taking as many features as meta["columns"] names. skops builds some types it trusts
    by default (a DummyClassifier, say) that no model of this project holds: refused here."""
    ccs = getattr(model, "calibrated_classifiers_", None) if type(model) is CalibratedClassifierCV else None
    ok = bool(ccs) and all(_is_svm_pipeline(getattr(cc, "estimator", None)) for cc in ccs)
    if not ok:
        raise SerError(f"{path}: holds a {type(model).__name__}, not the calibrated SVM pipeline "
                       "train_svm writes: refused")
    columns = meta.get("columns")
    if not isinstance(columns, list) or getattr(model, "n_features_in_", None) != len(columns):
        raise SerError(f"{path}: its estimator takes {getattr(model, 'n_features_in_', '?')} features, "
                       f"its meta names {len(columns) if isinstance(columns, list) else 'no'} columns: refused")


# How each training stage's model files are read: (path, family name, check) -> (meta, proba).
READERS: dict[str, Callable[[Path, str, Check | None], tuple[dict, Proba]]] = {
    "train_cnn_lstm": lambda path, family, check: read_cnn_lstm(path, check=check),
    "train_svm": read_svm,
}
