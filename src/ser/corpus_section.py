"""The report's section on each unseen corpus (stage evaluate_corpus's tables): every family's
ensemble with intervals, the chance level, the share of its commonest answer (a collapsed model
answers one class for most clips), per-class recall and the confusion matrix, the spread of its
fold models, the gaps of report.compare, and each family's drop from unseen speakers (RAVDESS,
actor protocol) to the unseen corpus.

Resampling: speakers (a cluster bootstrap) when the corpus has at least MIN_SPEAKERS of them,
clips otherwise; then an interval is about these speakers' clips, not about new speakers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ser import intervals, registry
from ser.errors import SerError
from ser.intervals import SUMMARY, Interval
from ser.params import Params

MIN_SPEAKERS = 10  # fewer speakers than this: resample clips
LABEL = registry.labels()


def read(runs: Path, name: str) -> tuple[pd.DataFrame, dict]:
    folder = runs / "corpus" / name
    try:
        pred = pd.read_csv(folder / "predictions.csv", dtype={"clip_id": str, "speaker": str,
                                                              "label": str, "pred": str})
        info = json.loads((folder / "info.json").read_text())
    except FileNotFoundError as err:
        raise SerError(f"{err.filename}: not found (run the evaluate_corpus@{name} stage first)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, json.JSONDecodeError) as err:
        raise SerError(f"{folder}: unreadable corpus results ({str(err).splitlines()[0]})") from None
    missing = set(registry.FAMILIES) - set(pred["family"])
    if missing:
        raise SerError(f"{folder / 'predictions.csv'}: no rows of {sorted(missing)[0]}")
    return pred, info


def _weights(t: pd.DataFrame, params: Params) -> tuple[np.ndarray, str]:
    rp = params.report
    by_speaker = t["speaker"].nunique() >= MIN_SPEAKERS
    w = intervals.resample_weights(len(t), rp.bootstrap, rp.seed,
                                   t["speaker"].to_numpy() if by_speaker else None)
    return w, "speakers" if by_speaker else "clips"


def analyse(pred: pd.DataFrame, info: dict, classes: list[str], actor_tests: pd.DataFrame | None,
            params: Params) -> dict:
    """Every family's metrics on the corpus (ensemble), its fold models' accuracies, the gaps and
    the drops from the actor protocol's pooled accuracy."""
    conf = params.report.confidence
    ens = pred[pred["model"] == "ensemble"]
    tables = {f: ens[ens["family"] == f].set_index("clip_id").sort_index() for f in registry.FAMILIES}
    first = tables[registry.NETWORK]
    for f, t in tables.items():
        if list(t.index) != list(first.index):
            raise SerError(f"corpus {info['corpus']}: {LABEL[f]} and CNN-LSTM answered other clips")
    y = first["label"].to_numpy()
    w, unit = _weights(first, params)
    res: dict = {"n": len(first), "speakers": int(first["speaker"].nunique()), "unit": unit,
                 "info": info, "families": {}, "gaps": {}, "drop": {}}
    present = [c for c in classes if c in set(y)]
    res["chance"] = 1 / len(present)
    res["majority"] = float(pd.Series(y).value_counts(normalize=True).max())
    for f, t in tables.items():
        p = t["pred"].to_numpy()
        m = intervals.model_metrics(y, p, classes, w, conf)
        counts = pd.Series(p).value_counts()
        folds = pred[(pred["family"] == f) & (pred["model"] != "ensemble")]
        fold_acc = {run: float(np.mean(g["pred"] == g["label"])) for run, g in folds.groupby("model")}
        res["families"][f] = {"metrics": m, "top_class": str(counts.index[0]),
                              "top_share": float(counts.iloc[0] / len(p)), "folds": fold_acc,
                              "confusion": pd.crosstab(pd.Categorical(y, classes),
                                                       pd.Categorical(p, classes), dropna=False)}
        if actor_tests is not None:
            ok_r = (actor_tests[f] == actor_tests["label"]).to_numpy(dtype=float)
            wr = intervals.resample_weights(len(actor_tests), params.report.bootstrap,
                                            params.report.seed, actor_tests["actor"].to_numpy())
            ok_c = (p == y).astype(float)
            boot = 100 * ((wr @ ok_r) / wr.sum(1) - (w @ ok_c) / w.sum(1))
            lo, hi = np.quantile(boot, [(1 - conf) / 2, 1 - (1 - conf) / 2])
            res["drop"][f] = Interval(float(100 * (ok_r.mean() - ok_c.mean())), float(lo), float(hi))
    for a, b in params.report.compare:
        res["gaps"][f"{a}-{b}"] = intervals.gap_metrics(y, tables[a]["pred"].to_numpy(),
                                                        tables[b]["pred"].to_numpy(), classes, w, conf)
    return res


def _pp(i: Interval) -> str:
    return f"{i.value:+.1f} [{i.low:+.1f}, {i.high:+.1f}]"


def blocks(name: str, res: dict, classes: list[str], params: Params, about: str,
           figs: dict[str, str]) -> list[dict]:
    conf = f"{params.report.confidence:.0%}".replace(".0%", "%")
    info = res["info"]
    b: list[dict] = [{"h2": f"Unseen corpus: {name}"}]
    dropped = ", ".join(f"{k} ({v})" for k, v in info["dropped"].items()) or "none"
    absent = ", ".join(info["classes_absent"]) or "none"
    b.append({"p": f"{about.strip()} {res['n']} clips of {res['speakers']} speakers through "
                   f"`ser predict`'s path, by each family's {len(next(iter(info['models'].values())))} "
                   f"speaker-independent fold models, averaged (the default of `ser predict`); "
                   f"{info['short_clips']} clips hold less than {params.predict.reliable_min_s:g} s "
                   f"of audio after the first {params.features_logmel.offset_s:g} s and are flagged short. "
                   f"Emotions dropped by "
                   f"the mapping: {dropped}; classes the corpus lacks: {absent}."})
    unit_text = ("speakers are resampled (a cluster bootstrap): the intervals are about new "
                 "speakers of this corpus" if res["unit"] == "speakers" else
                 f"clips are resampled, since {res['speakers']} speakers are too few to resample "
                 f"(fewer than {MIN_SPEAKERS}): the intervals are about these {res['speakers']} "
                 "speakers' clips, not about new speakers")
    b.append({"p": f"{conf} percentile bootstrap intervals; {unit_text}. Chance: "
                   f"{100 * res['chance']:.1f}% (uniform over the {round(1 / res['chance'])} classes "
                   f"present), {100 * res['majority']:.1f}% by always answering the commonest class."})
    rows = []
    for f, r in res["families"].items():
        m = r["metrics"]
        folds = r["folds"]
        spread = f"{100 * min(folds.values()):.1f}–{100 * max(folds.values()):.1f}" if folds else "-"
        rows.append([LABEL[f]] + [m[k].fmt() for k in SUMMARY]
                    + [f"{100 * r['top_share']:.0f}% {r['top_class']}", spread]
                    + ([_pp(res["drop"][f])] if res["drop"] else []))
    b.append({"table": (["family", "accuracy", "balanced accuracy", "macro-F1",
                         "commonest answer (share of clips)", "fold models' accuracy (min–max)"]
                        + (["drop from unseen speakers (points)"] if res["drop"] else []), rows)})
    b.append({"table": (["gap", "accuracy (points)", "balanced accuracy (points)",
                         "only the first right / only the second right", "McNemar exact p"],
                        [[f"{LABEL[a]} minus {LABEL[bb]}", _pp(g["accuracy_pp"]),
                          _pp(g["balanced_accuracy_pp"]), f"{g['only_a_right']} / {g['only_b_right']}",
                          f"{g['mcnemar_p']:.2g}"]
                         for a, bb in params.report.compare for g in [res["gaps"][f"{a}-{bb}"]]])})
    b.append({"h3": f"Per-class recall on {name} (%, {conf} CI)"})
    b.append({"table": (["class"] + [LABEL[f] for f in res["families"]],
                        [[c] + [res["families"][f]["metrics"][f"recall.{c}"].fmt(digits=0)
                                for f in res["families"]] for c in classes if c not in
                         info["classes_absent"]])})
    if f"confusion_{name}" in figs:
        b.append({"img": (figs[f"confusion_{name}"], f"Confusion matrices on {name}")})
    return b


def flat(name: str, res: dict, out: dict) -> None:
    """metrics.json keys: corpus.<name>.<family>.accuracy (with _ci_low/_ci_high), ..., the gaps
    and the drops."""
    key = f"corpus.{name}"
    for f, r in res["families"].items():
        m = r["metrics"]
        out[f"{key}.{f}.accuracy"] = round(m["accuracy"].value, 4)
        out[f"{key}.{f}.accuracy_ci_low"] = round(m["accuracy"].low, 4)
        out[f"{key}.{f}.accuracy_ci_high"] = round(m["accuracy"].high, 4)
        out[f"{key}.{f}.balanced_accuracy"] = round(m["balanced_accuracy"].value, 4)
        out[f"{key}.{f}.macro_f1"] = round(m["macro_f1"].value, 4)
        out[f"{key}.{f}.top_share"] = round(r["top_share"], 4)
    for k, g in res["gaps"].items():
        out[f"{key}.gap.{k}.accuracy_pp"] = round(g["accuracy_pp"].value, 2)
        out[f"{key}.gap.{k}.accuracy_pp_ci_low"] = round(g["accuracy_pp"].low, 2)
        out[f"{key}.gap.{k}.accuracy_pp_ci_high"] = round(g["accuracy_pp"].high, 2)
        out[f"{key}.gap.{k}.mcnemar_p"] = float(f"{g['mcnemar_p']:.3g}")
    for f, i in res["drop"].items():
        out[f"{key}.drop.{f}.accuracy_pp"] = round(i.value, 2)
        out[f"{key}.drop.{f}.accuracy_pp_ci_low"] = round(i.low, 2)
        out[f"{key}.drop.{f}.accuracy_pp_ci_high"] = round(i.high, 2)


def confusion_tables(res: dict) -> dict[str, pd.DataFrame]:
    """Per family, the (label, pred) rows the confusion figure draws."""
    out = {}
    for f, r in res["families"].items():
        cm = r["confusion"]
        rows = [(a, p) for a in cm.index for p in cm.columns for _ in range(int(cm.loc[a, p]))]
        out[f] = pd.DataFrame(rows, columns=["label", "pred"])
    return out

