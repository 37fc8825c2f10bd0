"""The report's statistics: metrics with bootstrap intervals, paired gaps, McNemar's test.

Every interval is a percentile bootstrap computed from resampling weights: one row of weights
per resample, one column per clip. Resampling clips draws clips with replacement (multinomial
counts); resampling clusters (actors) draws actors with replacement and gives each clip its
actor's count, since clips of one speaker are not independent. A paired comparison uses the
same weights for both sides. Every metric is read off a weighted confusion matrix, so one
matrix product per model serves every metric of every resample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

SUMMARY = ("accuracy", "balanced_accuracy", "macro_f1")


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def fmt(self, scale: float = 100.0, digits: int = 1) -> str:
        return (f"{self.value * scale:.{digits}f} "
                f"[{self.low * scale:.{digits}f}, {self.high * scale:.{digits}f}]")


def resample_weights(n: int, n_resamples: int, seed: int,
                     clusters: np.ndarray | None = None) -> np.ndarray:
    """(n_resamples, n) bootstrap weights: clips drawn with replacement, or whole clusters."""
    rng = np.random.default_rng(seed)
    if clusters is None:
        return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(float)
    ids, code = np.unique(np.asarray(clusters), return_inverse=True)
    counts = rng.multinomial(len(ids), np.full(len(ids), 1.0 / len(ids)), size=n_resamples)
    return counts[:, code].astype(float)


def confusions(y: np.ndarray, pred: np.ndarray, classes: list[str], weights: np.ndarray) -> np.ndarray:
    """(rows of weights, K, K) weighted confusion matrices, true class along axis 1."""
    k = len(classes)
    code = {c: i for i, c in enumerate(classes)}
    cell = np.array([code[a] * k + code[b] for a, b in zip(y, pred)], dtype=int)
    onehot = np.zeros((len(cell), k * k))
    onehot[np.arange(len(cell)), cell] = 1.0
    return (np.atleast_2d(weights) @ onehot).reshape(-1, k, k)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b > 0)


def metrics_of(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy, macro-F1 and per-class P/R/F1 of each confusion matrix, as
    scikit-learn defines them (balanced accuracy over the classes present; F1 0 when undefined)."""
    diag = np.diagonal(cm, axis1=1, axis2=2)
    rows, cols = cm.sum(axis=2), cm.sum(axis=1)
    recall, precision = _div(diag, rows), _div(diag, cols)
    f1 = _div(2 * precision * recall, precision + recall)
    present = rows > 0
    return {"accuracy": _div(diag.sum(axis=1), cm.sum(axis=(1, 2))),
            "balanced_accuracy": _div((recall * present).sum(axis=1), present.sum(axis=1)),
            "macro_f1": f1.mean(axis=1), "precision": precision, "recall": recall, "f1": f1}


def _interval(value: float, boot: np.ndarray, confidence: float) -> Interval:
    a = (1 - confidence) / 2
    lo, hi = np.quantile(boot, [a, 1 - a])
    return Interval(float(value), float(lo), float(hi))


def model_metrics(y: np.ndarray, pred: np.ndarray, classes: list[str], weights: np.ndarray,
                  confidence: float) -> dict[str, Interval]:
    """SUMMARY and per-class precision / recall / F1 (keys like 'f1.sad'), each with its interval."""
    point = metrics_of(confusions(y, pred, classes, np.ones(len(y))))
    boot = metrics_of(confusions(y, pred, classes, weights))
    out = {k: _interval(point[k][0], boot[k], confidence) for k in SUMMARY}
    for k in ("precision", "recall", "f1"):
        for j, c in enumerate(classes):
            out[f"{k}.{c}"] = _interval(point[k][0, j], boot[k][:, j], confidence)
    return out


def mcnemar(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> tuple[int, int, float]:
    """(clips only a got right, clips only b got right, exact two-sided p on those discordant clips)."""
    a_ok, b_ok = pred_a == y, pred_b == y
    only_a, only_b = int((a_ok & ~b_ok).sum()), int((b_ok & ~a_ok).sum())
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return only_a, only_b, float(p)


def gap_metrics(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, classes: list[str],
                weights: np.ndarray, confidence: float) -> dict[str, object]:
    """Family a minus family b in points (paired bootstrap: the same resamples for both) and
    McNemar's exact test."""
    out: dict[str, object] = {"n": len(y)}
    ones = np.ones(len(y))
    pa, pb = (metrics_of(confusions(y, p, classes, ones)) for p in (pred_a, pred_b))
    ba, bb = (metrics_of(confusions(y, p, classes, weights)) for p in (pred_a, pred_b))
    for k in ("accuracy", "balanced_accuracy"):
        out[f"{k}_pp"] = _interval(100 * (pa[k][0] - pb[k][0]), 100 * (ba[k] - bb[k]), confidence)
    out["only_a_right"], out["only_b_right"], out["mcnemar_p"] = mcnemar(y, pred_a, pred_b)
    return out


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray, weights: np.ndarray,
                      confidence: float) -> Interval:
    """Accuracy of a minus accuracy of b, in points, on the same clips (paired bootstrap)."""
    def acc(ok, w):
        return (np.atleast_2d(w) @ ok.astype(float)) / np.atleast_2d(w).sum(axis=1)
    ones = np.ones(len(correct_a))
    value = 100 * (acc(correct_a, ones) - acc(correct_b, ones))[0]
    return _interval(value, 100 * (acc(correct_a, weights) - acc(correct_b, weights)), confidence)
