"""Stage report: every model family's accuracy and the gaps between them (report.compare), pooled
over folds, with their uncertainty, under every protocol run.

    bin/stage report --runs runs --manifest data/prepared/manifest.csv --out reports

Reads each run's predictions tables (runs/<family>/<run>/predictions.csv) of every family
in the registry, pools the test clips of every fold of a protocol (under cross-validation each
clip is tested exactly once), and computes (ser.intervals) each family's metrics with bootstrap
intervals, the paired gaps with McNemar's exact test, per fold and pooled, and each family's drop
from the random to the actor protocol. Clips are resampled for the random and holdout protocols;
actors (cluster bootstrap) under the actor protocol and for the drop, since clips of one speaker
are not independent. The headline is report.compare's first pair: the reference's question,
CNN-LSTM minus the reference's SVM.

Writes report.md, report.html (pictures embedded), metrics.json (the headline: pooled per
protocol and family, the gaps, the drops), metrics_folds.json (per fold), figures/, plots/ (for
`dvc plots`) and predictions/<protocol>.csv (every family's pooled predictions, clip by clip).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from ser import corpus_section, figures, intervals, registry
from ser.errors import SerError, run_cli
from ser.features import level
from ser.intervals import SUMMARY, Interval
from ser.io import atomic_dir, write_json, write_text
from ser.params import PARAMS_FILE, Params, load_params
from ser.predictions import PROB_PREFIX
from ser.runs import classes_of, read_predictions
from ser.render import to_html, to_markdown
from ser.store import read_manifest

log = logging.getLogger("report")
FAMILIES = list(registry.FAMILIES)
LABEL = registry.labels()
# train_cnn_lstm params the protocol section quotes; dvc.yaml's report stage declares each
QUOTED_TRAINING_PARAMS = ("lstm", "epochs", "patience", "batch_size", "lr", "momentum", "decay",
                          "bf16", "channels_last")
# The reference method's published figures (R. Lederman; maelfabien/Multimodal-Emotion-Recognition),
# from its single random 80/15/5 split.
REFERENCE = {"cnn_lstm.val.accuracy": 0.74, "cnn_lstm.test.accuracy": 0.72, "gap.accuracy_pp": 10.0}
UNIT = {"random": "clips", "holdout": "clips", "actor": "actors"}


def pair_key(pair: list[str]) -> str:
    return f"{pair[0]}-{pair[1]}"


def pair_label(pair: list[str]) -> str:
    return f"{LABEL[pair[0]]} minus {LABEL[pair[1]]}"


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
    """One run's test and validation clips, every family side by side (column <family>: its
    prediction, <family>_prob_<class>: its probabilities), and the CNN-LSTM's training metrics."""
    tables = {f: read_predictions(runs / f / run / "predictions.csv") for f in FAMILIES}
    first = FAMILIES[0]
    classes = classes_of(tables[first])
    a = tables[first].set_index("clip_id")
    for f, t in tables.items():
        if classes_of(t) != classes:
            raise SerError(f"{run}: {LABEL[f]} and {LABEL[first]} predictions have different "
                           f"classes ({classes_of(t)} vs {classes})")
        b = t.set_index("clip_id")
        if set(a.index) != set(b.index) or not (a["split"] == b.loc[a.index, "split"]).all():
            raise SerError(f"{run}: {LABEL[f]} and {LABEL[first]} predictions hold different clips "
                           f"({len(b)} vs {len(a)}): were they trained on the same folds?")
        if not (a["label"] == b.loc[a.index, "label"]).all():
            raise SerError(f"{run}: {LABEL[f]} and {LABEL[first]} predictions disagree on true labels")
    out = pd.DataFrame({"run": run, "split": a["split"], "label": a["label"]})
    for f, t in tables.items():
        b = t.set_index("clip_id").loc[a.index]
        out[f] = b["pred"]
        for c in classes:
            out[f"{f}_{PROB_PREFIX}{c}"] = b[PROB_PREFIX + c]
    metrics_path = runs / registry.NETWORK / run / "metrics.json"
    info = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    return out.reset_index(), classes, info


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


def read_protocol(prot: str, runs: Path, manifest: pd.DataFrame, params: Params) -> dict:
    """Every fold of one protocol: its pooled clips (with actors), classes, CNN-LSTM training
    info and curves per run."""
    parts, info, curves, classes = [], {}, {}, None
    for k in params.folds.folds_of(prot):
        run_name = f"{prot}-{k}"
        t, cls, info[run_name] = read_run(runs, run_name)
        if classes is not None and cls != classes:
            raise SerError(f"{run_name}: classes {cls} differ from the other runs' {classes}")
        classes = cls
        parts.append(t)
        c = read_curves(runs / registry.NETWORK / run_name / "live" / "plots" / "metrics")
        if c is not None and len(c):
            curves[run_name] = c
    every = pd.concat(parts, ignore_index=True)
    unknown = set(every["clip_id"]) - set(manifest.index)
    if unknown:
        raise SerError(f"no clip {sorted(unknown)[0]} of the {prot} predictions in the manifest "
                       "(are they from another corpus?)")
    every["actor"] = manifest.loc[every["clip_id"], "actor"].to_numpy()
    tests = every[every["split"] == "test"].reset_index(drop=True)
    dup = tests["clip_id"].duplicated()
    if dup.any():
        raise SerError(f"{prot}: clip {tests.loc[dup, 'clip_id'].iloc[0]} is tested in two folds")
    per_run = every.groupby("run")["split"].value_counts().unstack(fill_value=0) \
        .reindex(columns=["val", "test"], fill_value=0)
    counts = {"val": round(per_run["val"].mean()),
              "train": round(len(manifest) - per_run["val"].mean() - per_run["test"].mean())}
    return {"tests": tests, "classes": classes, "info": info, "curves": curves, "counts": counts}


# ---------------------------------------------------------------- statistics

def gaps(t: pd.DataFrame, classes: list[str], w: np.ndarray, params: Params) -> dict[str, dict]:
    y = t["label"].to_numpy()
    return {pair_key(pr): intervals.gap_metrics(y, t[pr[0]].to_numpy(), t[pr[1]].to_numpy(),
                                                classes, w, params.report.confidence)
            for pr in params.report.compare}


def weights_for(t: pd.DataFrame, prot: str, params: Params) -> np.ndarray:
    rp = params.report
    return intervals.resample_weights(len(t), rp.bootstrap, rp.seed,
                                      t["actor"].to_numpy() if prot == "actor" else None)


def analyse(tests: pd.DataFrame, classes: list[str], prot: str, params: Params,
            info: dict[str, dict]) -> dict:
    """Pooled and per-fold metrics of one protocol's test clips."""
    w = weights_for(tests, prot, params)
    y = tests["label"].to_numpy()
    res = {f: intervals.model_metrics(y, tests[f].to_numpy(), classes, w, params.report.confidence)
           for f in FAMILIES}
    for f in FAMILIES:  # the commonest answer and its share of the clips: a collapse shows
        counts = tests[f].value_counts()
        res[f]["top_class"], res[f]["top_share"] = str(counts.index[0]), float(counts.iloc[0] / len(tests))
    res["gaps"] = gaps(tests, classes, w, params)
    res["n"], res["actors"] = len(tests), int(tests["actor"].nunique())
    res["folds"] = [{"run": run, "n": len(t), "actors": sorted(t["actor"].unique().tolist()),
                     **{f: float(np.mean(t[f] == t["label"])) for f in FAMILIES},
                     "gaps": gaps(t, classes, weights_for(t, prot, params), params),
                     "best_epoch": info.get(run, {}).get("best_epoch"),
                     "cnn_lstm_val": info.get(run, {}).get("val", {}).get("accuracy")}
                    for run, t in tests.groupby("run", sort=False)]
    return res


def drops(pooled: dict[str, pd.DataFrame], params: Params) -> dict[str, Interval] | None:
    """Each family's accuracy under random CV minus under unseen speakers, paired over the clips
    tested under both, actors resampled (the actor protocol's clips are clustered by speaker)."""
    if not {"random", "actor"} <= set(pooled):
        return None
    r = pooled["random"].set_index("clip_id")
    a = pooled["actor"].set_index("clip_id")
    common = r.index.intersection(a.index)
    r, a = r.loc[common], a.loc[common]
    rp = params.report
    w = intervals.resample_weights(len(common), rp.bootstrap, rp.seed, a["actor"].to_numpy())
    return {f: intervals.paired_difference((r[f] == r["label"]).to_numpy(),
                                           (a[f] == a["label"]).to_numpy(), w, rp.confidence)
            for f in FAMILIES}


def per_actor(tests: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy per actor (rows) of each family (columns)."""
    ok = pd.DataFrame({f: tests[f] == tests["label"] for f in FAMILIES}).astype(float)
    return ok.groupby(tests["actor"]).mean()


# ---------------------------------------------------------------- text

def conf_label(params: Params) -> str:
    return f"{params.report.confidence:.0%}".replace(".0%", "%")


def _pp(i: Interval) -> str:
    return f"{i.value:+.1f} [{i.low:+.1f}, {i.high:+.1f}]"


def headline(res: dict, label: str, params: Params) -> str:
    pair = params.report.compare[0]
    g = res["gaps"][pair_key(pair)]
    i: Interval = g["accuracy_pp"]
    word = "more" if i.value >= 0 else "less"
    return (f"Under {label}, on {res['n']} clips each tested once, the {LABEL[pair[0]]} is "
            f"{abs(i.value):.1f} points {word} accurate than the {LABEL[pair[1]]} "
            f"({conf_label(params)} CI {i.low:.1f} to {i.high:.1f}; McNemar p = {g['mcnemar_p']:.2g}).")


def verdict(res: dict, params: Params) -> list[str]:
    """The reference's claims beside our pooled random-CV figures, said plainly."""
    conf = conf_label(params)
    g: Interval = res["gaps"][pair_key(params.report.compare[0])]["accuracy_pp"]
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
    cnn: Interval = res[registry.NETWORK]["accuracy"]
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


def summary_blocks(res: dict[str, dict], drop: dict | None, unseen: dict[str, dict],
                   labels: dict[str, str], params: Params, figs: dict[str, str]) -> list[dict]:
    """The headline sentences and the table of every family under every protocol and on every
    unseen corpus (the README's results table takes its rows from it)."""
    conf = conf_label(params)
    b: list[dict] = [{"h1": "Speech emotion recognition on RAVDESS: " + ", ".join(LABEL.values())}]
    b += [{"p": "**" + headline(res[p], labels[p], params) + "**"} for p in res]
    if drop:
        b.append({"p": "From random cross-validation to unseen speakers " + "; ".join(
            f"the {LABEL[f]} loses {drop[f].value:.1f} points ({conf} CI {drop[f].low:.1f} to "
            f"{drop[f].high:.1f})" for f in FAMILIES) + "."})
    b.append({"h2": f"All families side by side (pooled test accuracy, %, {conf} CI)"})
    # (heading, each family's accuracy, the gaps) of each protocol, then of each unseen corpus
    columns = [(short_label(p), {f: r[f]["accuracy"] for f in FAMILIES}, r["gaps"]) for p, r in res.items()]
    columns += [(f"{name} (unseen corpus)", {f: u["families"][f]["metrics"]["accuracy"] for f in FAMILIES},
                 u["gaps"]) for name, u in unseen.items()]
    header = ["family"] + [c[0] for c in columns] + (
        ["drop, random CV to unseen speakers (points)"] if drop else [])
    rows = [[LABEL[f]] + [acc[f].fmt() for _, acc, _ in columns] + ([_pp(drop[f])] if drop else [])
            for f in FAMILIES]
    for pr in params.report.compare:
        rows.append([f"gap, {pair_label(pr)} (points; McNemar exact p)"]
                    + [f"{_pp(g[pair_key(pr)]['accuracy_pp'])}, p {g[pair_key(pr)]['mcnemar_p']:.2g}"
                       for _, _, g in columns]
                    + ([""] if drop else []))
    b.append(_table(header, rows))
    b.append({"p": "The families: " + "; ".join(f"**{f.label}**: {f.about}" for f in
                                                 registry.FAMILIES.values()) + "."})
    b.append({"p": f"Intervals are {conf} percentile bootstrap intervals ({params.report.bootstrap} "
                   "resamples). Random CV resamples clips; unseen speakers resample actors (a "
                   "cluster bootstrap: clips of one speaker are not independent); the drop pairs "
                   "each clip's two test results and resamples actors. Gaps are paired: each "
                   "resample draws the same clips for both families. McNemar's exact test is a "
                   "two-sided binomial test on the clips exactly one of the two got right."})
    for key, caption in (("accuracy", "Pooled accuracy of every family under each protocol"),
                         ("actors", "Test accuracy per actor")):
        if key in figs:
            b.append({"img": (figs[key], caption)})
    if "random" in res:
        b.append({"h2": "The reference's claims beside ours"})
        b += [{"p": s} for s in verdict(res["random"], params)]
        head = params.report.compare[0]
        b.append(_table(["figure", "reference (one split, 68 test clips)",
                         f"ours (random CV, {res['random']['n']} clips)"], [
            ["CNN-LSTM test accuracy", "72%", res["random"][registry.NETWORK]["accuracy"].fmt() + "%"],
            ["CNN-LSTM minus SVM, test accuracy", "about +10 points",
             _pp(res["random"]["gaps"][pair_key(head)]["accuracy_pp"]) + " points"],
        ]))
        b.append({"p": "The reference's 74% validation figure is not comparable: the validation "
                       "clips choose the CNN-LSTM's best epoch, so its validation accuracy is biased "
                       "upward. Every figure here is on test clips, which chose nothing."})
    return b


def protocol_blocks(p: str, r: dict, label: str, classes: list[str], params: Params,
                    figs: dict[str, str]) -> list[dict]:
    """One protocol's section: every family's metrics, the gaps, the folds, the figures."""
    conf = conf_label(params)
    b: list[dict] = [{"h2": f"{label[0].upper()}{label[1:]}"}]
    b.append({"p": f"{r['n']} test clips of {r['actors']} actors, pooled over {len(r['folds'])} "
                   f"fold{'s' if len(r['folds']) > 1 else ''}; intervals resample {UNIT[p]}."})
    b.append(_table(["family", "accuracy", "balanced accuracy", "macro-F1"],
                    [[LABEL[f]] + [r[f][k].fmt() for k in SUMMARY] for f in FAMILIES]))
    b.append(_table(["gap", "accuracy (points)", "balanced accuracy (points)",
                     "only the first right / only the second right", "McNemar exact p"],
                    [[pair_label(pr), _pp(g["accuracy_pp"]), _pp(g["balanced_accuracy_pp"]),
                      f"{g['only_a_right']} / {g['only_b_right']}", f"{g['mcnemar_p']:.2g}"]
                     for pr in params.report.compare for g in [r["gaps"][pair_key(pr)]]]))
    head = pair_key(params.report.compare[0])
    b.append({"h3": "Per fold"})
    b.append(_table(["fold", "test clips", "test actors"] + [f"{LABEL[f]} acc (%)" for f in FAMILIES]
                    + [f"headline gap (points, {conf} CI)", "McNemar p", "CNN-LSTM best epoch",
                       "CNN-LSTM val acc (%, chose the epoch)"],
                    [[f["run"], str(f["n"]), ", ".join(map(str, f["actors"])) if p == "actor" else "all"]
                     + [f"{100 * f[m]:.1f}" for m in FAMILIES]
                     + [_pp(f["gaps"][head]["accuracy_pp"]), f"{f['gaps'][head]['mcnemar_p']:.2g}",
                        str(f["best_epoch"] or "-"),
                        f"{100 * f['cnn_lstm_val']:.1f}" if f["cnn_lstm_val"] is not None else "-"]
                     for f in r["folds"]]))
    for key, caption in ((f"forest_{p}", "Each fold's gaps, the pooled gap beneath"),
                         (f"confusion_{p}", "Pooled confusion matrices"),
                         (f"per_class_f1_{p}", "Per-class F1, pooled"),
                         (f"curves_{p}", "CNN-LSTM training curves per fold")):
        if key in figs:
            b.append({"img": (figs[key], caption)})
    b.append({"h3": f"Per-class precision, recall and F1 (%, {conf} CI)"})
    b.append(_table(["class"] + [f"{LABEL[m]} {k}" for m in FAMILIES for k in ("precision", "recall", "F1")],
                    [[c] + [r[m][f"{k}.{c}"].fmt(digits=0) for m in FAMILIES
                            for k in ("precision", "recall", "f1")] for c in classes]))
    return b


CONDITIONING = ("level_dbfs", "floor_db", "trim_db")


def settings_blocks(res: dict[str, dict], drop: dict | None, unseen: dict[str, dict],
                    params: Params) -> list[dict]:
    """Every family in every setting in one table: each protocol on RAVDESS and each unseen corpus,
    with accuracy, balanced accuracy, the commonest answer's share, and the drop into the setting
    (random CV to unseen speakers; unseen RAVDESS speakers to each corpus)."""
    conf = conf_label(params)
    rows = []
    for p, r in res.items():
        for f in FAMILIES:
            into = _pp(drop[f]) if p == "actor" and drop else ""
            rows.append([short_label(p), LABEL[f], r[f]["accuracy"].fmt(),
                         r[f]["balanced_accuracy"].fmt(),
                         f"{100 * r[f]['top_share']:.0f}% {r[f]['top_class']}", into])
    for name, u in unseen.items():
        for f, r in u["families"].items():
            rows.append([name, LABEL[f], r["metrics"]["accuracy"].fmt(),
                         r["metrics"]["balanced_accuracy"].fmt(),
                         f"{100 * r['top_share']:.0f}% {r['top_class']}",
                         _pp(u["drop"][f]) if u["drop"] else ""])
    return [{"h2": f"Every family in every setting (%, {conf} CI)"},
            {"p": "What each family gains or loses from one setting to the next: the drop is "
                  "from random CV to unseen speakers for RAVDESS, and from RAVDESS's unseen "
                  "speakers to each corpus (points, positive: a loss). The commonest answer's "
                  "share shows a family that collapses onto one class."},
            _table(["setting", "family", "accuracy", "balanced accuracy",
                    "commonest answer (share)", "drop into it (points)"], rows)]


def default_families(actor: dict, params: Params) -> list[str]:
    """The README's rule for `ser predict`'s default families, on RAVDESS under unseen speakers
    (the actor protocol): of each table family's variants (feature sets of one params type: as
    published, with no conditioning, and conditioned), the one of higher pooled accuracy, a tie
    going to the published one; every other family as it is. In registry order."""
    groups: dict[type, list[str]] = {}
    for f in registry.FAMILIES.values():
        sec = getattr(params, f"features_{f.features}")
        groups.setdefault(type(sec) if hasattr(sec, "trim_db") else f.name, []).append(f.name)

    def key(name: str) -> tuple[float, bool]:
        sec = getattr(params, f"features_{registry.get(name).features}")
        published = all(getattr(sec, k, None) is None for k in CONDITIONING)
        return actor[name]["accuracy"].value, published
    chosen = {max(names, key=key) for names in groups.values()}
    return [f for f in registry.FAMILIES if f in chosen]


def default_line(actor: dict, params: Params) -> str:
    """What the rule chose and whether params.yaml's predict.families follows it."""
    chosen = default_families(actor, params)
    used = [f for f in registry.FAMILIES if f in params.predict.families]
    said = ", ".join(f"{LABEL[f]} ({100 * actor[f]['accuracy'].value:.1f}%)" for f in chosen)
    line = (f"`ser predict`'s default families, by the rule fixed before these results (of each SVM, "
            f"the variant more accurate on RAVDESS under unseen speakers; a tie goes to the "
            f"published one): {said}. ")
    if chosen == used:
        return line + "params.yaml's predict.families follows it."
    return line + (f"params.yaml's predict.families ({', '.join(used)}) does NOT follow it: "
                   "set it to the families above.")


def reading_line(params: Params) -> str:
    """What each family reads of a clip: the table families' conditioning (ser.features.level),
    grouped where it is the same, and the network's log-mel windows."""
    groups: dict[str, list[str]] = {}
    trimmed, network = False, []
    for f in registry.FAMILIES.values():
        sec = getattr(params, f"features_{f.features}")
        if not hasattr(sec, "trim_db"):
            network.append(f.label)
            continue
        trimmed |= sec.trim_db is not None
        words = (f"each clip at {sec.sample_rate / 1000:g} kHz, "
                 + level.describe(sec.level_dbfs, sec.floor_db, sec.trim_db))
        groups.setdefault(words, []).append(f.label)
    parts = [f"{' and '.join(labels)}: {words}" for words, labels in groups.items()]
    if network:
        parts.append(f"{' and '.join(network)}: log-mel windows of each clip from "
                     f"{params.features_logmel.offset_s:g} s, z-scored, its silence kept")
    line = "What each family reads. " + "; ".join(parts) + "."
    if trimmed:
        line += (" Cutting the silence, whose length says how a file was cut, costs the SVMs "
                 "accuracy under shared speakers and gains it under unseen speakers "
                 "(benchmarks/README.md).")
    return line


def protocol_lines(res: dict, classes: list[str], params: Params, counts: dict[str, dict]) -> list[dict]:
    """How the clips were split, trained and seeded, in words."""
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
                         f"and {c['val']} validation clips per fold on average). The SVMs' inner "
                         "grid-search folds are grouped by actor too.")
        else:
            lines.append(f"Single split: stratified {1 - fp.test_size - fp.val_size:.0%} / "
                         f"{fp.val_size:.0%} / {fp.test_size:.0%}, seed {fp.seed}.")
    lines.append(f"Validation clips serve only the CNN-LSTM's early stopping (patience "
                 f"{params.train_cnn_lstm.patience}, best epoch kept); the SVMs choose C and gamma by "
                 f"{params.train_svm.cv_folds}-fold grid search on their training clips. Training clips "
                 f"are augmented with {params.features_logmel.augment_copies} noisy copies each for "
                 "the CNN-LSTM only.")
    lines.append(reading_line(params))
    lines.append(f"Seeds: folds {fp.seed}, augmentation {params.features_logmel.seed}, SVM "
                 f"{params.train_svm.seed}, CNN-LSTM {params.train_cnn_lstm.seed}, bootstrap "
                 f"{params.report.seed} ({params.report.bootstrap} resamples, percentile intervals, "
                 f"{conf_label(params)}).")
    lines.append(f"Code version: {code_version()}. Params: `params.yaml` (train_cnn_lstm: "
                 + ", ".join(f"{k}={v}" for k, v in params.train_cnn_lstm.model_dump().items()
                             if k in QUOTED_TRAINING_PARAMS) + ").")
    return [{"h2": "Protocol"}] + [{"li": s} for s in lines]


# ---------------------------------------------------------------- metrics files

def _flat_interval(out: dict, key: str, i: Interval, scale: float = 1.0, digits: int = 4) -> None:
    out[key] = round(i.value * scale, digits)
    out[f"{key}_ci_low"] = round(i.low * scale, digits)
    out[f"{key}_ci_high"] = round(i.high * scale, digits)


def _flat_gap(out: dict, key: str, g: dict) -> None:
    _flat_interval(out, f"{key}.accuracy_pp", g["accuracy_pp"], digits=2)
    out[f"{key}.mcnemar_p"] = float(f"{g['mcnemar_p']:.3g}")  # 3 digits: p can be 1e-12


def flat_metrics(res: dict[str, dict], drop: dict | None) -> tuple[dict, dict]:
    """(headline, per fold): flat keys for `dvc metrics`, e.g. random.cnn_lstm.accuracy,
    random.gap.cnn_lstm-svm_stats.accuracy_pp and runs.random-0.gap.cnn_lstm-svm_stats.accuracy_pp."""
    head: dict[str, float] = {}
    folds: dict[str, float] = {}
    for p, r in res.items():
        for m in FAMILIES:
            _flat_interval(head, f"{p}.{m}.accuracy", r[m]["accuracy"])
            for k in SUMMARY[1:]:
                head[f"{p}.{m}.{k}"] = round(r[m][k].value, 4)
            head[f"{p}.{m}.top_share"] = round(r[m]["top_share"], 4)
        for key, g in r["gaps"].items():
            _flat_gap(head, f"{p}.gap.{key}", g)
        for f in r["folds"]:
            run = f"runs.{f['run']}"
            for m in FAMILIES:
                folds[f"{run}.{m}.accuracy"] = round(f[m], 4)
            for key, g in f["gaps"].items():
                _flat_gap(folds, f"{run}.gap.{key}", g)
            if f["best_epoch"] is not None:
                folds[f"{run}.cnn_lstm.best_epoch"] = f["best_epoch"]
    for m, i in (drop or {}).items():
        _flat_interval(head, f"drop.{m}.accuracy_pp", i, digits=2)
    return head, folds


# ---------------------------------------------------------------- outputs

def write_figures(res: dict, data: dict[str, dict], classes: list[str], params: Params,
                  folder: Path) -> dict[str, str]:
    """Every figure into `folder`; returns their paths as the report names them (figures/...)."""
    conf = conf_label(params)
    figs: dict[str, str] = {}

    def fig(key: str) -> Path:
        figs[key] = f"figures/{key}.png"
        return folder / f"{key}.png"

    figures.accuracy({p: {m: r[m]["accuracy"] for m in FAMILIES} for p, r in res.items()},
                     {p: short_label(p) for p in res}, REFERENCE["cnn_lstm.test.accuracy"] * 100,
                     conf, fig("accuracy"))
    if set(res) - {"holdout"}:  # a single split tests too few clips per actor to show
        figures.per_actor({p: per_actor(data[p]["tests"]) for p in res if p != "holdout"},
                          {p: short_label(p) for p in res}, fig("actors"))
    for p, r in res.items():
        figures.forest({pair_label(pr): ([(f["run"], f["n"], f["gaps"][pair_key(pr)]["accuracy_pp"])
                                          for f in r["folds"]], r["gaps"][pair_key(pr)]["accuracy_pp"])
                        for pr in params.report.compare},
                       f"Gaps per fold: {short_label(p)}", conf, fig(f"forest_{p}"))
        tests = data[p]["tests"]
        figures.confusions({m: tests.rename(columns={m: "pred"}) for m in FAMILIES}, classes,
                           f"Pooled confusion matrices, {short_label(p)} (row-normalised, counts in "
                           "brackets)", fig(f"confusion_{p}"))
        figures.per_class_f1({m: r[m] for m in FAMILIES}, classes, f"Per-class F1, {short_label(p)}",
                             conf, fig(f"per_class_f1_{p}"))
        if data[p]["curves"]:
            figures.curves(data[p]["curves"],
                           {f["run"]: f["best_epoch"] for f in r["folds"] if f["best_epoch"]},
                           f"CNN-LSTM accuracy per epoch, {short_label(p)}", fig(f"curves_{p}"))
    return figs


def write_tables(data: dict[str, dict], plots: Path, predictions: Path) -> None:
    """Per-clip rows for `dvc plots` (confusions, curves) and the pooled predictions."""
    for p, d in data.items():
        tests = d["tests"]
        for m in FAMILIES:
            (plots / "confusion").mkdir(parents=True, exist_ok=True)
            tests.rename(columns={m: "predicted", "label": "actual"})[["actual", "predicted"]] \
                .to_csv(plots / "confusion" / f"{m}_{p}.csv", index=False)
        for run_name, c in d["curves"].items():
            (plots / "curves").mkdir(parents=True, exist_ok=True)
            c.rename_axis("step").reset_index().to_csv(plots / "curves" / f"{run_name}.csv", index=False)
        cols = ["clip_id", "actor", "run", "label", *FAMILIES] + \
            [c for c in tests.columns if PROB_PREFIX in c]
        tests[cols].sort_values("clip_id").to_csv(predictions / f"{p}.csv", index=False)


def run(params_path: Path, runs: Path, manifest_path: Path, out: Path) -> dict:
    params = load_params(params_path)
    manifest = read_manifest(manifest_path).set_index("clip_id")
    data = {p: read_protocol(p, runs, manifest, params) for p in params.folds.protocols()}
    classes = next(iter(data.values()))["classes"]
    if any(d["classes"] != classes for d in data.values()):
        raise SerError("the protocols' runs have different classes")
    labels = {p: protocol_label(p, len(params.folds.folds_of(p)), params) for p in data}
    res = {p: analyse(d["tests"], classes, p, params, d["info"]) for p, d in data.items()}
    drop = drops({p: d["tests"] for p, d in data.items()}, params)
    # each folder whole and atomically: nothing of an earlier report's lingers (outputs persist)
    with atomic_dir(out / "plots") as plots, atomic_dir(out / "predictions") as predictions:
        write_tables(data, plots, predictions)
    unseen = {name: corpus_section.analyse(*corpus_section.read(runs, name), classes,
                                           data["actor"]["tests"] if "actor" in data else None, params)
              for name in params.corpora}
    with atomic_dir(out / "figures") as folder:
        figs = write_figures(res, data, classes, params, folder)
        for name, u in unseen.items():
            figs[f"confusion_{name}"] = f"figures/confusion_{name}.png"
            figures.confusions(corpus_section.confusion_tables(u), classes,
                               f"Confusion matrices on {name} (row-normalised, counts in brackets)",
                               folder / f"confusion_{name}.png")
    blocks = summary_blocks(res, drop, unseen, labels, params, figs)
    blocks += settings_blocks(res, drop, unseen, params)
    if "actor" in res:
        blocks.append({"p": default_line(res["actor"], params)})
    for p, r in res.items():
        blocks += protocol_blocks(p, r, labels[p], classes, params, figs)
    for name, u in unseen.items():
        blocks += corpus_section.blocks(name, u, classes, params, params.corpora[name].about, figs)
    blocks += protocol_lines(res, classes, params, {p: d["counts"] for p, d in data.items()})
    write_text(out / "report.md", to_markdown(blocks))
    write_text(out / "report.html", to_html(blocks, out))
    head, per_fold = flat_metrics(res, drop)
    if "actor" in res:  # 1 when params.yaml's predict.families is what the rule chose
        head["predict.families_follow_the_rule"] = int(default_families(res["actor"], params) == [
            f for f in registry.FAMILIES if f in params.predict.families])
    for name, u in unseen.items():
        corpus_section.flat(name, u, head)
    write_json(out / "metrics.json", head)
    write_json(out / "metrics_folds.json", per_fold)
    for p in res:
        log.info("%s", headline(res[p], labels[p], params))
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
