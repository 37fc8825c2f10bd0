"""The predictions table both models write, and the summary metrics read off it.

One row per clip: clip_id, split, label (true), pred, and prob_<class> for every class. The
report compares the models clip by clip through it, so its format lives here alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from ser.errors import SerError

PROB_PREFIX = "prob_"


def predictions_frame(clip_ids: Sequence[str], splits: Sequence[str], labels: Sequence[str],
                      proba: np.ndarray, classes: Sequence[str],
                      pred: Sequence[str] | None = None) -> pd.DataFrame:
    """The table; `pred` defaults to the most probable class."""
    proba = np.asarray(proba, dtype=float)
    if proba.shape != (len(clip_ids), len(classes)):
        raise ValueError(f"proba has shape {proba.shape}, expected {(len(clip_ids), len(classes))}")
    df = pd.DataFrame({"clip_id": list(clip_ids), "split": list(splits), "label": list(labels),
                       "pred": np.asarray(classes)[proba.argmax(axis=1)] if pred is None
                       else list(pred)})
    for j, c in enumerate(classes):
        df[PROB_PREFIX + c] = np.round(proba[:, j], 6)
    return df


def classes_of(pred: pd.DataFrame) -> list[str]:
    return [c.removeprefix(PROB_PREFIX) for c in pred.columns if c.startswith(PROB_PREFIX)]


def read_predictions(path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype={"clip_id": str})
    except FileNotFoundError:
        raise SerError(f"{path}: predictions table not found (run its training stage first)") from None
    missing = {"clip_id", "split", "label", "pred"} - set(df.columns)
    if missing or not classes_of(df):
        raise SerError(f"{path}: not a predictions table (missing {sorted(missing) or 'prob_ columns'})")
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
