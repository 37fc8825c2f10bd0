"""Clips per second of every feature family's stage (features@<family>) on the corpus, 1 and 2 jobs.

    .venv/bin/python benchmarks/bench_features.py --corpus data/raw/ravdess \
        --manifest data/prepared/manifest.csv

Runs the stages' own code (augmentation included, as params.yaml says) into a temporary
folder and prints one line per stage and job count, plus the size of the log-mel array.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from ser.features import tables
from ser.params import PARAMS_FILE
from ser.stages import features
from ser.store import load_logmel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--corpus", type=Path, default=Path("data/raw/ravdess"))
    ap.add_argument("--manifest", type=Path, default=Path("data/prepared/manifest.csv"))
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args()
    n = len(pd.read_csv(a.manifest))
    base = yaml.safe_load(a.params.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for jobs in a.jobs:
            data = dict(base, runtime=dict(base["runtime"], n_jobs=jobs))
            params = tmp / f"params_{jobs}.yaml"
            params.write_text(yaml.safe_dump(data))
            total = 0.0
            for family in tables.SETS:
                out = tmp / (f"{family}.parquet" if tables.module(family) else family)
                t0 = time.perf_counter()
                features.run(params, family, a.corpus, a.manifest, out)
                dt = time.perf_counter() - t0
                total += dt
                print(f"features@{family:19s} n_jobs={jobs}: {n} clips in {dt:6.1f} s = "
                      f"{n / dt:6.1f} clips/s", flush=True)
            print(f"{'every feature set':28s} n_jobs={jobs}: {total:6.1f} s", flush=True)
        x, index = load_logmel(tmp / "logmel")
        print(f"logmel array: {x.shape} {x.dtype}, {x.nbytes / 2**20:.0f} MiB "
              f"({len(index)} rows: {n} clips + {len(index) - n} noisy copies)")


if __name__ == "__main__":
    main()
