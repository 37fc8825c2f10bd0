"""Stage prepare: the manifest, one row per clip (its file, actor, emotion, label and duration).

    bin/stage prepare --corpus data/raw/ravdess --out data/prepared/manifest.csv

Every clip is decoded once here, so a corrupt or truncated file stops the pipeline with its name
before any feature is computed. Which clips train and test is the folds stage's business.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd
from joblib import Parallel, delayed
from tqdm import tqdm

from ser.audio import probe
from ser.errors import SerError, run_cli
from ser.io import atomic_path
from ser.labels import AUDIO_SUFFIXES, parse_name, training_label
from ser.params import PARAMS_FILE, load_params

log = logging.getLogger("prepare")


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


def run(params_path: Path, corpus: Path, out: Path) -> None:
    params = load_params(params_path)
    df = scan(corpus, params.prepare.classes, params.runtime.n_jobs)
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)
    log.info("wrote %s: %d clips of %d actors, %d classes", out, len(df), df["actor"].nunique(),
             df["label"].nunique())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    run(a.params, a.corpus, a.out)


if __name__ == "__main__":
    run_cli(main)
