"""Stage prepare: the manifest (one row per clip) and the train/val/test split every model shares.

    python -m ser.prepare --corpus data/raw/ravdess --out data/prepared/manifest.csv

Every clip is decoded once here, so a corrupt or truncated file stops the pipeline with its name
before any feature is computed.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from ser.audio import probe
from ser.errors import SerError, run_cli
from ser.io import atomic_path
from ser.labels import AUDIO_SUFFIXES, parse_name, training_label
from ser.params import Prepare, load_params

log = logging.getLogger("prepare")
SPLITS = ("train", "val", "test")


def scan(corpus: Path, classes: str, n_jobs: int = 1) -> pd.DataFrame:
    """The manifest without its split: one row per clip the protocol keeps, sorted by clip id."""
    files = sorted(p for p in corpus.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise SerError(f"{corpus}: no audio files (run the download stage first)")
    rows = []
    for f in files:
        info = parse_name(f.stem)
        label = training_label(info.emotion, classes)
        if label is not None:
            rows.append({"clip_id": info.clip_id, "path": f.relative_to(corpus).as_posix(),
                         "actor": info.actor, "gender": info.gender, "emotion": info.emotion,
                         "intensity": info.intensity, "statement": info.statement,
                         "repetition": info.repetition, "label": label})
    df = pd.DataFrame(rows)
    if df["clip_id"].duplicated().any():
        raise SerError(f"{corpus}: clip {df.loc[df['clip_id'].duplicated(), 'clip_id'].iloc[0]} "
                       "appears twice (as .wav and .flac?)")
    probes = Parallel(n_jobs=n_jobs)(delayed(probe)(corpus / p) for p in
                                     tqdm(df["path"], desc="decode", unit="clip"))
    df["duration"] = [round(d, 4) for d, _ in probes]
    df["sample_rate"] = [sr for _, sr in probes]
    return df.sort_values("clip_id", ignore_index=True)


def random_split(df: pd.DataFrame, p: Prepare) -> np.ndarray:
    """Stratified by label: test_size and val_size are fractions of all clips."""
    idx = np.arange(len(df))
    try:
        rest, test = train_test_split(idx, test_size=p.test_size, stratify=df["label"],
                                      random_state=p.seed)
        train, val = train_test_split(rest, test_size=p.val_size / (1 - p.test_size),
                                      stratify=df["label"].iloc[rest], random_state=p.seed)
    except ValueError as err:
        raise SerError(f"prepare: cannot split {len(df)} clips this way ({err})") from None
    split = np.empty(len(df), dtype=object)
    split[train], split[val], split[test] = "train", "val", "test"
    return split


def actor_folds(actors: list[int], fold_size: int) -> list[list[int]]:
    """Consecutive actors in folds: with an even size each holds as many men (odd) as women."""
    actors = sorted(actors)
    return [actors[i:i + fold_size] for i in range(0, len(actors) - fold_size + 1, fold_size)]


def actor_split(df: pd.DataFrame, p: Prepare) -> np.ndarray:
    """Speaker-independent: the test and validation folds' actors never appear in training."""
    folds = actor_folds(sorted(df["actor"].unique()), p.actor_fold_size)
    for key, k in (("test_fold", p.test_fold), ("val_fold", p.val_fold)):
        if k >= len(folds):
            raise SerError(f"params.yaml: prepare.{key} must be below {len(folds)} "
                           f"(folds of {p.actor_fold_size} actors), got {k}")
    split = np.full(len(df), "train", dtype=object)
    split[df["actor"].isin(folds[p.val_fold]).to_numpy()] = "val"
    split[df["actor"].isin(folds[p.test_fold]).to_numpy()] = "test"
    return split


def make_manifest(corpus: Path, p: Prepare) -> pd.DataFrame:
    df = scan(corpus, p.classes, p.n_jobs)
    df["split"] = random_split(df, p) if p.split == "random" else actor_split(df, p)
    return df


def run(params_path: Path, corpus: Path, out: Path) -> None:
    p = load_params(params_path).prepare
    df = make_manifest(corpus, p)
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)
    counts = df["split"].value_counts()
    log.info("wrote %s: %d clips, %d classes (%s split: %s)", out, len(df), df["label"].nunique(),
             p.split, ", ".join(f"{s} {counts.get(s, 0)}" for s in SPLITS))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    run(a.params, a.corpus, a.out)


if __name__ == "__main__":
    run_cli(main)
