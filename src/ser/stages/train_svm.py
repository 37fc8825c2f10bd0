"""Stage train_svm: an SVM family of one run (protocol and fold) on one feature family's table.

    bin/stage train_svm --family svm_stats --run random-0 --folds data/folds/random-0.csv \
        --features data/features/stats.parquet --model models/svm_stats/random-0.model \
        --out runs/svm_stats/random-0

dvc.yaml runs it for every feature family of the SVM families (a matrix): the reference's
statistics (svm_stats) and eGeMAPS (svm_egemaps), with the same pipeline and params
(ser.svm_pipeline), fitted on the run's training clips only.

The training validation clips are not used: the SVM has no early stopping, so they only
add to its evaluation (written with split "val").
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ser import deps, modelfile
from ser.errors import SerError, run_cli
from ser.features import tables
from ser.io import atomic_dir, write_json
from ser.labels import class_names
from ser.params import PARAMS_FILE, load_params, parse_run
from ser.predictions import predictions_frame, split_summaries
from ser.store import load_features, read_fold
from ser.svm_pipeline import fit, fitted_pipeline

log = logging.getLogger("train_svm")
MODULE = "ser.stages.train_svm"


def check_columns(path: Path, feats) -> None:
    """The table's columns are the ones its feature set gives with the params it was made with,
    in their order: a table missing one would train (and write a model) on the others."""
    name, saved = feats.attrs.get("family", path.stem), feats.attrs.get("params")
    mod = tables.module(name) if name in tables.SETS else None
    if mod is None or saved is None:
        raise SerError(f"{path}: not a table of a feature set (no family and params in its "
                       "metadata): rerun its features stage")
    try:
        want = mod.columns(mod.PARAMS.from_saved(saved))
    except (TypeError, ValueError):  # pydantic's ValidationError is a ValueError
        raise SerError(f"{path}: made with other features_{name} params than this version "
                       f"knows: rerun `dvc repro features@{name}`") from None
    what = tables.column_difference(list(feats.columns), want)
    if what:
        raise SerError(f"{path}: {what}, not the {len(want)} columns of features_{name}: rerun "
                       f"`dvc repro features@{name}`")


def run(params_path: Path, family: str, run_name: str, fold_path: Path, features: Path,
        model_path: Path, out: Path) -> dict:
    params = load_params(params_path)
    p = params.train_svm
    protocol, k = parse_run(run_name)
    fold = read_fold(fold_path, class_names(params.prepare.classes))
    feats = load_features(features)
    missing = set(fold["clip_id"]) - set(feats.index)
    if missing:
        raise SerError(f"{features}: no features for clip {sorted(missing)[0]} of {fold_path}")
    cols = list(feats.columns)
    check_columns(features, feats)
    df = fold.join(feats, on="clip_id")
    train = df[df["split"] == "train"]
    groups = train["actor"].to_numpy() if protocol == "actor" else None
    log.info("%s %s: grid search over %d C x %d gamma, %d-fold %s CV on %d training clips, "
             "%d features", family, run_name, len(p.C), len(p.gamma), p.cv_folds,
             "actor-grouped" if groups is not None else "stratified", len(train), len(cols))
    t0 = time.perf_counter()
    model, search = fit(train[cols].to_numpy(), train["label"].to_numpy(), p, groups,
                        params.runtime.n_jobs)
    seconds = time.perf_counter() - t0
    classes = [c for c in class_names(params.prepare.classes) if c in set(model.classes_)]
    order = [list(model.classes_).index(c) for c in classes]
    evals = df[df["split"].isin(["val", "test"])]
    pred = predictions_frame(evals["clip_id"], evals["split"], evals["label"],
                             model.predict_proba(evals[cols].to_numpy())[:, order], classes)
    modelfile.write(model_path, {
        "family": family, "classes": classes, "columns": cols,
        "features": {"family": feats.attrs.get("family", features.stem),
                     "params": feats.attrs.get("params")},
        "training": p.model_dump(), "run": run_name, "protocol": protocol, "fold": k,
        "code": f"training code {deps.code_hash(MODULE)[:12]}",
    }, {modelfile.ESTIMATOR: modelfile.estimator_bytes(model)})
    pipe = fitted_pipeline(model)
    selected = int(pipe.named_steps["select"].get_support().sum())
    metrics = {**split_summaries(pred), "C": search.best_params_["svc__C"],
               "gamma": search.best_params_["svc__gamma"], "cv_accuracy": search.best_score_,
               "selected_features": selected,
               "pca_components": int(pipe.named_steps["pca"].n_components_) if p.pca_components else 0,
               "train_clips": len(train), "fit_time_s": round(seconds, 1)}
    with atomic_dir(out) as tmp:
        pred.to_csv(tmp / "predictions.csv", index=False)
        write_json(tmp / "metrics.json", metrics)
    log.info("%s %s: C %g, gamma %g (CV acc %.3f, %d features kept): val acc %.3f, test acc %.3f, "
             "%.0f s", family, run_name, metrics["C"], metrics["gamma"], metrics["cv_accuracy"],
             selected, metrics["val"]["accuracy"], metrics["test"]["accuracy"], seconds)
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--family", required=True, help="the model family, e.g. svm_stats")
    ap.add_argument("--run", required=True, help="the run, e.g. random-0 (protocol-fold)")
    ap.add_argument("--folds", type=Path, required=True, help="the run's table of the folds stage")
    ap.add_argument("--features", type=Path, required=True, help="a feature family's table")
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    run(a.params, a.family, a.run, a.folds, a.features, a.model, a.out)


if __name__ == "__main__":
    run_cli(main)
