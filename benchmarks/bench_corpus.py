"""The unseen-corpus stage's speed: clips per second per family, and the whole stage.

    TESS_ARCHIVE=../shared/data/tess-flac-160words.zip \
        .venv/bin/python benchmarks/bench_corpus.py [--name tess] [--clips 300] [--models models]

Extracts the corpus's archive (its params entry: `archive_env`) into a temporary folder, then
times, in this process, each family alone on the first --clips clips (one process, the way each
of the stage's workers reads its share), and the whole stage (`ser.stages.evaluate_corpus.run`:
every clip, every family, `runtime.n_jobs` workers), the target being at most 3 minutes
for TESS's 2240 clips. Without --models it writes model files of the reference's sizes
(bench_predict.write_models: speed does not depend on what the weights learned).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from bench_predict import write_models
from reuse_memory import reexec_script
from ser import analysis, corpora, registry
from ser.params import load_params
from ser.stages import corpus as corpus_stage
from ser.stages import evaluate_corpus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--name", default="tess")
    ap.add_argument("--clips", type=int, default=300, help="clips for the per-family timings")
    ap.add_argument("--models", type=Path, default=None, help="trained models (default: generated)")
    a = ap.parse_args()
    reexec_script()  # as the stage runs
    params = load_params(a.params)
    env = params.corpora[a.name].archive_env
    if not os.environ.get(env):
        raise SystemExit(f"set {env} to the corpus's archive")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "corpus"
        corpus_stage.run(a.params, a.name, folder, tmp / "downloads")
        models = a.models
        if models is None:
            models = tmp / "models"
            write_models(models, len(params.folds.folds_of("actor")), a.params)
        clips = corpora.read_table(folder / "manifest.csv")
        clips = clips[clips["label"] != ""]
        subset = clips.iloc[:a.clips]
        torch.set_num_threads(1)  # as in each of the stage's workers
        for fam in registry.FAMILIES:
            ens = analysis.load_ensembles(models, [fam], evaluate_corpus.PROTOCOL, params)
            grid = analysis.window_grid(ens, params)
            t0 = time.perf_counter()
            evaluate_corpus.evaluate(ens, params, grid, folder, subset, a.name)
            dt = time.perf_counter() - t0
            print(f"{registry.get(fam).label} ({ens[0].describe()}), one process, one torch "
                  f"thread: {len(subset) / dt:.1f} clips/s", flush=True)
        torch.set_num_threads(os.cpu_count() or 1)
        info = evaluate_corpus.run(a.params, a.name, folder, models, tmp / "out")
        print(f"the stage, every family, {evaluate_corpus.effective_n_jobs(params.runtime.n_jobs)} "
              f"workers: {info['kept']} clips in {info['seconds']:.0f} s ({info['clips_per_second']} "
              f"clips/s; target: at most 180 s for TESS)")


if __name__ == "__main__":
    main()
