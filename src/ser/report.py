"""Stage report: the accuracy gap between the CNN-LSTM and the SVM, with its uncertainty.

    python -m ser.report --svm reports/svm/predictions.csv \
        --cnn reports/cnn_lstm/predictions.csv --curves reports/cnn_lstm/live/plots/metrics \
        --manifest data/prepared/manifest.csv --out reports

Everything is computed from the two predictions tables: per-model metrics with bootstrap
confidence intervals (scipy.stats.bootstrap, resampling clips), the gap with a paired bootstrap
(the same resampled clips for both models) and McNemar's exact test on the discordant clips.
Writes report.md, report.html (pictures embedded), metrics.json, figures/ and plots/ (DVC).
"""

from __future__ import annotations

import argparse
import base64
import html
import logging
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import binomtest, bootstrap  # noqa: E402
from sklearn.metrics import (accuracy_score, balanced_accuracy_score,  # noqa: E402
                             confusion_matrix, f1_score, precision_recall_fscore_support)

from ser.errors import SerError, run_cli  # noqa: E402
from ser.evaluate import classes_of, read_predictions  # noqa: E402
from ser.io import atomic_path, write_json, write_text  # noqa: E402
from ser.params import Params, load_params  # noqa: E402

log = logging.getLogger("report")
MODELS = {"svm": "SVM", "cnn_lstm": "CNN-LSTM"}
# train_cnn_lstm params the protocol section quotes; dvc.yaml's report stage declares each
QUOTED_TRAINING_PARAMS = ("lstm", "epochs", "patience", "batch_size", "lr", "momentum", "decay",
                          "bf16", "channels_last")
# The reference method's published figures (R. Lederman; maelfabien/Multimodal-Emotion-Recognition).
REFERENCE = {"cnn_lstm.val.accuracy": 0.74, "cnn_lstm.test.accuracy": 0.72, "gap.accuracy_pp": 10.0}
SUMMARY = ("accuracy", "balanced_accuracy", "macro_f1")


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def fmt(self, scale: float = 100.0, digits: int = 1) -> str:
        return (f"{self.value * scale:.{digits}f} "
                f"[{self.low * scale:.{digits}f}, {self.high * scale:.{digits}f}]")


def _boot(data: tuple[np.ndarray, ...], statistic, n: int, confidence: float, seed: int):
    """Percentile bootstrap over clips (paired: one resample of rows serves every array)."""
    res = bootstrap(data, statistic, paired=True, vectorized=False, n_resamples=n,
                    confidence_level=confidence, method="percentile",
                    rng=np.random.default_rng(seed))
    return np.atleast_1d(statistic(*data)), np.atleast_1d(res.confidence_interval.low), \
        np.atleast_1d(res.confidence_interval.high)


def model_metrics(y: np.ndarray, pred: np.ndarray, classes: list[str], n: int,
                  confidence: float, seed: int) -> dict[str, Interval]:
    """Accuracy, balanced accuracy, macro-F1 and per-class P/R/F1, each with its CI."""
    codes = {c: i for i, c in enumerate(classes)}
    yi, pi = np.array([codes[v] for v in y]), np.array([codes[v] for v in pred])
    labels = list(range(len(classes)))

    def stat(a, b):
        p, r, f, _ = precision_recall_fscore_support(a, b, labels=labels, zero_division=0)
        return np.concatenate([[accuracy_score(a, b), balanced_accuracy_score(a, b),
                                f1_score(a, b, labels=labels, average="macro", zero_division=0)],
                               p, r, f])

    with warnings.catch_warnings():  # classes missing from a resample: sklearn warns, scores 0
        warnings.simplefilter("ignore")
        value, low, high = _boot((yi, pi), stat, n, confidence, seed)
    names = list(SUMMARY) + [f"{m}.{c}" for m in ("precision", "recall", "f1") for c in classes]
    return {k: Interval(*map(float, v)) for k, v in zip(names, zip(value, low, high))}


def gap_metrics(y: np.ndarray, pred_svm: np.ndarray, pred_cnn: np.ndarray, n: int,
                confidence: float, seed: int) -> dict[str, object]:
    """CNN-LSTM minus SVM in points, paired bootstrap CIs, and McNemar's exact test."""
    def stat(a, s, c):
        return np.array([accuracy_score(a, c) - accuracy_score(a, s),
                         balanced_accuracy_score(a, c) - balanced_accuracy_score(a, s)]) * 100

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value, low, high = _boot((y, pred_svm, pred_cnn), stat, n, confidence, seed)
    svm_ok, cnn_ok = pred_svm == y, pred_cnn == y
    only_cnn, only_svm = int((cnn_ok & ~svm_ok).sum()), int((svm_ok & ~cnn_ok).sum())
    p = binomtest(only_cnn, only_cnn + only_svm, 0.5).pvalue if only_cnn + only_svm else 1.0
    return {"accuracy_pp": Interval(*map(float, (value[0], low[0], high[0]))),
            "balanced_accuracy_pp": Interval(*map(float, (value[1], low[1], high[1]))),
            "only_cnn_lstm_right": only_cnn, "only_svm_right": only_svm, "mcnemar_p": float(p),
            "n": len(y)}


def paired(svm: pd.DataFrame, cnn: pd.DataFrame, split: str) -> pd.DataFrame:
    """The clips of `split` both models predicted, aligned by clip id."""
    a = svm[svm["split"] == split].set_index("clip_id")
    b = cnn[cnn["split"] == split].set_index("clip_id")
    if set(a.index) != set(b.index):
        raise SerError(f"the two predictions tables hold different {split} clips "
                       f"({len(a)} vs {len(b)}): were they trained on the same split?")
    if not (a["label"] == b.loc[a.index, "label"]).all():
        raise SerError(f"the two predictions tables disagree on the true labels of {split} clips")
    return pd.DataFrame({"label": a["label"], "svm": a["pred"], "cnn_lstm": b.loc[a.index, "pred"]})


# ---------------------------------------------------------------- pictures

def fig_confusions(tables: dict[str, pd.DataFrame], classes: list[str], path: Path, split: str) -> None:
    fig, axes = plt.subplots(1, len(tables), figsize=(6.2 * len(tables), 5.6))
    for ax, (key, t) in zip(np.atleast_1d(axes), tables.items()):
        cm = confusion_matrix(t["label"], t[key], labels=classes)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f"{norm[i, j]:.2f}\n({cm[i, j]})", ha="center", va="center",
                        fontsize=8, color="white" if norm[i, j] > 0.55 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        acc = np.mean(t["label"] == t[key])
        ax.set_title(f"{MODELS[key]} ({split}, {len(t)} clips, acc {acc:.1%})")
    fig.suptitle("Confusion matrices, row-normalised (counts in brackets)")
    _save(fig, path)


def fig_per_class_f1(metrics: dict[str, dict[str, Interval]], classes: list[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 4.8))
    x = np.arange(len(classes))
    for k, (key, m) in enumerate(metrics.items()):
        vals = [m[f"f1.{c}"] for c in classes]
        v = np.array([i.value for i in vals])
        err = np.array([[i.value - i.low for i in vals], [i.high - i.value for i in vals]])
        ax.bar(x + (k - 0.5) * 0.38, v, 0.38, yerr=err, capsize=3, label=MODELS[key])
    ax.set_xticks(x, classes)
    ax.set_ylim(0, 1.18)
    ax.set_ylabel("F1 (test)")
    ax.set_title("Per-class F1 on the test clips, with 95% bootstrap intervals")
    ax.legend(loc="upper center", ncol=2)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def fig_accuracy(metrics: dict[str, dict[str, dict[str, Interval]]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.2))
    rows = [(f"{MODELS[m]} {s}", metrics[m][s]["accuracy"]) for m in MODELS for s in ("val", "test")
            if s in metrics[m]]
    for y, (name, i) in enumerate(rows):
        ax.errorbar(i.value * 100, y, xerr=[[100 * (i.value - i.low)], [100 * (i.high - i.value)]],
                    fmt="o", capsize=4, color="C0" if name.startswith("SVM") else "C1")
    ax.axvline(72, ls="--", color="grey", lw=1)
    ax.set_ylim(-0.8, len(rows) - 0.5)
    ax.text(71.5, -0.65, "reference CNN-LSTM test 72%", fontsize=8, color="grey", ha="right")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.set_xlabel("accuracy (%), 95% bootstrap interval")
    ax.set_xlim(0, 100)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Accuracy of both models")
    _save(fig, path)


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


def fig_curves(curves: pd.DataFrame, path: Path) -> None:
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    epochs = curves.index + 1
    a.plot(epochs, curves["train_loss"], label="train")
    a.plot(epochs, curves["val_loss"], label="validation")
    a.set_title("CNN-LSTM loss")
    b.plot(epochs, curves["train_acc"], label="train")
    b.plot(epochs, curves["val_acc"], label="validation")
    best = curves["val_acc"].idxmax()
    b.axvline(best + 1, ls="--", color="grey", lw=1)
    b.text(best + 1.5, 0.05, f"best epoch {best + 1}", fontsize=8, color="grey")
    b.set_ylim(0, 1)
    b.set_title("CNN-LSTM accuracy")
    for ax in (a, b):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- text

def headline(gap: dict, split: str = "test") -> str:
    g: Interval = gap["accuracy_pp"]
    word = "more" if g.value >= 0 else "less"
    return (f"On {gap['n']} {split} clips the CNN-LSTM is {abs(g.value):.1f} points {word} accurate "
            f"than the SVM (95% CI {g.low:.1f} to {g.high:.1f}; McNemar p = {gap['mcnemar_p']:.2g}).")


def verdict(gap: dict, cnn_test: Interval) -> list[str]:
    """Our figures beside the reference's, said plainly."""
    g: Interval = gap["accuracy_pp"]
    ref_gap = REFERENCE["gap.accuracy_pp"]
    agrees = g.low <= ref_gap <= g.high
    out = [f"The reference reports the CNN-LSTM about {ref_gap:.0f} points above the SVM; our gap is "
           f"{g.value:.1f} points (95% CI {g.low:.1f} to {g.high:.1f}), so our measurement "
           + ("**agrees** with it (10 lies inside the interval)." if agrees else
              "**does not agree** with it (10 lies outside the interval).")]
    ref = REFERENCE["cnn_lstm.test.accuracy"] * 100
    inside = cnn_test.low * 100 <= ref <= cnn_test.high * 100
    out.append(f"The reference CNN-LSTM reached {ref:.0f}% test accuracy; ours reaches "
               f"{cnn_test.fmt()}% (95% CI in brackets), "
               + ("consistent with it." if inside else f"so {ref:.0f}% lies outside our interval."))
    if g.low <= 0 <= g.high:
        out.append("The interval of the gap includes 0: on this test set the two models are not "
                   "distinguishable.")
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


def build_blocks(res: dict, params: Params, manifest: pd.DataFrame | None, classes: list[str],
                 figures: dict[str, str]) -> list[dict]:
    b: list[dict] = [{"h1": "Speech emotion recognition on RAVDESS: CNN-LSTM vs SVM"},
                     {"p": "**" + headline(res["gap"]["test"]) + "**"}]
    b += [{"p": s} for s in verdict(res["gap"]["test"], res["cnn_lstm"]["test"]["accuracy"])]
    b.append({"h2": "Accuracy, balanced accuracy and macro-F1 (%, 95% bootstrap CI)"})
    rows = []
    for m in MODELS:
        for s in ("test", "val"):
            if s in res[m]:
                rows.append([MODELS[m], "test" if s == "test" else "validation",
                             str(res["n"][s])] + [res[m][s][k].fmt() for k in SUMMARY])
    b.append(_table(["model", "split", "clips", "accuracy", "balanced accuracy", "macro-F1"], rows))
    b.append({"h2": "The gap: CNN-LSTM minus SVM (percentage points)"})
    rows = []
    for s in ("test", "val"):
        g = res["gap"].get(s)
        if g:
            rows.append(["test" if s == "test" else "validation", str(g["n"]),
                         g["accuracy_pp"].fmt(1), g["balanced_accuracy_pp"].fmt(1),
                         f"{g['only_cnn_lstm_right']} / {g['only_svm_right']}", f"{g['mcnemar_p']:.3g}"])
    b.append(_table(["split", "clips", "accuracy gap", "balanced-accuracy gap",
                     "only CNN-LSTM right / only SVM right", "McNemar exact p"], rows))
    b.append({"p": "Paired bootstrap: each resample draws the same clips for both models. "
                   "McNemar's exact test is a two-sided binomial test on the clips where exactly one "
                   "model is right."})
    b.append({"h2": "Reference figures beside ours"})
    ours = res["cnn_lstm"]
    b.append(_table(["figure", "reference", "ours"], [
        ["CNN-LSTM validation accuracy", "74%", ours["val"]["accuracy"].fmt() + "%" if "val" in ours else "-"],
        ["CNN-LSTM test accuracy", "72%", ours["test"]["accuracy"].fmt() + "%"],
        ["CNN-LSTM minus SVM, test accuracy", "about +10 points",
         res["gap"]["test"]["accuracy_pp"].fmt(1) + " points"],
    ]))
    b.append({"h2": "Pictures"})
    for key, caption in (("accuracy", "Accuracy of both models with 95% intervals"),
                         ("confusion_test", "Confusion matrices on the test clips"),
                         ("confusion_val", "Confusion matrices on the validation clips"),
                         ("per_class_f1", "Per-class F1 on the test clips"),
                         ("curves", "CNN-LSTM training and validation curves")):
        if key in figures:
            b.append({"img": (figures[key], caption)})
    b.append({"h2": "Per-class precision, recall and F1 on the test clips (%, 95% CI)"})
    rows = []
    for c in classes:
        rows.append([c] + [res[m]["test"][f"{k}.{c}"].fmt(digits=0) for m in MODELS
                           for k in ("precision", "recall", "f1")])
    b.append(_table(["class"] + [f"{MODELS[m]} {k}" for m in MODELS
                                 for k in ("precision", "recall", "F1")], rows))
    b.append({"h2": "Protocol"})
    pp = params.prepare
    lines = [f"Corpus: RAVDESS speech (Livingstone & Russo 2018), "
             f"{'all 24 actors' if params.download.actors == 'all' else 'actors ' + str(params.download.actors)}.",
             f"Classes: {len(classes)} ({', '.join(classes)}); protocol `{pp.classes}`"
             + (" (calm relabelled neutral, the original neutral clips dropped)." if pp.classes == "seven" else ".")]
    if pp.split == "random":
        lines.append(f"Split: stratified random, {1 - pp.test_size - pp.val_size:.0%} / {pp.val_size:.0%} / "
                     f"{pp.test_size:.0%} train / validation / test, seed {pp.seed}.")
    else:
        lines.append(f"Split: by actor (speaker-independent), folds of {pp.actor_fold_size} actors, "
                     f"test fold {pp.test_fold}, validation fold {pp.val_fold}.")
    if manifest is not None:
        counts = manifest["split"].value_counts()
        lines.append(f"Clips: {len(manifest)} in all; train {counts.get('train', 0)}, validation "
                     f"{counts.get('val', 0)}, test {counts.get('test', 0)} (training clips are "
                     f"augmented with {params.features_logmel.augment_copies} noisy copies each for "
                     f"the CNN-LSTM only).")
    lines.append(f"Seeds: split {pp.seed}, augmentation {params.features_logmel.seed}, SVM "
                 f"{params.train_svm.seed}, CNN-LSTM {params.train_cnn_lstm.seed}, bootstrap "
                 f"{params.report.seed} ({params.report.bootstrap} resamples, percentile intervals).")
    lines.append(f"Code version: {code_version()}. Params: `params.yaml` (train_cnn_lstm: "
                 + ", ".join(f"{k}={v}" for k, v in params.train_cnn_lstm.model_dump().items()
                             if k in QUOTED_TRAINING_PARAMS)
                 + ").")
    b += [{"li": s} for s in lines]
    return b


def to_markdown(blocks: list[dict]) -> str:
    out = []
    for blk in blocks:
        (kind, val), = blk.items()
        if kind == "h1":
            out.append(f"# {val}\n")
        elif kind == "h2":
            out.append(f"\n## {val}\n")
        elif kind == "p":
            out.append(f"{val}\n")
        elif kind == "li":
            out.append(f"- {val}")
        elif kind == "table":
            header, rows = val
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "---|" * len(header))
            out += ["| " + " | ".join(r) + " |" for r in rows]
            out.append("")
        elif kind == "img":
            path, caption = val
            out.append(f"![{caption}]({path})\n")
    return "\n".join(out).rstrip() + "\n"


def to_html(blocks: list[dict], folder: Path) -> str:
    def inline(s: str) -> str:
        s = html.escape(s)
        parts = s.split("**")
        s = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
        parts = s.split("`")
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))

    body, in_list = [], False
    for blk in blocks:
        (kind, val), = blk.items()
        if kind != "li" and in_list:
            body.append("</ul>")
            in_list = False
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{inline(val)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{inline(val)}</p>")
        elif kind == "li":
            if not in_list:
                body.append("<ul>")
                in_list = True
            body.append(f"<li>{inline(val)}</li>")
        elif kind == "table":
            header, rows = val
            body.append("<table><tr>" + "".join(f"<th>{inline(h)}</th>" for h in header) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>"
                                  for r in rows) + "</table>")
        elif kind == "img":
            path, caption = val
            data = base64.b64encode((folder / path).read_bytes()).decode()
            body.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    if in_list:
        body.append("</ul>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
             "text-align:left}th{background:#f3f3f3}img{max-width:100%}figure{margin:1.5em 0}"
             "figcaption{color:#555;font-size:.9em}")
    return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>SER report</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def flat_metrics(res: dict) -> dict[str, float]:
    """Small flat keys for DVC, e.g. svm.test.accuracy, gap.test.accuracy_pp."""
    out: dict[str, float] = {}
    for m in MODELS:
        for s, mm in res[m].items():
            for k in SUMMARY:
                i = mm[k]
                out[f"{m}.{s}.{k}"] = round(i.value, 4)
                out[f"{m}.{s}.{k}_ci_low"] = round(i.low, 4)
                out[f"{m}.{s}.{k}_ci_high"] = round(i.high, 4)
    for s, g in res["gap"].items():
        for k in ("accuracy_pp", "balanced_accuracy_pp"):
            out[f"gap.{s}.{k}"] = round(g[k].value, 2)
            out[f"gap.{s}.{k}_ci_low"] = round(g[k].low, 2)
            out[f"gap.{s}.{k}_ci_high"] = round(g[k].high, 2)
        out[f"gap.{s}.mcnemar_p"] = round(g["mcnemar_p"], 4)
        out[f"gap.{s}.only_cnn_lstm_right"] = g["only_cnn_lstm_right"]
        out[f"gap.{s}.only_svm_right"] = g["only_svm_right"]
    return out


def run(params_path: Path, svm_path: Path, cnn_path: Path, curves_dir: Path,
        manifest_path: Path | None, out: Path) -> dict:
    params = load_params(params_path)
    rp = params.report
    svm, cnn = read_predictions(svm_path), read_predictions(cnn_path)
    classes = classes_of(svm)
    if classes_of(cnn) != classes:
        raise SerError(f"{svm_path} and {cnn_path} have different classes")
    res: dict = {"svm": {}, "cnn_lstm": {}, "gap": {}, "n": {}}
    tables = {}
    for s in ("test", "val"):
        if not (svm["split"] == s).any():
            continue
        t = paired(svm, cnn, s)
        tables[s] = t
        res["n"][s] = len(t)
        y = t["label"].to_numpy()
        for m in MODELS:
            res[m][s] = model_metrics(y, t[m].to_numpy(), classes, rp.bootstrap, rp.confidence, rp.seed)
        res["gap"][s] = gap_metrics(y, t["svm"].to_numpy(), t["cnn_lstm"].to_numpy(),
                                    rp.bootstrap, rp.confidence, rp.seed)
    if "test" not in tables:
        raise SerError(f"{svm_path}: no test clips to report on")
    figs = out / "figures"
    figures = {"accuracy": "figures/accuracy.png", "per_class_f1": "figures/per_class_f1.png"}
    fig_accuracy(res, out / figures["accuracy"])
    fig_per_class_f1({m: res[m]["test"] for m in MODELS}, classes, out / figures["per_class_f1"])
    for s, t in tables.items():
        figures[f"confusion_{s}"] = f"figures/confusion_{s}.png"
        fig_confusions({m: t for m in MODELS}, classes, out / figures[f"confusion_{s}"],
                       "test" if s == "test" else "validation")
        for m in MODELS:  # per-clip rows for DVC's confusion template
            with atomic_path(out / "plots" / f"confusion_{m}_{s}.csv") as tmp:
                t.rename(columns={m: "predicted", "label": "actual"})[["actual", "predicted"]] \
                    .to_csv(tmp, index=False)
    curves = read_curves(curves_dir)
    if curves is not None and len(curves):
        figures["curves"] = "figures/training_curves.png"
        fig_curves(curves, out / figures["curves"])
    manifest = pd.read_csv(manifest_path) if manifest_path and manifest_path.exists() else None
    blocks = build_blocks(res, params, manifest, classes, figures)
    write_text(out / "report.md", to_markdown(blocks))
    write_text(out / "report.html", to_html(blocks, out))
    flat = flat_metrics(res)
    write_json(out / "metrics.json", flat)
    log.info("%s", headline(res["gap"]["test"]))
    log.info("wrote %s, %s, %s and %d figures in %s", out / "report.md", out / "report.html",
             out / "metrics.json", len(figures), figs)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--svm", type=Path, required=True, help="SVM predictions table")
    ap.add_argument("--cnn", type=Path, required=True, help="CNN-LSTM predictions table")
    ap.add_argument("--curves", type=Path, required=True, help="dvclive plots/metrics folder")
    ap.add_argument("--manifest", type=Path, default=None)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    run(a.params, a.svm, a.cnn, a.curves, a.manifest, a.out)


if __name__ == "__main__":
    run_cli(main)
