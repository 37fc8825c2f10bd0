"""Apply the trained models to any recording.

    ser predict PATH... [--model svm|cnn_lstm|both] [--protocol auto|actor|random|holdout] [--fold K]
                [--hop SECONDS] [--json FILE] [--csv FILE] [--plot FILE.png|FOLDER]

PATH: audio files (WAV, FLAC, OGG, MP3; any rate; stereo is downmixed; any length) or folders,
walked for such files. Run from the repository root: the models are read from data/models and the
settings from params.yaml's `predict` section.

Each model family is an ensemble of its fold models (their probabilities averaged); by default the
speaker-independent (actor) protocol's models, since a new recording is a new speaker. Features
are computed by the feature stages' own functions with the feature params saved in the model
files, and a model whose feature params differ from params.yaml's is refused.

A recording is cut into segments of the CNN-LSTM's window (about 3.07 s of 16 kHz audio) every
`hop` seconds; both models predict every segment (a timeline) and the whole recording: the
CNN-LSTM as the mean of its segments, the SVM from the whole recording's statistics, as it was
trained. Every segment is a full window but for a recording shorter than one, which the
CNN-LSTM reads zero-padded as training clips were, or looped to fill the window when it holds
less audio than `predict.loop_below_s`; the SVM takes statistics of the audio as it is. With
less audio than any training clip had, it is flagged `short`: its answer is not reliable.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ser.audio import at_rate, decode
from ser.cpu import reexec_with_reused_memory
from ser.errors import SerError, run_cli
from ser.features_logmel import recording_windows, segment_bounds
from ser.features_stats import clip_stats, columns
from ser.params import (FeaturesLogmel, FeaturesStats, Params, PredictParams, TrainCnnLstm,
                        load_params)
from ser.train import build_model, prepare_model

log = logging.getLogger("predict")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
MODEL_NAMES = {"svm": "SVM", "cnn_lstm": "CNN-LSTM"}
PROTOCOL_ORDER = ("actor", "random", "holdout")  # auto: the first whose models exist
PRODUCER = "dvc repro"  # what makes the models


@dataclass
class Family:
    """One model family (svm or cnn_lstm) of one protocol: its fold models, used as an ensemble."""
    kind: str
    protocol: str
    runs: list[str]
    classes: list[str]
    features: dict
    models: list = field(repr=False)
    extra: dict = field(default_factory=dict, repr=False)

    def describe(self) -> str:
        """E.g. 'the 6 actor-protocol fold models, averaged' or 'the random-protocol model random-0'."""
        if len(self.runs) == 1:
            return f"the {self.protocol}-protocol model {self.runs[0]}"
        return f"the {len(self.runs)} {self.protocol}-protocol fold models, averaged"

    def proba(self, x) -> np.ndarray:
        """Mean of the fold models' class probabilities, in self.classes' order."""
        if self.kind == "svm":
            out = [m.predict_proba(x)[:, [list(m.classes_).index(c) for c in self.classes]]
                   for m in self.models]
        else:
            xb = torch.from_numpy(np.asarray(x, dtype=np.float32))
            out = []
            with torch.no_grad():
                for m, autocast in self.models:
                    logits = []
                    for i in range(0, len(xb), 64):
                        with autocast():
                            logits.append(m(xb[i:i + 64]).float())
                    out.append(torch.softmax(torch.cat(logits), 1).numpy())
        return np.mean(out, axis=0)


def _model_files(models: Path, kind: str, protocol: str, fold: int | None) -> list[Path]:
    suffix = ".joblib" if kind == "svm" else ".pt"
    files = sorted((models / kind).glob(f"{protocol}-*{suffix}"),
                   key=lambda f: int(f.stem.rsplit("-", 1)[1]))
    return [f for f in files if fold is None or f.stem == f"{protocol}-{fold}"]


def _check_features(path: Path, saved: dict | None, current: dict, section: str) -> dict:
    if saved is None:
        raise SerError(f"{path}: holds no feature params (made by an older version): rerun "
                       f"`{PRODUCER}`")
    for k, v in current.items():
        if k in saved and saved[k] != v:
            raise SerError(f"{path}: trained on {section}.{k} = {saved[k]!r}, but params.yaml now "
                           f"says {v!r}; its features would not match: rerun `{PRODUCER}` first")
    return saved


def load_family(models: Path, kind: str, protocol: str, params: Params,
                fold: int | None = None) -> Family | None:
    """The fold models of one family and protocol (or its one fold), or None when there are none."""
    files = _model_files(models, kind, protocol, fold)
    if not files:
        return None
    section = "features_stats" if kind == "svm" else "features_logmel"
    current = getattr(params, section).saved()
    fams, runs, classes, feats, extra = [], [], None, None, {}
    for f in files:
        try:
            saved = joblib.load(f) if kind == "svm" else torch.load(f, map_location="cpu",
                                                                     weights_only=False)
        except Exception as err:  # noqa: BLE001 - any unpickling failure: one line
            raise SerError(f"{f}: cannot load the model ({str(err).splitlines()[0]})") from None
        if not isinstance(saved, dict) or saved.get("kind") != kind:
            raise SerError(f"{f}: not a {MODEL_NAMES[kind]} model file of this project")
        f_feats = _check_features(f, saved.get("features"), current, section)
        if classes is not None and (saved["classes"] != classes or f_feats != feats):
            raise SerError(f"{f}: classes or feature params differ from {files[0]}'s")
        classes, feats = saved["classes"], f_feats
        runs.append(saved["run"])
        if kind == "svm":
            fams.append(saved["model"])
            extra["columns"] = saved["columns"]
        else:
            p = TrainCnnLstm(**saved["params"])
            raw = build_model(p, len(classes))
            raw.load_state_dict(saved["state_dict"])
            model, autocast = prepare_model(raw, device="cpu", channels_last=p.channels_last,
                                            bf16=p.bf16, compile=False)
            fams.append((model.eval(), autocast))
    return Family(kind, protocol, runs, classes, feats, fams, extra)


def load_families(models: Path, which: str, protocol: str, params: Params,
                  fold: int | None = None) -> list[Family]:
    kinds = ["svm", "cnn_lstm"] if which == "both" else [which]
    order = PROTOCOL_ORDER if protocol == "auto" else (protocol,)
    out = []
    for kind in kinds:
        fam = next((f for prot in order if (f := load_family(models, kind, prot, params, fold))),
                   None)
        if fam is None:
            which_fold = "" if fold is None else f" fold {fold}"
            raise SerError(f"no trained {MODEL_NAMES[kind]} models for protocol "
                           f"{' or '.join(order)}{which_fold} in {models / kind}: run `{PRODUCER}` "
                           f"(its train_{kind}@<protocol>-<fold> stages write them)")
        out.append(fam)
    return out


def window_grid(fams: list[Family], params: Params) -> FeaturesLogmel:
    """The feature params that cut a recording into segments: the CNN-LSTM's own (saved with its
    models) when it runs, else params.yaml's."""
    cnn = next((f for f in fams if f.kind == "cnn_lstm"), None)
    return FeaturesLogmel.from_saved(cnn.features) if cnn else params.features_logmel


def audio_files(paths: list[Path]) -> list[Path]:
    """The files given, and the audio files inside the folders given, in a stable order."""
    out = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
        else:
            out.append(p)
    return out


def _entry(classes: list[str], proba: np.ndarray) -> dict:
    """Top class, its probability and all of them; the top is the argmax of what is shown."""
    shown = np.round(np.asarray(proba, dtype=float), 4)
    k = int(np.argmax(shown))
    return {"top": classes[k], "prob": float(shown[k]),
            "probs": {c: float(v) for c, v in zip(classes, shown)}}


def analyse(path: Path, fams: list[Family], pp: PredictParams, grid: FeaturesLogmel) -> dict:
    """One recording file: see analyse_audio."""
    y, sr = decode(path)
    return analyse_audio(y, sr, path, fams, pp, grid)


def cnn_input(y_cnn: np.ndarray, pp: PredictParams, grid: FeaturesLogmel) -> tuple[np.ndarray, bool]:
    """What the CNN-LSTM reads of a recording (samples at grid.sample_rate from grid.offset_s):
    with less audio than pp.loop_below_s (and than one window), the audio looped to fill one
    window (True); else as it is, a recording shorter than the window zero-padded as the stage
    pads a clip. Much padding reads as "surprised" (bench_short.py measures both)."""
    if len(y_cnn) >= min(pp.loop_below_s * grid.sample_rate, grid.n_samples):
        return y_cnn, False
    return np.resize(y_cnn, grid.n_samples), True


def analyse_audio(y: np.ndarray, sr: int, path: Path | str, fams: list[Family], pp: PredictParams,
                  grid: FeaturesLogmel) -> dict:
    """One recording (mono samples at `sr`): the timeline of segments and the whole, for every
    family. The segments are the CNN-LSTM's windows (`grid`: its feature params), whichever
    models run. The CNN-LSTM reads a very short recording as `cnn_input` says; times are
    reported as recorded."""
    duration = len(y) / sr
    out: dict = {"file": str(path), "duration_s": round(duration, 3), "sample_rate": sr,
                 "warnings": [], "whole": {}, "segments": []}
    cnn = next((f for f in fams if f.kind == "cnn_lstm"), None)
    rate, offset = grid.sample_rate, grid.offset_s
    y_cnn = at_rate(y, sr, rate, offset)
    if len(y_cnn) == 0:
        raise SerError(f"{path}: no audio after the first {offset:g} s, which the models skip")
    n_real = len(y_cnn)
    hop = max(1, round(pp.hop_s * rate))
    bounds = segment_bounds(n_real, grid, hop)
    looped = False
    if cnn is not None:
        y_in, looped = cnn_input(y_cnn, pp, grid)
        segs = recording_windows(y_in, grid, hop)  # a looped recording: one full window
    min_len = round(pp.reliable_min_s * rate)
    for s, e in bounds:
        out["segments"].append({"start_s": round(offset + s / rate, 3), "end_s": round(offset + e / rate, 3),
                                "short": bool(e - s < min_len)})
    for fam in fams:
        if fam.kind == "cnn_lstm":
            proba = fam.proba(np.stack([w for _, _, w in segs]))
            whole = proba.mean(axis=0)
        else:
            sp = FeaturesStats.from_saved(fam.features)
            if sr < sp.sample_rate:
                out["warnings"].append(
                    f"sampled at {sr} Hz, below the {sp.sample_rate} Hz audio the SVM's statistics "
                    f"are taken from: its answers are unreliable (on RAVDESS clips sampled at 8 kHz "
                    f"it is at chance: benchmarks/bench_bandwidth.py)")
            ys = at_rate(y, sr, sp.sample_rate)
            rows = [clip_stats(ys, sp.sample_rate, sp)]
            for seg in out["segments"]:
                a, b = round(seg["start_s"] * sp.sample_rate), round(seg["end_s"] * sp.sample_rate)
                rows.append(clip_stats(ys[a:b], sp.sample_rate, sp))
            x = pd.DataFrame(np.vstack(rows), columns=columns(sp))[fam.extra["columns"]]
            if not np.isfinite(x.to_numpy()).all():
                raise SerError(f"{path}: its statistics are not finite (silent or damaged audio?)")
            p_all = fam.proba(x.to_numpy())
            whole, proba = p_all[0], p_all[1:]
        out["whole"][fam.kind] = _entry(fam.classes, whole)
        for seg, pr in zip(out["segments"], proba):
            seg[fam.kind] = _entry(fam.classes, pr)
    if all(seg["short"] for seg in out["segments"]):
        fill = "looped" if looped else "zero-padded"
        out["warnings"].append(
            f"{n_real / rate:.2f} s of audio after the first {offset:g} s, less than any training "
            f"clip ({pp.reliable_min_s:g} s): every answer is unreliable"
            + (f"; the CNN-LSTM read it {fill} to its {grid.n_samples / rate:.2f} s window"
               if cnn is not None else ""))
    return out


# ---------------------------------------------------------------- output

def to_rows(results: list[dict], fams: list[Family]) -> pd.DataFrame:
    """One row per file, model and segment (segment 'whole' for the whole recording)."""
    rows = []
    for r in results:
        for fam in fams:
            parts = [("whole", 0.0, r["duration_s"], False, r["whole"][fam.kind])]
            parts += [(i, s["start_s"], s["end_s"], s["short"], s[fam.kind])
                      for i, s in enumerate(r["segments"])]
            for seg, a, b, short, e in parts:
                rows.append({"file": r["file"], "model": fam.kind, "segment": seg, "start_s": a,
                             "end_s": b, "short": short, "top": e["top"], "prob": e["prob"],
                             **{f"prob_{c}": v for c, v in e["probs"].items()}})
    return pd.DataFrame(rows)


def to_text(results: list[dict], fams: list[Family]) -> str:
    lines = []
    for r in results:
        lines.append(f"{r['file']} ({r['duration_s']:.1f} s, {len(r['segments'])} segments)"
                     + "".join(f"\n  warning: {w}" for w in r["warnings"]))
        for fam in fams:
            e = r["whole"][fam.kind]
            lines.append(f"  whole recording, {MODEL_NAMES[fam.kind]:8s}: {e['top']:9s} {e['prob']:.2f}")
        head = "  " + f"{'segment':>15s}" + "".join(f"  {MODEL_NAMES[f.kind]:>15s}" for f in fams)
        lines.append(head)
        for s in r["segments"]:
            cells = "".join(f"  {s[f.kind]['top']:>10s} {s[f.kind]['prob']:.2f}" for f in fams)
            lines.append(f"  {s['start_s']:6.1f}-{s['end_s']:6.1f} s{cells}" + ("  short" if s["short"] else ""))
    return "\n".join(lines)


def plot(result: dict, fams: list[Family], path: Path) -> None:
    """The timeline of class probabilities, one panel per model."""
    from ser import figures
    plt = figures.plt
    fig, axes = plt.subplots(len(fams), 1, figsize=(10, 2.6 * len(fams)), sharex=True, squeeze=False)
    mids = [(s["start_s"] + s["end_s"]) / 2 for s in result["segments"]]
    for ax, fam in zip(axes[:, 0], fams):
        for c in fam.classes:
            ax.plot(mids, [s[fam.kind]["probs"][c] for s in result["segments"]], "o-", ms=3, label=c)
        for s in result["segments"]:
            if s["short"]:
                ax.axvspan(s["start_s"], s["end_s"], color="grey", alpha=0.15)
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability")
        ax.set_title(f"{MODEL_NAMES[fam.kind]} ({fam.describe()}); "
                     f"whole: {result['whole'][fam.kind]['top']}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=4, loc="upper right")
    axes[-1, 0].set_xlabel("time (s); grey: short segments, unreliable")
    fig.suptitle(Path(result["file"]).name)
    figures.save(fig, path)


def _write(target: str, text: str) -> None:
    if target == "-":
        sys.stdout.write(text)
    else:
        from ser.io import write_text
        write_text(target, text)


def run(paths: list[Path], *, which: str = "both", protocol: str = "auto", fold: int | None = None,
        hop: float | None = None, json_out: str | None = None, csv_out: str | None = None,
        plot_out: Path | None = None, params_path: Path = Path("params.yaml"),
        models: Path = Path("data/models")) -> int:
    """Predict every file; print the table; write what was asked. Returns the exit status."""
    params = load_params(params_path)
    if hop is not None and hop <= 0:
        raise SerError(f"--hop must be positive, got {hop}")
    pp = params.predict if hop is None else params.predict.model_copy(update={"hop_s": hop})
    fams = load_families(models, which, protocol, params, fold)
    for fam in fams:
        log.info("%s: %s", MODEL_NAMES[fam.kind], fam.describe())
    grid = window_grid(fams, params)
    files = audio_files(paths)
    if not files:
        raise SerError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in {', '.join(map(str, paths))}")
    results, failed = [], 0
    for f in tqdm(files, desc="predict", unit="file", disable=len(files) < 2):
        try:
            results.append(analyse(f, fams, pp, grid))
        except SerError as err:
            tqdm.write(f"error: {err}", file=sys.stderr)  # on its own line, beside the bar
            failed += 1
    if results:
        if json_out:
            _write(json_out, json.dumps({"models": {f.kind: {"protocol": f.protocol, "runs": f.runs,
                                                             "classes": f.classes} for f in fams},
                                         "files": results}, indent=2) + "\n")
        if csv_out:
            _write(csv_out, to_rows(results, fams).to_csv(index=False))
        if json_out != "-" and csv_out != "-":
            print(to_text(results, fams))  # the warnings under each file
        else:
            for r in results:
                for w in r["warnings"]:
                    print(f"warning: {r['file']}: {w}", file=sys.stderr)
        if plot_out:
            one = len(results) == 1 and plot_out.suffix.lower() == ".png"
            for r in results:
                plot(r, fams, plot_out if one else plot_out / f"{Path(r['file']).stem}.png")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="ser", description="Speech emotion recognition on RAVDESS.")
    sub = ap.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("predict", help="apply the trained models to recordings",
                        description=__doc__.splitlines()[0])
    pr.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="audio files or folders")
    pr.add_argument("--model", choices=["svm", "cnn_lstm", "both"], default="both")
    pr.add_argument("--protocol", choices=["auto", *PROTOCOL_ORDER], default="auto",
                    help="whose fold models (auto: actor, else random, else holdout)")
    pr.add_argument("--fold", type=int, default=None,
                    help="one fold's model instead of the ensemble (e.g. the fold that tested a clip)")
    pr.add_argument("--hop", type=float, default=None, help="seconds between segment starts "
                    "(default: params.yaml predict.hop_s)")
    pr.add_argument("--json", dest="json_out", metavar="FILE", help="write JSON ('-': stdout)")
    pr.add_argument("--csv", dest="csv_out", metavar="FILE", help="write CSV ('-': stdout)")
    pr.add_argument("--plot", type=Path, metavar="FILE.png|FOLDER",
                    help="probability timeline: a PNG for one file, a folder of PNGs for several")
    pr.add_argument("--params", type=Path, default=Path("params.yaml"))
    pr.add_argument("--models", type=Path, default=Path("data/models"))
    a = ap.parse_args(argv)
    code = run(a.paths, which=a.model, protocol=a.protocol, fold=a.fold, hop=a.hop, json_out=a.json_out,
               csv_out=a.csv_out, plot_out=a.plot, params_path=a.params, models=a.models)
    sys.exit(code)


def cli() -> None:
    """The `ser` console script. Like training, it restarts itself with glibc set to reuse freed
    memory: the CNN-LSTM's forward passes ran 4x faster so (benchmarks/bench_predict.py)."""
    reexec_with_reused_memory("ser.predict")
    run_cli(main)


if __name__ == "__main__":
    cli()
