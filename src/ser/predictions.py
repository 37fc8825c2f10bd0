"""The predictions table every model family's training stage writes, and the summary metrics
read off it.

One row per clip: clip_id, split, label (true), pred, and prob_<class> for every class; pred is
always the most probable class. The report compares the families clip by clip through it; its
writer is here, its checked reader in ser.runs (which the training stages do not run).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

PROB_PREFIX = "prob_"


def predictions_frame(clip_ids: Sequence[str], splits: Sequence[str], labels: Sequence[str],
                      proba: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """The table; pred is the most probable class of the probabilities as written (rounded)."""
    proba = np.round(np.asarray(proba, dtype=float), 6)
    if proba.shape != (len(clip_ids), len(classes)):
        raise ValueError(f"proba has shape {proba.shape}, expected {(len(clip_ids), len(classes))}")
    df = pd.DataFrame({"clip_id": list(clip_ids), "split": list(splits), "label": list(labels),
                       "pred": np.asarray(classes)[proba.argmax(axis=1)]})
    for j, c in enumerate(classes):
        df[PROB_PREFIX + c] = proba[:, j]
    return df


def summary(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, float]:
    """Accuracy, balanced accuracy (unweighted mean recall) and macro-F1."""
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "n": len(y_true),
    }


def split_summaries(pred: pd.DataFrame) -> dict[str, dict[str, float]]:
    """summary() for each split present in the table, keyed by split name."""
    return {s: summary(g["label"], g["pred"]) for s, g in pred.groupby("split", sort=True)}
