"""The predictions table every model family's training stage writes, and the summary metrics
read off it.

One row per clip: clip_id, split, label (true), pred, and prob_<class> for every class; pred is
always the most probable class. The report compares the families clip by clip through it, so its
format lives here alone, and every table is checked where it is read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from ser.errors import SerError

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


def classes_of(pred: pd.DataFrame) -> list[str]:
    return [c.removeprefix(PROB_PREFIX) for c in pred.columns if c.startswith(PROB_PREFIX)]


def read_predictions(path) -> pd.DataFrame:
    """A predictions table, checked once here: any fault is one line naming the file."""
    try:
        df = pd.read_csv(path, dtype={"clip_id": str, "split": str, "label": str, "pred": str})
    except FileNotFoundError:
        raise SerError(f"{path}: predictions table not found (run its training stage first)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        raise SerError(f"{path}: not a predictions table ({str(err).splitlines()[0]})") from None
    missing = {"clip_id", "split", "label", "pred"} - set(df.columns)
    if missing or not classes_of(df):
        raise SerError(f"{path}: not a predictions table (missing {sorted(missing) or 'prob_ columns'})")
    if df.empty:
        raise SerError(f"{path}: a predictions table without rows")
    classes = classes_of(df)
    dup = df["clip_id"].duplicated()
    if dup.any():
        raise SerError(f"{path}: clip {df.loc[dup, 'clip_id'].iloc[0]} appears twice")
    for col in ("label", "pred"):
        bad = ~df[col].isin(classes)
        if bad.any():
            raise SerError(f"{path}: row of clip {df.loc[bad, 'clip_id'].iloc[0]}: {col} "
                           f"{df.loc[bad, col].iloc[0]!r} is not one of the table's classes")
    bad = ~df["split"].isin(["val", "test"])
    if bad.any():
        raise SerError(f"{path}: row of clip {df.loc[bad, 'clip_id'].iloc[0]}: split "
                       f"{df.loc[bad, 'split'].iloc[0]!r} (expected val or test)")
    proba = df[[PROB_PREFIX + c for c in classes]].apply(pd.to_numeric, errors="coerce").to_numpy()
    bad = ~(np.isfinite(proba).all(axis=1) & (proba >= 0).all(axis=1) & (proba <= 1).all(axis=1)
            & (np.abs(proba.sum(axis=1) - 1) < 1e-3))
    if bad.any():
        raise SerError(f"{path}: row of clip {df.loc[bad, 'clip_id'].iloc[0]}: probabilities missing, "
                       "out of [0, 1] or not summing to 1")
    top = proba[np.arange(len(df)), [classes.index(c) for c in df["pred"]]]
    bad = top < proba.max(axis=1)
    if bad.any():
        raise SerError(f"{path}: row of clip {df.loc[bad, 'clip_id'].iloc[0]}: pred is not the most "
                       "probable class")
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
