"""Stage folds: which clips train, validate and test in each run (a protocol and a fold).

    bin/stage folds --manifest data/prepared/manifest.csv --out data/folds

Writes `<run>.csv` (clip_id, actor, label, split) for every run in `folds.runs`:
- random-k: stratified K-fold over all clips; fold k tests, and its validation clips are drawn,
  stratified, from the other folds at the reference's train : validation ratio;
- actor-k: folds of consecutive actors; fold k tests, fold k+1 (mod the count) validates;
- holdout-0: the reference's single stratified train / validation / test split.
Each file depends only on the manifest and its protocol's params, so changing one protocol
reruns only its own training stages.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from ser.errors import SerError, run_cli
from ser.io import atomic_dir
from ser.params import PARAMS_FILE, Folds, load_params, parse_run
from ser.store import FOLD_COLUMNS, SPLITS, read_manifest

log = logging.getLogger("folds")


def _stratified(idx: np.ndarray, labels: pd.Series, size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        return train_test_split(idx, test_size=size, stratify=labels.iloc[idx], random_state=seed)
    except ValueError as err:
        raise SerError(f"folds: cannot split {len(idx)} clips this way ({err})") from None


def _labelled(train: np.ndarray, val: np.ndarray, test: np.ndarray, n: int) -> np.ndarray:
    split = np.empty(n, dtype=object)
    split[train], split[val], split[test] = "train", "val", "test"
    return split


def holdout_split(df: pd.DataFrame, p: Folds) -> np.ndarray:
    """The reference's split: test_size and val_size are fractions of all clips."""
    rest, test = _stratified(np.arange(len(df)), df["label"], p.test_size, p.seed)
    train, val = _stratified(rest, df["label"], p.val_share(), p.seed)
    return _labelled(train, val, test, len(df))


def random_splits(df: pd.DataFrame, k: int, p: Folds) -> list[np.ndarray]:
    """Stratified K-fold: every clip is a test clip in exactly one fold."""
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=p.seed)
    try:
        parts = list(skf.split(np.zeros(len(df)), df["label"]))
    except ValueError as err:
        raise SerError(f"folds: cannot make {k} stratified folds of {len(df)} clips ({err})") from None
    out = []
    for rest, test in parts:
        train, val = _stratified(rest, df["label"], p.val_share(), p.seed)
        out.append(_labelled(train, val, test, len(df)))
    return out


def actor_folds(actors: list[int], fold_size: int) -> list[list[int]]:
    """Consecutive actors in folds: with an even size each holds as many men (odd) as women."""
    actors = sorted(actors)
    return [actors[i:i + fold_size] for i in range(0, len(actors) - fold_size + 1, fold_size)]


def actor_splits(df: pd.DataFrame, p: Folds) -> list[np.ndarray]:
    """Speaker-independent: fold k's actors test, fold k+1's validate, the rest train."""
    folds = actor_folds(sorted(df["actor"].unique()), p.actor_fold_size)
    if len(folds) < 3:
        raise SerError(f"folds: {df['actor'].nunique()} actors in folds of {p.actor_fold_size} "
                       f"make {len(folds)} folds; the actor protocol needs 3")
    out = []
    for k in range(len(folds)):
        split = np.full(len(df), "train", dtype=object)
        split[df["actor"].isin(folds[(k + 1) % len(folds)]).to_numpy()] = "val"
        split[df["actor"].isin(folds[k]).to_numpy()] = "test"
        out.append(split)
    return out


def make_folds(manifest: pd.DataFrame, p: Folds) -> dict[str, pd.DataFrame]:
    """{run: table} for every run in p.runs, rows in manifest order."""
    df = manifest.reset_index(drop=True)
    splits: dict[str, np.ndarray] = {}
    for prot in p.protocols():
        if prot == "random":
            parts = random_splits(df, len(p.folds_of("random")), p)
        elif prot == "actor":
            parts = actor_splits(df, p)
        else:
            parts = [holdout_split(df, p)]
        splits.update({f"{prot}-{k}": s for k, s in enumerate(parts)})
    out = {}
    for run in p.runs:
        if run not in splits:
            raise SerError(f"folds: run {run} does not exist here "
                           f"({', '.join(s for s in splits if s.startswith(parse_run(run)[0]))} do)")
        out[run] = df[FOLD_COLUMNS[:-1]].assign(split=splits[run])
    return out


def run(params_path: Path, manifest_path: Path, out: Path) -> None:
    p = load_params(params_path).folds
    manifest = read_manifest(manifest_path)
    tables = make_folds(manifest, p)
    with atomic_dir(out) as tmp:
        for name, t in tables.items():
            t.to_csv(tmp / f"{name}.csv", index=False)
    for name, t in tables.items():
        counts = t["split"].value_counts()
        log.info("%s: %s", name, ", ".join(f"{s} {counts.get(s, 0)}" for s in SPLITS))
    log.info("wrote %d runs to %s", len(tables), out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    run(a.params, a.manifest, a.out)


if __name__ == "__main__":
    run_cli(main)
