"""The pipeline's intermediate tables on disk, and their checked readers.

Written by the prepare, folds and feature stages, read by the stages after them. The training
stages import this module, not the stages that write, so that a change to how a table is made
reruns training only when it changes the table itself (DVC compares the outputs' hashes).

- `manifest.csv` (prepare): one row per clip: clip_id, path, actor, label, and more.
- `folds/<run>.csv` (folds): clip_id, actor, label, split (train, val or test) of one run.
- `stats.parquet`: one row per clip (index clip_id), the statistics as named columns.
- `logmel/logmel.npy`: rows x windows x mels x frames (memory-mappable), and `logmel/index.csv`
  (row, clip_id, copy): copy 0 is the clip itself, 1.. its noisy copies, right after it;
  `logmel/params.json`: the features_logmel params that made them (a model file carries them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ser.errors import SerError

SPLITS = ("train", "val", "test")
FOLD_COLUMNS = ["clip_id", "actor", "label", "split"]

LOGMEL_ARRAY = "logmel.npy"
LOGMEL_INDEX = "index.csv"
FEATURE_PARAMS = "params.json"  # beside the array: the params that made it, for the model files


def _read_csv(path: Path, what: str, stage: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype={"clip_id": str})
    except FileNotFoundError:
        raise SerError(f"{path}: not found (run the {stage} stage first)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise SerError(f"{path}: not a {what} ({str(err).splitlines()[0]})") from None


def read_manifest(path: Path) -> pd.DataFrame:
    """The prepare stage's manifest, with the columns every reader needs."""
    df = _read_csv(path, "manifest", "prepare")
    missing = {"clip_id", "path", "actor", "label"} - set(df.columns)
    if missing:
        raise SerError(f"{path}: not a manifest (no {sorted(missing)[0]} column)")
    return df


def read_fold(path: Path) -> pd.DataFrame:
    """One run's table, checked: every clip once, splits train / val / test, none empty."""
    df = _read_csv(path, "folds table", "folds")
    if list(df.columns) != FOLD_COLUMNS:
        raise SerError(f"{path}: not a folds table (columns {list(df.columns)}, expected {FOLD_COLUMNS})")
    if df["clip_id"].duplicated().any():
        raise SerError(f"{path}: clip {df.loc[df['clip_id'].duplicated(), 'clip_id'].iloc[0]} twice")
    bad = set(df["split"]) - set(SPLITS)
    if bad:
        raise SerError(f"{path}: unknown split {sorted(map(str, bad))[0]!r}")
    for s in SPLITS:
        if not (df["split"] == s).any():
            raise SerError(f"{path}: no {s} clips")
    return df


def logmel_index(clip_ids: list[str], copies: int) -> pd.DataFrame:
    """One row per array row: each clip, then its noisy copies right after it."""
    ids = np.repeat(np.asarray(clip_ids, dtype=object), 1 + copies)
    return pd.DataFrame({"row": np.arange(len(ids)), "clip_id": ids,
                         "copy": np.tile(np.arange(1 + copies), len(clip_ids))})


def load_logmel(folder: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """Memory-map the log-mel array and read its index, checked against each other."""
    try:
        x = np.load(folder / LOGMEL_ARRAY, mmap_mode="r")
        index = pd.read_csv(folder / LOGMEL_INDEX, dtype={"clip_id": str})
    except FileNotFoundError as err:
        raise SerError(f"{err.filename}: not found (run the features_logmel stage first)") from None
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise SerError(f"{folder}: unreadable log-mel features ({str(err).splitlines()[0]})") from None
    if list(index.columns) != ["row", "clip_id", "copy"]:
        raise SerError(f"{folder / LOGMEL_INDEX}: columns {list(index.columns)}, expected row, clip_id, copy")
    if len(index) != x.shape[0] or not (index["row"].to_numpy() == np.arange(len(index))).all():
        raise SerError(f"{folder}: index.csv does not match logmel.npy ({len(index)} vs {x.shape[0]} rows)")
    return x, index


def load_stats(path: Path) -> pd.DataFrame:
    """The statistics table, one row per clip."""
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise SerError(f"{path}: not found (run the features_stats stage first)") from None
    except (OSError, ValueError) as err:
        raise SerError(f"{path}: unreadable statistics ({str(err).splitlines()[0]})") from None
