"""Stage report: the accuracy gap between the CNN-LSTM and the SVM, pooled over folds, with its
uncertainty, under every protocol run.

    bin/stage report --runs data/runs --manifest data/prepared/manifest.csv --out reports

Reads each run's predictions tables (data/runs/<model>/<run>/predictions.csv), pools the test
clips of every fold of a protocol (under cross-validation each clip is tested exactly once), and
computes (ser.stats) each model's metrics with bootstrap intervals, the paired gap and McNemar's
exact test, per fold and pooled, and each model's drop from the random to the actor protocol.
Clips are resampled for the random and holdout protocols; actors (cluster bootstrap) under the
actor protocol and for the drop, since clips of one speaker are not independent.

Writes report.md, report.html (pictures embedded), metrics.json (the headline: pooled per
protocol and model, the gaps, the drops), metrics_folds.json (per fold), figures/, plots/ (for
`dvc plots`) and predictions/<protocol>.csv (both models' pooled predictions, clip by clip).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from ser import figures, stats
from ser.errors import SerError, run_cli
from ser.evaluate import PROB_PREFIX, classes_of, read_predictions
from ser.io import atomic_path, write_json, write_text
from ser.params import PARAMS_FILE, Params, load_params
from ser.render import to_html, to_markdown
from ser.stats import SUMMARY, Interval
from ser.store import read_manifest

log = logging.getLogger("report")
MODELS = figures.MODELS
# train_cnn_lstm params the protocol section quotes; dvc.yaml's report stage declares each
QUOTED_TRAINING_PARAMS = ("lstm", "epochs", "patience", "batch_size", "lr", "momentum", "decay",
                          "bf16", "channels_last")
# The reference method's published figures (R. Lederman; maelfabien/Multimodal-Emotion-Recognition),
# from its single random 80/15/5 split.
REFERENCE = {"cnn_lstm.val.accuracy": 0.74, "cnn_lstm.test.accuracy": 0.72, "gap.accuracy_pp": 10.0}
UNIT = {"random": "clips", "holdout": "clips", "actor": "actors"}


def protocol_label(prot: str, n_folds: int, params: Params) -> str:
    if prot == "random":
        return f"random {n_folds}-fold cross-validation (the reference's protocol: speakers shared)"
    if prot == "actor":
        size = params.folds.actor_fold_size
        return (f"unseen speakers: {n_folds} folds of {size} actor{'s' if size > 1 else ''} "
                "(speaker-independent)")
    return "the reference's single random 80/15/5 split"


def short_label(prot: str) -> str:
    return {"random": "random CV", "actor": "unseen speakers", "holdout": "single split"}[prot]


# ---------------------------------------------------------------- reading

def read_run(runs: Path, run: str) -> tuple[pd.DataFrame, list[str], dict]:
    """One run's test and validation clips, both models side by side, and the CNN-LSTM's metrics."""
    svm = read_predictions(runs / "svm" / run / "predictions.csv")
    cnn = read_predictions(runs / "cnn_lstm" / run / "predictions.csv")
    classes = classes_of(svm)
    if classes_of(cnn) != classes:
        raise SerError(f"{run}: the SVM and the CNN-LSTM predictions have different classes "
                       f"({classes} vs {classes_of(cnn)})")
    a, b = svm.set_index("clip_id"), cnn.set_index("clip_id")
    if set(a.index) != set(b.index) or not (a["split"] == b.loc[a.index, "split"]).all():
        raise SerError(f"{run}: the two models' predictions hold different clips "
                       f"({len(a)} vs {len(b)}): were they trained on the same folds?")
    if not (a["label"] == b.loc[a.index, "label"]).all():
        raise SerError(f"{run}: the two models' predictions disagree on true labels")
    t = pd.DataFrame({"run": run, "split": a["split"], "label": a["label"], "svm": a["pred"],
                      "cnn_lstm": b.loc[a.index, "pred"]})
    for m, src in (("svm", a), ("cnn_lstm", b.loc[a.index])):
        for c in classes:
            t[f"{m}_{PROB_PREFIX}{c}"] = src[PROB_PREFIX + c]
    metrics_path = runs / "cnn_lstm" / run / "metrics.json"
    info = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    return t.reset_index(), classes, info


def read_curves(folder: Path) -> pd.DataFrame | None:
    """The CNN-LSTM's per-epoch log written by dvclive, or None when there is none."""
    parts = {}
    for part in ("train", "val"):
        for name in ("loss", "acc"):
            f = folder / part / f"{name}.tsv"
            if not f.exists():
                return None
            parts[f"{part}_{name}"] = pd.read_csv(f, sep="\t").set_index("step")[name]
    return pd.DataFrame(parts)


# ---------------------------------------------------------------- statistics

def analyse(tests: pd.DataFrame, classes: list[str], prot: str, params: Params,
            info: dict[str, dict]) -> dict:
    """Pooled and per-fold metrics of one protocol's test clips."""
    rp = params.report
    clusters = tests["actor"].to_numpy() if prot == "actor" else None
    y = tests["label"].to_numpy()
    w = stats.resample_weights(len(tests), rp.bootstrap, rp.seed, clusters)
    res = {m: stats.model_metrics(y, tests[m].to_numpy(), classes, w, rp.confidence) for m in MODELS}
    res["gap"] = stats.gap_metrics(y, tests["svm"].to_numpy(), tests["cnn_lstm"].to_numpy(),
                                   classes, w, rp.confidence)
    res["n"], res["actors"] = len(tests), int(tests["actor"].nunique())
    folds = []
    for run, t in tests.groupby("run", sort=False):
        yt = t["label"].to_numpy()
        wt = stats.resample_weights(len(t), rp.bootstrap, rp.seed,
                                    t["actor"].to_numpy() if prot == "actor" else None)
        gap = stats.gap_metrics(yt, t["svm"].to_numpy(), t["cnn_lstm"].to_numpy(), classes, wt,
                                rp.confidence)
        folds.append({"run": run, "n": len(t), "actors": sorted(t["actor"].unique().tolist()),
                      **{m: float(np.mean(t[m] == t["label"])) for m in MODELS}, "gap": gap,
                      "best_epoch": info.get(run, {}).get("best_epoch"),
                      "cnn_lstm_val": info.get(run, {}).get("val", {}).get("accuracy")})
    res["folds"] = folds
    return res


def drops(pooled: dict[str, pd.DataFrame], params: Params) -> dict[str, Interval] | None:
    """Each model's accuracy under random CV minus under unseen speakers, paired over the clips
    tested under both, actors resampled (the actor protocol's clips are clustered by speaker)."""
    if not {"random", "actor"} <= set(pooled):
        return None
    r = pooled["random"].set_index("clip_id")
    a = pooled["actor"].set_index("clip_id")
    common = r.index.intersection(a.index)
    r, a = r.loc[common], a.loc[common]
    rp = params.report
    w = stats.resample_weights(len(common), rp.bootstrap, rp.seed, a["actor"].to_numpy())
    return {m: stats.paired_difference((r[m] == r["label"]).to_numpy(),
                                       (a[m] == a["label"]).to_numpy(), w, rp.confidence)
            for m in MODELS}


def per_actor(tests: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy per actor (rows) of each model (columns)."""
    return tests.groupby("actor")[list(MODELS)].apply(
        lambda g: pd.Series({m: float(np.mean(g[m] == tests.loc[g.index, "label"])) for m in MODELS}))


# ---------------------------------------------------------------- text

def conf_label(params: Params) -> str:
    return f"{params.report.confidence:.0%}".replace(".0%", "%")


def headline(res: dict, label: str, conf: str) -> str:
    g: Interval = res["gap"]["accuracy_pp"]
    word = "more" if g.value >= 0 else "less"
    return (f"Under {label}, on {res['n']} clips each tested once, the CNN-LSTM is "
            f"{abs(g.value):.1f} points {word} accurate than the SVM ({conf} CI {g.low:.1f} to "
            f"{g.high:.1f}; McNemar p = {res['gap']['mcnemar_p']:.2g}).")


def verdict(res: dict, conf: str) -> list[str]:
    """The reference's claims beside our pooled random-CV figures, said plainly."""
    g: Interval = res["gap"]["accuracy_pp"]
    ref_gap = REFERENCE["gap.accuracy_pp"]
    if g.low <= ref_gap <= g.high:
        word = f"**agrees** with it (+{ref_gap:.0f} lies inside the interval)."
    elif g.high < ref_gap:
        word = f"**does not reproduce** it (+{ref_gap:.0f} lies above the interval)."
    else:
        word = f"finds a **larger** gap (+{ref_gap:.0f} lies below the interval)."
    out = [f"The reference reports the CNN-LSTM about {ref_gap:.0f} points above the SVM; our pooled "
           f"gap is {g.value:+.1f} points ({conf} CI {g.low:+.1f} to {g.high:+.1f}), so our "
           f"measurement {word}"]
    if g.low <= 0 <= g.high:
        out.append("The interval includes 0: on these clips the two models are not distinguishable.")
    elif g.high < 0:
        out.append("The interval lies below 0: the SVM is the more accurate model here.")
    else:
        out.append("The interval lies above 0: the CNN-LSTM is the more accurate model here.")
    cnn: Interval = res["cnn_lstm"]["accuracy"]
    ref = REFERENCE["cnn_lstm.test.accuracy"] * 100
    inside = cnn.low * 100 <= ref <= cnn.high * 100
    out.append(f"The reference CNN-LSTM reached {ref:.0f}% test accuracy on 68 clips; ours reaches "
               f"{cnn.fmt()}% pooled over every clip, "
               + ("consistent with it." if inside else f"so {ref:.0f}% lies outside our interval."))
    return out


def code_version() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "src"],
                               capture_output=True, text=True).stdout.strip()
        return rev + (" (with uncommitted changes in src/)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def _table(header: list[str], rows: list[list[str]]) -> dict:
    return {"table": (header, rows)}


def _pp(i: Interval) -> str:
    return f"{i.value:+.1f} [{i.low:+.1f}, {i.high:+.1f}]"


def build_blocks(res: dict[str, dict], drop: dict | None, labels: dict[str, str], classes: list[str],
                 params: Params, figs: dict[str, str], counts: dict[str, dict]) -> list[dict]:
    conf = conf_label(params)
    b: list[dict] = [{"h1": "Speech emotion recognition on RAVDESS: CNN-LSTM vs SVM"}]
    b += [{"p": "**" + headline(res[p], labels[p], conf) + "**"} for p in res]
    if drop:
        b.append({"p": "From random cross-validation to unseen speakers the SVM loses "
                       f"{drop['svm'].value:.1f} points ({conf} CI {drop['svm'].low:.1f} to "
                       f"{drop['svm'].high:.1f}) and the CNN-LSTM {drop['cnn_lstm'].value:.1f} "
                       f"({drop['cnn_lstm'].low:.1f} to {drop['cnn_lstm'].high:.1f})."})
    b.append({"h2": f"Both answers side by side (pooled test accuracy, %, {conf} CI)"})
    header = ["model"] + [short_label(p) for p in res] + (["drop, random CV to unseen speakers (points)"]
                                                          if drop else [])
    rows = [[MODELS[m]] + [res[p][m]["accuracy"].fmt() for p in res] + ([_pp(drop[m])] if drop else [])
            for m in MODELS]
    rows.append(["gap, CNN-LSTM minus SVM (points)"] + [_pp(res[p]["gap"]["accuracy_pp"]) for p in res]
                + ([""] if drop else []))
    rows.append(["McNemar exact p of the gap"] + [f"{res[p]['gap']['mcnemar_p']:.2g}" for p in res]
                + ([""] if drop else []))
    b.append(_table(header, rows))
    b.append({"p": f"Intervals are {conf} percentile bootstrap intervals ({params.report.bootstrap} "
                   "resamples). Random CV resamples clips; unseen speakers resample actors (a "
                   "cluster bootstrap: clips of one speaker are not independent); the drop pairs "
                   "each clip's two test results and resamples actors. The gap is paired: each "
                   "resample draws the same clips for both models. McNemar's exact test is a "
                   "two-sided binomial test on the clips exactly one model got right."})
    if "accuracy" in figs:
        b.append({"img": (figs["accuracy"], "Pooled accuracy of both models under each protocol")})
    if "actors" in figs:
        b.append({"img": (figs["actors"], "Test accuracy per actor")})
    if "random" in res:
        b.append({"h2": "The reference's claims beside ours"})
        b += [{"p": s} for s in verdict(res["random"], conf)]
        b.append(_table(["figure", "reference (one split, 68 test clips)", f"ours (random CV, {res['random']['n']} clips)"], [
            ["CNN-LSTM test accuracy", "72%", res["random"]["cnn_lstm"]["accuracy"].fmt() + "%"],
            ["CNN-LSTM minus SVM, test accuracy", "about +10 points",
             _pp(res["random"]["gap"]["accuracy_pp"]) + " points"],
        ]))
        b.append({"p": "The reference's 74% validation figure is not comparable: the validation "
                       "clips choose the CNN-LSTM's best epoch, so its validation accuracy is biased "
                       "upward. Every figure here is on test clips, which chose nothing."})
    for p, r in res.items():
        b.append({"h2": f"{labels[p][0].upper()}{labels[p][1:]}"})
        b.append({"p": f"{r['n']} test clips of {r['actors']} actors, pooled over "
                       f"{len(r['folds'])} fold{'s' if len(r['folds']) > 1 else ''}; intervals resample "
                       f"{UNIT[p]}."})
        b.append(_table(["model", "accuracy", "balanced accuracy", "macro-F1"],
                        [[MODELS[m]] + [r[m][k].fmt() for k in SUMMARY] for m in MODELS]))
        g = r["gap"]
        b.append(_table(["gap (CNN-LSTM minus SVM)", "accuracy (points)", "balanced accuracy (points)",
                         "only CNN-LSTM right / only SVM right", "McNemar exact p"],
                        [["pooled", _pp(g["accuracy_pp"]), _pp(g["balanced_accuracy_pp"]),
                          f"{g['only_cnn_lstm_right']} / {g['only_svm_right']}", f"{g['mcnemar_p']:.2g}"]]))
        b.append({"h3": "Per fold"})
        b.append(_table(["fold", "test clips", "test actors", "SVM acc (%)", "CNN-LSTM acc (%)",
                         f"gap (points, {conf} CI)", "McNemar p", "CNN-LSTM best epoch",
                         "CNN-LSTM val acc (%, chose the epoch)"],
                        [[f["run"], str(f["n"]), ", ".join(map(str, f["actors"])) if p == "actor" else "all",
                          f"{100 * f['svm']:.1f}", f"{100 * f['cnn_lstm']:.1f}", _pp(f["gap"]["accuracy_pp"]),
                          f"{f['gap']['mcnemar_p']:.2g}", str(f["best_epoch"] or "-"),
                          f"{100 * f['cnn_lstm_val']:.1f}" if f["cnn_lstm_val"] is not None else "-"]
                         for f in r["folds"]]))
        for key, caption in ((f"forest_{p}", "Each fold's gap, the pooled gap beneath"),
                             (f"confusion_{p}", "Pooled confusion matrices"),
                             (f"per_class_f1_{p}", "Per-class F1, pooled"),
                             (f"curves_{p}", "CNN-LSTM training curves per fold")):
            if key in figs:
                b.append({"img": (figs[key], caption)})
        b.append({"h3": f"Per-class precision, recall and F1 (%, {conf} CI)"})
        b.append(_table(["class"] + [f"{MODELS[m]} {k}" for m in MODELS for k in ("precision", "recall", "F1")],
                        [[c] + [r[m][f"{k}.{c}"].fmt(digits=0) for m in MODELS
                                for k in ("precision", "recall", "f1")] for c in classes]))
    b.append({"h2": "Protocol"})
    pp, fp = params.prepare, params.folds
    lines = [f"Corpus: RAVDESS speech (Livingstone & Russo 2018), "
             f"{'all 24 actors' if params.download.actors == 'all' else 'actors ' + str(params.download.actors)}.",
             f"Classes: {len(classes)} ({', '.join(classes)}); protocol `{pp.classes}`"
             + (" (calm relabelled neutral, the original neutral clips dropped)." if pp.classes == "seven" else ".")]
    for p in res:
        c = counts[p]
        if p == "random":
            lines.append(f"Random CV: stratified {len(fp.folds_of('random'))}-fold (seed {fp.seed}); in "
                         f"each fold the validation clips are drawn, stratified, from the training "
                         f"folds at the reference's 80 : 15 ratio ({c['train']} training and {c['val']} "
                         "validation clips per fold on average).")
        elif p == "actor":
            lines.append(f"Unseen speakers: folds of {fp.actor_fold_size} consecutive actors; fold k "
                         f"tests, fold k+1 validates, the other actors train ({c['train']} training "
                         f"and {c['val']} validation clips per fold on average). The SVM's inner "
                         "grid-search folds are grouped by actor too.")
        else:
            lines.append(f"Single split: stratified {1 - fp.test_size - fp.val_size:.0%} / "
                         f"{fp.val_size:.0%} / {fp.test_size:.0%}, seed {fp.seed}.")
    lines.append(f"Validation clips serve only the CNN-LSTM's early stopping (patience "
                 f"{params.train_cnn_lstm.patience}, best epoch kept); the SVM chooses C and gamma by "
                 f"{params.train_svm.cv_folds}-fold grid search on its training clips. Training clips "
                 f"are augmented with {params.features_logmel.augment_copies} noisy copies each for "
                 "the CNN-LSTM only.")
    lines.append(f"Seeds: folds {fp.seed}, augmentation {params.features_logmel.seed}, SVM "
                 f"{params.train_svm.seed}, CNN-LSTM {params.train_cnn_lstm.seed}, bootstrap "
                 f"{params.report.seed} ({params.report.bootstrap} resamples, percentile intervals, "
                 f"{conf}).")
    lines.append(f"Code version: {code_version()}. Params: `params.yaml` (train_cnn_lstm: "
                 + ", ".join(f"{k}={v}" for k, v in params.train_cnn_lstm.model_dump().items()
                             if k in QUOTED_TRAINING_PARAMS) + ").")
    b += [{"li": s} for s in lines]
    return b


# ---------------------------------------------------------------- metrics files

def _flat_interval(out: dict, key: str, i: Interval, scale: float = 1.0, digits: int = 4) -> None:
    out[key] = round(i.value * scale, digits)
    out[f"{key}_ci_low"] = round(i.low * scale, digits)
    out[f"{key}_ci_high"] = round(i.high * scale, digits)


def flat_metrics(res: dict[str, dict], drop: dict | None) -> tuple[dict, dict]:
    """(headline, per fold): flat keys for `dvc metrics`, e.g. random.gap.accuracy_pp and
    runs.random-0.gap.accuracy_pp (sorted after the headline's keys in `dvc metrics show`)."""
    head: dict[str, float] = {}
    folds: dict[str, float] = {}
    for p, r in res.items():
        for m in MODELS:
            _flat_interval(head, f"{p}.{m}.accuracy", r[m]["accuracy"])
            for k in SUMMARY[1:]:
                head[f"{p}.{m}.{k}"] = round(r[m][k].value, 4)
        _flat_interval(head, f"{p}.gap.accuracy_pp", r["gap"]["accuracy_pp"], digits=2)
        head[f"{p}.gap.mcnemar_p"] = float(f"{r['gap']['mcnemar_p']:.3g}")  # 3 digits: p can be 1e-12
        for f in r["folds"]:
            key = f"runs.{f['run']}"
            for m in MODELS:
                folds[f"{key}.{m}.accuracy"] = round(f[m], 4)
            _flat_interval(folds, f"{key}.gap.accuracy_pp", f["gap"]["accuracy_pp"], digits=2)
            if f["best_epoch"] is not None:
                folds[f"{key}.cnn_lstm.best_epoch"] = f["best_epoch"]
    for m, i in (drop or {}).items():
        _flat_interval(head, f"drop.{m}.accuracy_pp", i, digits=2)
    return head, folds


# ---------------------------------------------------------------- the stage

def run(params_path: Path, runs: Path, manifest_path: Path, out: Path) -> dict:
    params = load_params(params_path)
    conf = conf_label(params)
    manifest = read_manifest(manifest_path).set_index("clip_id")
    res: dict[str, dict] = {}
    pooled: dict[str, pd.DataFrame] = {}
    labels: dict[str, str] = {}
    counts: dict[str, dict] = {}
    classes: list[str] | None = None
    curves: dict[str, dict[str, pd.DataFrame]] = {}
    for prot in params.folds.protocols():
        parts, info = [], {}
        for k in params.folds.folds_of(prot):
            run_name = f"{prot}-{k}"
            t, cls, info[run_name] = read_run(runs, run_name)
            if classes is None:
                classes = cls
            elif cls != classes:
                raise SerError(f"{run_name}: classes {cls} differ from the other runs' {classes}")
            parts.append(t)
            c = read_curves(runs / "cnn_lstm" / run_name / "live" / "plots" / "metrics")
            if c is not None and len(c):
                curves.setdefault(prot, {})[run_name] = c
        every = pd.concat(parts, ignore_index=True)
        unknown = set(every["clip_id"]) - set(manifest.index)
        if unknown:
            raise SerError(f"{manifest_path}: no clip {sorted(unknown)[0]} of the {prot} predictions "
                           "(are they from another corpus?)")
        every["actor"] = manifest.loc[every["clip_id"], "actor"].to_numpy()
        tests = every[every["split"] == "test"].reset_index(drop=True)
        if tests["clip_id"].duplicated().any():
            raise SerError(f"{prot}: clip {tests.loc[tests['clip_id'].duplicated(), 'clip_id'].iloc[0]} "
                           "is tested in two folds")
        n_folds = len(params.folds.folds_of(prot))
        labels[prot] = protocol_label(prot, n_folds, params)
        per_run = every.groupby("run")["split"].value_counts().unstack(fill_value=0) \
            .reindex(columns=["val", "test"], fill_value=0)
        counts[prot] = {"val": round(per_run["val"].mean()),
                        "train": round(len(manifest) - per_run["val"].mean() - per_run["test"].mean())}
        pooled[prot] = tests
        res[prot] = analyse(tests, classes, prot, params, info)
    drop = drops(pooled, params)

    figs: dict[str, str] = {}

    def fig(key: str) -> Path:
        figs[key] = f"figures/{key}.png"
        return out / figs[key]

    figures.accuracy({p: {m: r[m]["accuracy"] for m in MODELS} for p, r in res.items()},
                     {p: short_label(p) for p in res}, REFERENCE["cnn_lstm.test.accuracy"] * 100,
                     conf, fig("accuracy"))
    if set(pooled) - {"holdout"}:  # a single split tests too few clips per actor to show
        figures.per_actor({p: per_actor(t) for p, t in pooled.items() if p != "holdout"},
                          {p: short_label(p) for p in res}, fig("actors"))
    for p, r in res.items():
        figures.forest([(f["run"], f["n"], f["gap"]["accuracy_pp"]) for f in r["folds"]],
                       r["gap"]["accuracy_pp"], f"Gap per fold: {short_label(p)}", conf, fig(f"forest_{p}"))
        figures.confusions({m: pooled[p].rename(columns={m: "pred"}) for m in MODELS}, classes,
                           f"Pooled confusion matrices, {short_label(p)} (row-normalised, counts in "
                           "brackets)", fig(f"confusion_{p}"))
        figures.per_class_f1({m: r[m] for m in MODELS}, classes, f"Per-class F1, {short_label(p)}",
                             conf, fig(f"per_class_f1_{p}"))
        if p in curves:
            figures.curves(curves[p], {f["run"]: f["best_epoch"] for f in r["folds"] if f["best_epoch"]},
                           f"CNN-LSTM accuracy per epoch, {short_label(p)}", fig(f"curves_{p}"))
        for m in MODELS:  # per-clip rows for DVC's confusion template
            with atomic_path(out / "plots" / f"confusion_{m}_{p}.csv") as tmp:
                pooled[p].rename(columns={m: "predicted", "label": "actual"})[["actual", "predicted"]] \
                    .to_csv(tmp, index=False)
        for run_name, c in curves.get(p, {}).items():
            with atomic_path(out / "plots" / "curves" / f"{run_name}.csv") as tmp:
                c.rename_axis("step").reset_index().to_csv(tmp, index=False)
        cols = ["clip_id", "actor", "run", "label", "svm", "cnn_lstm"] + \
            [c for c in pooled[p].columns if PROB_PREFIX in c]
        with atomic_path(out / "predictions" / f"{p}.csv") as tmp:
            pooled[p][cols].sort_values("clip_id").to_csv(tmp, index=False)
    blocks = build_blocks(res, drop, labels, classes, params, figs, counts)
    write_text(out / "report.md", to_markdown(blocks))
    write_text(out / "report.html", to_html(blocks, out))
    head, per_fold = flat_metrics(res, drop)
    write_json(out / "metrics.json", head)
    write_json(out / "metrics_folds.json", per_fold)
    for p in res:
        log.info("%s", headline(res[p], labels[p], conf))
    log.info("wrote %s, %s, %s, %s and %d figures", out / "report.md", out / "report.html",
             out / "metrics.json", out / "metrics_folds.json", len(figs))
    return {"results": res, "drop": drop}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--runs", type=Path, required=True, help="the training stages' run folders")
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    run(a.params, a.runs, a.manifest, a.out)


if __name__ == "__main__":
    run_cli(main)
