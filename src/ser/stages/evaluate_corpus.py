"""Stage evaluate_corpus: every speaker-independent model of every family on an unseen corpus,
through exactly `ser predict`'s path (segments, short-input rules, sample-rate warnings).

    bin/stage evaluate_corpus --name tess --corpus data/corpora/tess --models models \
        --out runs/corpus/tess

Retrains nothing. For each clip the corpus maps to a class: the ensemble `ser predict` uses by
default (the actor protocol's fold models, averaged) and each of its fold models, read from the
same features (ser.analysis.analyse_audio with folds). A clip that cannot be decoded stops
the stage with one line naming it: results must be on the corpus declared.

The clips are shared among `runtime.n_jobs` worker processes (each its models and one
torch thread); each clip's answer does not depend on which worker read it.

Writes `predictions.csv`: one row per clip, family and model (`ensemble` or the fold's run), with
the clip's speaker, label, pred, prob_<class>, and whether it was short; and `info.json`: the
corpus's counts (clips, speakers, dropped emotions, warnings).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from tqdm import tqdm

from ser import analysis, corpora, registry
from ser.errors import SerError, run_cli
from ser.io import atomic_dir, write_json
from ser.params import PARAMS_FILE, load_params
from ser.predictions import PROB_PREFIX

log = logging.getLogger("evaluate_corpus")
PROTOCOL = "actor"  # a corpus is new speakers: the speaker-independent models


def clip_rows(clip: pd.Series, r: dict, ens: list) -> list[dict]:
    rows = []
    short = all(s["short"] for s in r["segments"])
    for e in ens:
        probs = [("ensemble", np.array([r["whole"][e.name]["probs"][c] for c in e.classes]))]
        probs += list(zip(e.runs, map(np.asarray, r["fold_whole"][e.name])))
        for model, p in probs:
            rows.append({"clip_id": clip["clip_id"], "speaker": clip["speaker"],
                         "label": clip["label"], "family": e.name, "model": model,
                         "pred": e.classes[int(np.argmax(p))], "short": short,
                         "warnings": len(r["warnings"]),
                         **{PROB_PREFIX + c: round(float(v), 6) for c, v in zip(e.classes, p)}})
    return rows


def evaluate(ens: list, params, grid, corpus: Path, clips: pd.DataFrame, name: str,
             progress: bool = False) -> list[dict]:
    rows = []
    for _, clip in tqdm(clips.iterrows(), total=len(clips), desc=f"evaluate {name}", unit="clip",
                        disable=not progress):
        r = analysis.analyse(corpus / clip["path"], ens, params.predict, grid, folds=True,
                             timeline=False)  # scored: the whole clip's answers
        rows += clip_rows(clip, r, ens)
    return rows


def _worker(params_path: Path, models: Path, corpus: Path, clips: pd.DataFrame, name: str) -> list[dict]:
    import torch
    torch.set_num_threads(1)
    params = load_params(params_path)
    ens = analysis.load_ensembles(models, list(registry.FAMILIES), PROTOCOL, params)
    return evaluate(ens, params, analysis.window_grid(ens, params), corpus, clips, name)


def run(params_path: Path, name: str, corpus: Path, models: Path, out: Path) -> dict:
    params = load_params(params_path)
    if name not in params.corpora:
        raise SerError(f"corpora.{name}: not in params.yaml")
    table = corpora.read_table(corpus / "manifest.csv")
    ens = analysis.load_ensembles(models, list(registry.FAMILIES), PROTOCOL, params)
    grid = analysis.window_grid(ens, params)
    kept = table[table["label"] != ""]
    log.info("%s: %d of %d clips (%d speakers) through %s", name, len(kept), len(table),
             kept["speaker"].nunique(), ", ".join(f"{e.family.label} ({e.describe()})" for e in ens))
    t0 = time.perf_counter()
    jobs = max(1, min(len(kept), effective_n_jobs(params.runtime.n_jobs)))
    chunks = [kept.iloc[i::jobs] for i in range(jobs)]
    if jobs == 1:
        parts = [evaluate(ens, params, grid, corpus, chunks[0], name, progress=True)]
    else:  # each worker loads the models itself and reads every jobs-th clip, one torch thread
        parts = Parallel(n_jobs=jobs)(delayed(_worker)(params_path, models, corpus, c, name)
                                      for c in chunks)
    seconds = time.perf_counter() - t0
    order = {c: i for i, c in enumerate(kept["clip_id"])}
    pred = pd.DataFrame([r for part in parts for r in part])
    pred = pred.sort_values("clip_id", key=lambda c: c.map(order), kind="stable", ignore_index=True)
    dropped = table.loc[table["label"] == "", "emotion"].value_counts().sort_index()
    info = {"corpus": name, "clips": len(table), "kept": len(kept),
            "speakers": int(kept["speaker"].nunique()),
            "dropped": {k: int(v) for k, v in dropped.items()},
            "classes_absent": [c for c in ens[0].classes if c not in set(kept["label"])],
            "short_clips": int(pred.loc[pred["model"] == "ensemble"].groupby("clip_id")["short"].first().sum()),
            "models": {e.name: e.runs for e in ens}, "seconds": round(seconds, 1),
            "clips_per_second": round(len(kept) / max(seconds, 1e-9), 1)}
    with atomic_dir(out) as tmp:
        pred.to_csv(tmp / "predictions.csv", index=False)
        write_json(tmp / "info.json", info)
    log.info("%s: %d clips in %.0f s (%.1f clips/s): wrote %s", name, len(kept), seconds,
             info["clips_per_second"], out)
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--name", required=True, help="the corpus, a key of params.yaml `corpora`")
    ap.add_argument("--corpus", type=Path, required=True, help="the corpus stage's folder")
    ap.add_argument("--models", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    run(a.params, a.name, a.corpus, a.models, a.out)


if __name__ == "__main__":
    run_cli(main)
