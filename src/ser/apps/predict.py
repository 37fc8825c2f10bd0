"""Apply the trained models to any recording.

    ser predict PATH... [--model FAMILY... | all] [--protocol auto|actor|random|holdout] [--fold K]
                [--hop SECONDS] [--json FILE] [--csv FILE] [--plot FILE.png|FOLDER]

PATH: audio files (WAV, FLAC, OGG, MP3; any rate; stereo is downmixed; any length) or folders,
walked for such files. Run from the repository root: the models are read from data/models and the
settings from params.yaml's `predict` section.

Each model family (ser.registry; default: all) is an ensemble of its fold models (their
probabilities averaged): the protocol's folds as params.yaml lists them, every one present; by
default the speaker-independent (actor) protocol's models, since a new recording is a new speaker.
Features are computed by the feature families' own functions (ser.features) with the feature
params saved in the model files, and a model whose feature params differ from params.yaml's is
refused.

A recording is cut into segments of the CNN-LSTM's window (about 3.07 s of 16 kHz audio) every
`hop` seconds; every family predicts every segment (a timeline) and the whole recording: the
CNN-LSTM as the mean of its segments, the table families (SVMs) from the whole recording's
features, as they were trained. Every segment is a full window but for a recording shorter than
one, which the CNN-LSTM reads zero-padded as training clips were, or looped to fill the window
when it holds less audio than `predict.loop_below_s`; the SVMs take features of the audio as it
is. With less audio than any training clip had, it is flagged `short`: its answer is not reliable.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ser import registry
from ser.audio import at_rate, decode
from ser.cpu import reexec_with_reused_memory
from ser.errors import SerError, run_cli
from ser.features import egemaps, stats
from ser.features.logmel import recording_windows, segment_bounds
from ser.params import PARAMS_FILE, FeaturesLogmel, Params, PredictParams, load_params
from ser.registry import Family

log = logging.getLogger("predict")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
PROTOCOL_ORDER = ("actor", "random", "holdout")  # auto: the first whose models exist
PRODUCER = "dvc repro"  # what makes the models
TABLES = {m.FAMILY: m for m in (stats, egemaps)}  # feature families of one row per recording
LABEL = registry.labels()


@dataclass
class Ensemble:
    """One model family of one protocol: its fold models, their probabilities averaged."""
    family: Family
    protocol: str
    runs: list[str]
    classes: list[str]
    features: dict               # the feature params the models were trained on
    columns: list[str] | None    # a table family's feature columns, in the models' order
    probas: list = field(repr=False)

    @property
    def name(self) -> str:
        return self.family.name

    def describe(self) -> str:
        """E.g. 'the 6 actor-protocol fold models, averaged' or 'the random-protocol model random-0'."""
        if len(self.runs) == 1:
            return f"the {self.protocol}-protocol model {self.runs[0]}"
        return f"the {len(self.runs)} {self.protocol}-protocol fold models, averaged"

    def proba(self, x) -> np.ndarray:
        """Mean of the fold models' class probabilities, in self.classes' order."""
        return np.mean([p(x) for p in self.probas], axis=0)


def _check_features(path: Path, saved: dict | None, current: dict, section: str) -> dict:
    if saved is None:
        raise SerError(f"{path}: holds no feature params (made by an older version): rerun "
                       f"`{PRODUCER}`")
    for k, v in current.items():
        if k in saved and saved[k] != v:
            raise SerError(f"{path}: trained on {section}.{k} = {saved[k]!r}, but params.yaml now "
                           f"says {v!r}; its features would not match: rerun `{PRODUCER}` first")
    return saved


def model_files(models: Path, family: str, protocol: str, params: Params,
                fold: int | None) -> list[Path] | None:
    """The files of the protocol's folds as params lists them (or of its one fold); None when
    none is there; one line when only some are (a fold still training, or one removed)."""
    folds = params.folds.folds_of(protocol) if fold is None else [fold]
    files = [models / family / f"{protocol}-{k}.model" for k in folds]
    present = [f for f in files if f.is_file()]
    if not present:
        return None
    if len(present) < len(files):
        missing = [f.name for f in files if not f.is_file()]
        raise SerError(f"{models / family}: the {protocol} ensemble needs {len(files)} fold models "
                       f"but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing "
                       f"(still training? run `{PRODUCER}`, or pass --fold K for one fold)")
    return files


def load_ensemble(models: Path, family: Family, protocol: str, params: Params,
                  fold: int | None = None) -> Ensemble | None:
    """The fold models of one family and protocol (or its one fold), or None when there are none."""
    files = model_files(models, family.name, protocol, params, fold)
    if files is None:
        return None
    section = f"features_{family.features}"
    current = getattr(params, section).saved()
    ens = None
    for f in files:
        meta, proba = family.read_model(f)
        feats = _check_features(f, (meta.get("features") or {}).get("params"), current, section)
        if ens is None:
            ens = Ensemble(family, protocol, [], meta["classes"], feats, meta.get("columns"), [])
        elif meta["classes"] != ens.classes or feats != ens.features or meta.get("columns") != ens.columns:
            raise SerError(f"{f}: classes or feature params differ from {files[0]}'s")
        ens.runs.append(meta["run"])
        ens.probas.append(proba)
    return ens


def load_ensembles(models: Path, families: list[str], protocol: str, params: Params,
                   fold: int | None = None) -> list[Ensemble]:
    order = PROTOCOL_ORDER if protocol == "auto" else (protocol,)
    out = []
    for name in families:
        fam = registry.get(name)
        ens = next((e for prot in order if (e := load_ensemble(models, fam, prot, params, fold))),
                   None)
        if ens is None:
            which_fold = "" if fold is None else f" fold {fold}"
            raise SerError(f"no trained {fam.label} models for protocol {' or '.join(order)}"
                           f"{which_fold} in {models / name}: run `{PRODUCER}` (its "
                           f"{fam.stage}@<...> stages write them)")
        out.append(ens)
    return out


def window_grid(ens: list[Ensemble], params: Params) -> FeaturesLogmel:
    """The feature params that cut a recording into segments: the CNN-LSTM's own (saved with its
    models) when it runs, else params.yaml's."""
    cnn = next((e for e in ens if e.family.features == "logmel"), None)
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


def analyse(path: Path, ens: list[Ensemble], pp: PredictParams, grid: FeaturesLogmel) -> dict:
    """One recording file: see analyse_audio."""
    y, sr = decode(path)
    return analyse_audio(y, sr, path, ens, pp, grid)


def cnn_input(y_cnn: np.ndarray, pp: PredictParams, grid: FeaturesLogmel) -> tuple[np.ndarray, bool]:
    """What the CNN-LSTM reads of a recording (samples at grid.sample_rate from grid.offset_s):
    with less audio than pp.loop_below_s (and than one window), the audio looped to fill one
    window (True); else as it is, a recording shorter than the window zero-padded as the stage
    pads a clip. Much padding reads as "surprised" (bench_short.py measures both)."""
    if len(y_cnn) >= min(pp.loop_below_s * grid.sample_rate, grid.n_samples):
        return y_cnn, False
    return np.resize(y_cnn, grid.n_samples), True


def table_rows(y: np.ndarray, sr: int, e: Ensemble, segments: list[dict]) -> np.ndarray:
    """A table family's feature rows: the whole recording, then each segment (as recorded)."""
    mod = TABLES[e.family.features]
    fp = mod.PARAMS.from_saved(e.features)
    ys = at_rate(y, sr, fp.sample_rate)
    rows = [mod.from_samples(ys, fp.sample_rate, fp)]
    for seg in segments:
        a, b = round(seg["start_s"] * fp.sample_rate), round(seg["end_s"] * fp.sample_rate)
        rows.append(mod.from_samples(ys[a:b], fp.sample_rate, fp))
    x = pd.DataFrame(np.vstack(rows), columns=mod.columns(fp))[e.columns]
    return x.to_numpy()


def analyse_audio(y: np.ndarray, sr: int, path: Path | str, ens: list[Ensemble],
                  pp: PredictParams, grid: FeaturesLogmel) -> dict:
    """One recording (mono samples at `sr`): the timeline of segments and the whole, for every
    family. The segments are the CNN-LSTM's windows (`grid`: its feature params), whichever
    families run. The CNN-LSTM reads a very short recording as `cnn_input` says; times are
    reported as recorded."""
    duration = len(y) / sr
    out: dict = {"file": str(path), "duration_s": round(duration, 3), "sample_rate": sr,
                 "warnings": [], "whole": {}, "segments": []}
    cnn = next((e for e in ens if e.family.features == "logmel"), None)
    rate, offset = grid.sample_rate, grid.offset_s
    y_cnn = at_rate(y, sr, rate, offset)
    if len(y_cnn) == 0:
        raise SerError(f"{path}: no audio after the first {offset:g} s, which the models skip")
    n_real = len(y_cnn)
    hop = max(1, round(pp.hop_s * rate))
    looped = False
    min_len = round(pp.reliable_min_s * rate)
    for s, e in segment_bounds(n_real, grid, hop):
        out["segments"].append({"start_s": round(offset + s / rate, 3), "end_s": round(offset + e / rate, 3),
                                "short": bool(e - s < min_len)})
    for e in ens:
        if e.family.features == "logmel":
            y_in, looped = cnn_input(y_cnn, pp, grid)
            segs = recording_windows(y_in, grid, hop)  # a looped recording: one full window
            proba = e.proba(np.stack([w for _, _, w in segs]))
            whole = proba.mean(axis=0)
        else:
            rate_needed = e.features["sample_rate"]
            if sr < rate_needed:
                out["warnings"].append(
                    f"sampled at {sr} Hz, below the {rate_needed} Hz audio the {e.family.label}'s "
                    f"features are taken from: its answers are unreliable (on RAVDESS clips "
                    f"sampled at 8 kHz the reference SVM is at chance: benchmarks/bench_bandwidth.py)")
            x = table_rows(y, sr, e, out["segments"])
            if not np.isfinite(x).all():
                raise SerError(f"{path}: its {e.family.label} features are not finite (silent or "
                               "damaged audio?)")
            p_all = e.proba(x)
            whole, proba = p_all[0], p_all[1:]
        out["whole"][e.name] = _entry(e.classes, whole)
        for seg, pr in zip(out["segments"], proba):
            seg[e.name] = _entry(e.classes, pr)
    if all(seg["short"] for seg in out["segments"]):
        fill = "looped" if looped else "zero-padded"
        out["warnings"].append(
            f"{n_real / rate:.2f} s of audio after the first {offset:g} s, less than any training "
            f"clip ({pp.reliable_min_s:g} s): every answer is unreliable"
            + (f"; the CNN-LSTM read it {fill} to its {grid.n_samples / rate:.2f} s window"
               if cnn is not None else ""))
    return out


# ---------------------------------------------------------------- output

def to_rows(results: list[dict], ens: list[Ensemble]) -> pd.DataFrame:
    """One row per file, family and segment (segment 'whole' for the whole recording)."""
    rows = []
    for r in results:
        for e in ens:
            parts = [("whole", 0.0, r["duration_s"], False, r["whole"][e.name])]
            parts += [(i, s["start_s"], s["end_s"], s["short"], s[e.name])
                      for i, s in enumerate(r["segments"])]
            for seg, a, b, short, x in parts:
                rows.append({"file": r["file"], "model": e.name, "segment": seg, "start_s": a,
                             "end_s": b, "short": short, "top": x["top"], "prob": x["prob"],
                             **{f"prob_{c}": v for c, v in x["probs"].items()}})
    return pd.DataFrame(rows)


def to_text(results: list[dict], ens: list[Ensemble]) -> str:
    width = max(len(e.family.label) for e in ens)
    lines = []
    for r in results:
        lines.append(f"{r['file']} ({r['duration_s']:.1f} s, {len(r['segments'])} segments)"
                     + "".join(f"\n  warning: {w}" for w in r["warnings"]))
        for e in ens:
            x = r["whole"][e.name]
            lines.append(f"  whole recording, {e.family.label:{width}s}: {x['top']:9s} {x['prob']:.2f}")
        head = "  " + f"{'segment':>15s}" + "".join(f"  {e.family.label:>15s}" for e in ens)
        lines.append(head)
        for s in r["segments"]:
            cells = "".join(f"  {s[e.name]['top']:>10s} {s[e.name]['prob']:.2f}" for e in ens)
            lines.append(f"  {s['start_s']:6.1f}-{s['end_s']:6.1f} s{cells}" + ("  short" if s["short"] else ""))
    return "\n".join(lines)


def plot(result: dict, ens: list[Ensemble], path: Path) -> None:
    """The timeline of class probabilities, one panel per family."""
    from ser import figures
    plt = figures.plt
    fig, axes = plt.subplots(len(ens), 1, figsize=(10, 2.6 * len(ens)), sharex=True, squeeze=False)
    mids = [(s["start_s"] + s["end_s"]) / 2 for s in result["segments"]]
    for ax, e in zip(axes[:, 0], ens):
        for c in e.classes:
            ax.plot(mids, [s[e.name]["probs"][c] for s in result["segments"]], "o-", ms=3, label=c)
        for s in result["segments"]:
            if s["short"]:
                ax.axvspan(s["start_s"], s["end_s"], color="grey", alpha=0.15)
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability")
        ax.set_title(f"{e.family.label} ({e.describe()}); whole: {result['whole'][e.name]['top']}",
                     fontsize=9)
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


def as_json(results: list[dict], ens: list[Ensemble]) -> dict:
    """The object `ser predict --json` writes (and `POST /api/predict` answers for one file)."""
    return {"models": {e.name: {"protocol": e.protocol, "runs": e.runs, "classes": e.classes}
                       for e in ens}, "files": results}


def families_of(which: list[str] | None) -> list[str]:
    """--model's families (default or 'all': every registered family), in registry order."""
    if not which or "all" in which:
        return list(registry.FAMILIES)
    return [f for f in registry.FAMILIES if f in which]


def run(paths: list[Path], *, which: list[str] | None = None, protocol: str = "auto",
        fold: int | None = None, hop: float | None = None, json_out: str | None = None,
        csv_out: str | None = None, plot_out: Path | None = None,
        params_path: Path = PARAMS_FILE, models: Path = Path("data/models")) -> int:
    """Predict every file; print the table; write what was asked. Returns the exit status."""
    params = load_params(params_path)
    if hop is not None and not (np.isfinite(hop) and hop > 0):
        raise SerError(f"--hop must be a positive number of seconds, got {hop}")
    pp = params.predict if hop is None else params.predict.model_copy(update={"hop_s": hop})
    ens = load_ensembles(models, families_of(which), protocol, params, fold)
    for e in ens:
        log.info("%s: %s", e.family.label, e.describe())
    grid = window_grid(ens, params)
    files = audio_files(paths)
    if not files:
        raise SerError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in {', '.join(map(str, paths))}")
    results, failed = [], 0
    for f in tqdm(files, desc="predict", unit="file", disable=len(files) < 2):
        try:
            results.append(analyse(f, ens, pp, grid))
        except SerError as err:
            tqdm.write(f"error: {err}", file=sys.stderr)  # on its own line, beside the bar
            failed += 1
    if results:
        if json_out:
            _write(json_out, json.dumps(as_json(results, ens), indent=2) + "\n")
        if csv_out:
            _write(csv_out, to_rows(results, ens).to_csv(index=False))
        if json_out != "-" and csv_out != "-":
            print(to_text(results, ens))  # the warnings under each file
        else:
            for r in results:
                for w in r["warnings"]:
                    print(f"warning: {r['file']}: {w}", file=sys.stderr)
        if plot_out:
            one = len(results) == 1 and plot_out.suffix.lower() == ".png"
            for r in results:
                plot(r, ens, plot_out if one else plot_out / f"{Path(r['file']).stem}.png")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="ser", description="Speech emotion recognition on RAVDESS.")
    sub = ap.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("predict", help="apply the trained models to recordings",
                        description=__doc__.splitlines()[0])
    pr.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="audio files or folders")
    pr.add_argument("--model", nargs="+", choices=[*registry.FAMILIES, "all"], default=["all"],
                    metavar="FAMILY", help=f"model families ({', '.join(registry.FAMILIES)}) or all")
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
    pr.add_argument("--params", type=Path, default=PARAMS_FILE)
    pr.add_argument("--models", type=Path, default=Path("data/models"))
    a = ap.parse_args(argv)
    code = run(a.paths, which=a.model, protocol=a.protocol, fold=a.fold, hop=a.hop,
               json_out=a.json_out, csv_out=a.csv_out, plot_out=a.plot, params_path=a.params,
               models=a.models)
    sys.exit(code)


def cli() -> None:
    """The `ser` console script. Like training, it restarts itself with glibc set to reuse freed
    memory: the CNN-LSTM's forward passes ran 4x faster so (benchmarks/bench_predict.py)."""
    reexec_with_reused_memory("ser.apps.predict")
    run_cli(main)


if __name__ == "__main__":
    cli()
