"""The pipeline's intermediate tables on disk, and their checked readers.

Written by the prepare, folds and feature stages, read by the stages after them. The training
stages import this module, not the stages that write, so that a change to how a table is made
reruns training only when it changes the table itself (DVC compares the outputs' hashes).

- `manifest.csv` (prepare): one row per clip: clip_id, path, actor, label, and more.
- `folds/<run>.csv` (folds): clip_id, actor, label, split (train, val or test) of one run.
- `<family>.parquet` (features_stats, features_egemaps): one row per clip (index clip_id), the
  features as named columns, and the params that made them in the table's attrs.
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
    except IsADirectoryError:
        raise SerError(f"{path}: is a directory, not a {what}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
        raise SerError(f"{path}: not a {what} ({str(err).splitlines()[0]})") from None


def _unique(df: pd.DataFrame, column: str, path: Path) -> None:
    dup = df[column].duplicated()
    if dup.any():
        raise SerError(f"{path}: {column} {df.loc[dup, column].iloc[0]} appears twice")


def read_manifest(path: Path) -> pd.DataFrame:
    """The prepare stage's manifest, checked: the columns every reader needs, each clip once."""
    df = _read_csv(path, "manifest", "prepare")
    missing = {"clip_id", "path", "actor", "label"} - set(df.columns)
    if missing:
        raise SerError(f"{path}: not a manifest (no {sorted(missing)[0]} column)")
    if df.empty:
        raise SerError(f"{path}: a manifest without clips")
    _unique(df, "clip_id", path)
    _unique(df, "path", path)
    return df


def read_fold(path: Path, classes: list[str] | None = None) -> pd.DataFrame:
    """One run's table, checked: every clip once, splits train / val / test, none empty, and
    (given the protocol's classes) every label one of them."""
    df = _read_csv(path, "folds table", "folds")
    if list(df.columns) != FOLD_COLUMNS:
        raise SerError(f"{path}: not a folds table (columns {list(df.columns)}, expected {FOLD_COLUMNS})")
    if df["clip_id"].duplicated().any():
        raise SerError(f"{path}: clip {df.loc[df['clip_id'].duplicated(), 'clip_id'].iloc[0]} twice")
    bad = set(df["split"]) - set(SPLITS)
    if bad:
        raise SerError(f"{path}: unknown split {sorted(map(str, bad))[0]!r}")
    if classes is not None:
        unknown = ~df["label"].isin(classes)
        if unknown.any():
            raise SerError(f"{path}: clip {df.loc[unknown, 'clip_id'].iloc[0]} has label "
                           f"{df.loc[unknown, 'label'].iloc[0]!r}, not one of the classes "
                           f"({', '.join(classes)})")
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
        raise SerError(f"{err.filename}: not found (run the features@logmel stage first)") from None
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise SerError(f"{folder}: unreadable log-mel features ({str(err).splitlines()[0]})") from None
    if list(index.columns) != ["row", "clip_id", "copy"]:
        raise SerError(f"{folder / LOGMEL_INDEX}: columns {list(index.columns)}, expected row, clip_id, copy")
    if len(index) != x.shape[0] or not (index["row"].to_numpy() == np.arange(len(index))).all():
        raise SerError(f"{folder}: index.csv does not match logmel.npy ({len(index)} vs {x.shape[0]} rows)")
    dup = index.duplicated(["clip_id", "copy"])
    if dup.any():
        raise SerError(f"{folder / LOGMEL_INDEX}: clip {index.loc[dup, 'clip_id'].iloc[0]} copy "
                       f"{index.loc[dup, 'copy'].iloc[0]} appears twice")
    return x, index


def load_features(path: Path) -> pd.DataFrame:
    """A feature family's table (e.g. stats.parquet), checked: each clip once, every value finite."""
    stage = f"features@{path.stem}"
    try:
        df = pd.read_parquet(path)
    except FileNotFoundError:
        raise SerError(f"{path}: not found (run the {stage} stage first)") from None
    except (OSError, ValueError) as err:
        raise SerError(f"{path}: unreadable features ({str(err).splitlines()[0]})") from None
    if df.index.duplicated().any():
        raise SerError(f"{path}: clip {df.index[df.index.duplicated()][0]} appears twice")
    values = df.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise SerError(f"{path}: clip {df.index[r]}: {df.columns[c]} is {df.iat[r, c]!r}, not a "
                       "finite number")
    return df
