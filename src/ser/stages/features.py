"""Stage features: one feature set (a family of ser.features with its params) of every clip.

    bin/stage features --family stats --corpus data/raw/ravdess \
        --manifest data/prepared/manifest.csv --out data/features/stats.parquet

dvc.yaml runs it once per feature set (foreach), each with its own params section
(features_<set>; ser.features.tables says which code computes it: stats and stats_conditioned
are the same family on other params). The table families (stats, egemaps) write one row per clip (format:
ser.store); logmel writes `logmel.npy` and `index.csv` for every clip, each followed by its noisy
copies: every clip trains in some fold, and a fold's training stage takes the copies of its own
training clips only.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm import tqdm

from ser.audio import load
from ser.errors import SerError, run_cli
from ser.features import logmel, tables
from ser.io import atomic_dir, atomic_path
from ser.params import PARAMS_FILE, load_params
from ser.store import FEATURE_PARAMS, LOGMEL_ARRAY, LOGMEL_INDEX, logmel_index, read_manifest

log = logging.getLogger("features")


def table_row(family: str, path: Path, p) -> np.ndarray:
    """One clip's row of a table feature set: its file decoded at the set's rate, through the
    family's from_samples (what prediction uses too), checked finite."""
    mod = tables.module(family)
    v = mod.from_samples(load(path, p.sample_rate), p.sample_rate, p)
    if not np.isfinite(v).all():
        bad = [c for c, ok in zip(mod.columns(p), np.isfinite(v)) if not ok]
        raise SerError(f"{path}: non-finite {family} features ({', '.join(bad[:3])})")
    return v


def write_table(family: str, p, corpus: Path, manifest: pd.DataFrame, out: Path,
                n_jobs: int = 1) -> None:
    mod = tables.module(family)
    log.info("%s: %d features for %d clips", family, len(mod.columns(p)), len(manifest))
    rows = Parallel(n_jobs=n_jobs)(delayed(table_row)(family, corpus / path, p) for path in
                                     tqdm(manifest["path"], desc=f"features {family}", unit="clip"))
    df = pd.DataFrame(np.vstack(rows), columns=mod.columns(p), index=manifest["clip_id"])
    df.attrs.update(family=family, params=p.saved())  # a model file carries them
    with atomic_path(out) as tmp:
        df.to_parquet(tmp)
    log.info("wrote %s (%d x %d)", out, *df.shape)


def write_logmel(p, corpus: Path, manifest: pd.DataFrame, out: Path, n_jobs: int = 1) -> None:
    index = logmel_index(list(manifest["clip_id"]), p.augment_copies)
    n_frames = 1 + p.n_samples // p.hop_length
    shape = (len(index), 1 + (n_frames - p.win_size) // p.win_step, p.n_mels, p.win_size)
    log.info("logmel: windows for %d clips (%d rows with augmentation) -> %s %s",
             len(manifest), len(index), shape, p.dtype)
    jobs = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(logmel.clip_features)(corpus / r.path, r.clip_id, p.augment_copies, p)
        for r in manifest.itertuples(index=False))
    with atomic_dir(out) as tmp:
        x = np.lib.format.open_memmap(tmp / LOGMEL_ARRAY, mode="w+", dtype=p.dtype, shape=shape)
        row = 0
        for feats in tqdm(jobs, total=len(manifest), desc="features logmel", unit="clip"):
            x[row:row + len(feats)] = feats
            row += len(feats)
        x.flush()
        del x
        index.to_csv(tmp / LOGMEL_INDEX, index=False)
        (tmp / FEATURE_PARAMS).write_text(json.dumps(p.saved(), indent=2,
                                                     sort_keys=True) + "\n")
    log.info("wrote %s", out)


def run(params_path: Path, family: str, corpus: Path, manifest_path: Path, out: Path) -> None:
    params = load_params(params_path)
    p = getattr(params, f"features_{family}")
    manifest = read_manifest(manifest_path)
    if tables.module(family) is None:
        write_logmel(p, corpus, manifest, out, params.runtime.n_jobs)
    else:
        write_table(family, p, corpus, manifest, out, params.runtime.n_jobs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--family", required=True, choices=tables.SETS, help="the feature set")
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    run(a.params, a.family, a.corpus, a.manifest, a.out)


if __name__ == "__main__":
    run_cli(main)
