"""Reading the training stages' run folders (runs/<family>/<run>/): the predictions table
(ser.predictions' format), checked once here, for the report and everything after training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ser.errors import SerError
from ser.predictions import PROB_PREFIX


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
