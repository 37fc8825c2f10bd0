"""From a recording to every model family's answers: the one code path of `ser predict`, `ser
serve` and the unseen-corpus stage.

Each model family (ser.registry) is an ensemble of its fold models (their probabilities
averaged): the protocol's folds as params.yaml lists them, every one present. Features are the
feature families' own functions (ser.features) with the feature params saved in the model files;
a model whose feature params differ from params.yaml's is refused.

A recording is cut into segments of the CNN-LSTM's window (about 3.07 s of 16 kHz audio) every
`hop` seconds; every family predicts every segment (a timeline) and the whole recording: the
CNN-LSTM as the mean of its (non-silent) segments, the table families (SVMs) from the whole
recording's features, as they were trained. Every segment is a full window but for a recording
shorter than one, which the CNN-LSTM reads zero-padded as training clips were, or looped to fill
the window when it holds less audio than `predict.loop_below_s`; the SVMs take features of the
audio as it is. With less audio than any training clip had, a segment is flagged `short`; one of
digital silence is flagged `silent` and given no emotion.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ser import modelfile, registry
from ser.audio import SILENCE, at_rate, decode
from ser.errors import SerError
from ser.features import egemaps, stats
from ser.features.logmel import recording_windows, segment_bounds
from ser.params import FeaturesLogmel, Params, PredictParams
from ser.registry import Family

PROTOCOL_ORDER = ("actor", "random", "holdout")  # auto: the first whose models exist
PRODUCER = "dvc repro"  # what makes the models
DEFAULT_MODELS = Path("data/models")  # this repository's own runs
SHIPPED = Path("models")               # the released models, committed (stage release)
TABLES = {m.FAMILY: m for m in (stats, egemaps)}  # feature families of one row per recording


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
        return np.mean(self.fold_probas(x), axis=0)

    def fold_probas(self, x) -> np.ndarray:
        """(fold models, rows, classes): each fold model's probabilities."""
        return np.stack([p(x) for p in self.probas])


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
    check_shipped(models, files)
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


def default_models(families: list[str]) -> tuple[Path, str]:
    """Where the models come from when none is named: this repository's runs (data/models) when
    a run made any of these families, else the shipped models (models/); and a line saying so."""
    if any(any((DEFAULT_MODELS / f).glob(f"*{modelfile.SUFFIX}")) for f in families):
        return DEFAULT_MODELS, f"models: this repository's own runs ({DEFAULT_MODELS})"
    manifest = SHIPPED / "manifest.json"
    if manifest.is_file():
        m = read_manifest(SHIPPED)
        codes = sorted({e["code"] for e in m["files"].values()})
        return SHIPPED, (f"models: the shipped models ({SHIPPED}/, released {m.get('released', '?')}, "
                         f"{'; '.join(codes)})")
    return DEFAULT_MODELS, f"models: none in {DEFAULT_MODELS} or {SHIPPED}"


def read_manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SerError(f"{folder / 'manifest.json'}: unreadable ({err})") from None


def check_shipped(folder: Path, files: list[Path]) -> None:
    """A shipped file whose sha256 is not its manifest's is refused, in one line."""
    if not (folder / "manifest.json").is_file():
        return
    entries = read_manifest(folder)["files"]
    for f in files:
        rel = f.relative_to(folder).as_posix()
        want = entries.get(rel, {}).get("sha256")
        got = hashlib.sha256(f.read_bytes()).hexdigest()
        if want != got:
            raise SerError(f"{f}: sha256 {got[:16]}... is not the manifest's "
                           f"({(want or 'no entry')[:16]}...): refused; restore it with "
                           f"`git checkout {f}`")


def window_grid(ens: list[Ensemble], params: Params) -> FeaturesLogmel:
    """The feature params that cut a recording into segments: the CNN-LSTM's own (saved with its
    models) when it runs, else params.yaml's."""
    cnn = next((e for e in ens if e.family.features == "logmel"), None)
    return FeaturesLogmel.from_saved(cnn.features) if cnn else params.features_logmel


def _entry(classes: list[str], proba: np.ndarray) -> dict:
    """Top class, its probability and all of them; the top is the argmax of what is shown."""
    shown = np.round(np.asarray(proba, dtype=float), 4)
    k = int(np.argmax(shown))
    return {"top": classes[k], "prob": float(shown[k]),
            "probs": {c: float(v) for c, v in zip(classes, shown)}}


def analyse(path: Path, ens: list[Ensemble], pp: PredictParams, grid: FeaturesLogmel,
            folds: bool = False) -> dict:
    """One recording file: see analyse_audio."""
    y, sr = decode(path)
    return analyse_audio(y, sr, path, ens, pp, grid, folds)


def cnn_input(y_cnn: np.ndarray, pp: PredictParams, grid: FeaturesLogmel) -> tuple[np.ndarray, bool]:
    """What the CNN-LSTM reads of a recording (samples at grid.sample_rate from grid.offset_s):
    with less audio than pp.loop_below_s (and than one window), the audio looped to fill one
    window (True); else as it is, a recording shorter than the window zero-padded as the stage
    pads a clip. Much padding reads as "surprised" (bench_short.py measures both)."""
    if len(y_cnn) >= min(pp.loop_below_s * grid.sample_rate, grid.n_samples):
        return y_cnn, False
    return np.resize(y_cnn, grid.n_samples), True


def table_rows(y: np.ndarray, sr: int, e: Ensemble, segments: list[dict],
               resampled: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """A table family's feature rows: the whole recording, then each segment (as recorded).
    `resampled` keeps the recording at each rate for the next family that reads it."""
    mod = TABLES[e.family.features]
    fp = mod.PARAMS.from_saved(e.features)
    resampled = {} if resampled is None else resampled
    if fp.sample_rate not in resampled:
        resampled[fp.sample_rate] = at_rate(y, sr, fp.sample_rate)
    ys = resampled[fp.sample_rate]
    rows = [mod.from_samples(ys, fp.sample_rate, fp)]
    for seg in segments:
        a, b = round(seg["start_s"] * fp.sample_rate), round(seg["end_s"] * fp.sample_rate)
        rows.append(mod.from_samples(ys[a:b], fp.sample_rate, fp))
    x = pd.DataFrame(np.vstack(rows), columns=mod.columns(fp))[e.columns]
    return x.to_numpy()


def analyse_audio(y: np.ndarray, sr: int, path: Path | str, ens: list[Ensemble],
                  pp: PredictParams, grid: FeaturesLogmel, folds: bool = False) -> dict:
    """One recording (mono samples at `sr`): the timeline of segments and the whole, for every
    family. The segments are the CNN-LSTM's windows (`grid`: its feature params), whichever
    families run. The CNN-LSTM reads a very short recording as `cnn_input` says; times are
    reported as recorded. With `folds`, also each fold model's whole-recording probabilities
    (`fold_whole`: family -> (folds, classes)), which the ensemble's answer averages."""
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
                                "short": bool(e - s < min_len),
                                "silent": bool(np.abs(y_cnn[s:e]).max() < SILENCE)})
    if all(seg["silent"] for seg in out["segments"]):
        raise SerError(f"{path}: silent after the first {offset:g} s (peak below -60 dBFS), which "
                       "the models skip: nothing to recognise")
    heard = [i for i, seg in enumerate(out["segments"]) if not seg["silent"]]
    resampled: dict[int, np.ndarray] = {}  # the recording at each table family's rate, once
    if cnn is not None and sr / 2 < grid.fmax:
        out["warnings"].append(
            f"sampled at {sr} Hz: nothing above {sr / 2:g} Hz, while the CNN-LSTM's bands reach "
            f"{grid.fmax:g} Hz; its answers are unreliable")
    for e in ens:
        if e.family.features == "logmel":
            y_in, looped = cnn_input(y_cnn, pp, grid)
            segs = recording_windows(y_in, grid, hop)  # a looped recording: one full window
            per_fold = e.fold_probas(np.stack([w for _, _, w in segs]))
            proba = per_fold.mean(axis=0)
            rows = heard if len(proba) == len(out["segments"]) else slice(None)  # looped: one
            whole, per_fold_whole = proba[rows].mean(axis=0), per_fold[:, rows].mean(axis=1)
        else:
            rate_needed = e.features["sample_rate"]
            if sr < rate_needed:
                out["warnings"].append(
                    f"sampled at {sr} Hz, below the {rate_needed} Hz audio the {e.family.label}'s "
                    f"features are taken from: its answers are unreliable (on RAVDESS clips "
                    f"sampled at 8 kHz the reference SVM is at chance: benchmarks/bench_bandwidth.py)")
            x = table_rows(y, sr, e, out["segments"], resampled)
            if not np.isfinite(x).all():
                raise SerError(f"{path}: its {e.family.label} features are not finite (silent or "
                               "damaged audio?)")
            per_fold = e.fold_probas(x)
            per_fold_whole = per_fold[:, 0]
            p_all = per_fold.mean(axis=0)
            whole, proba = p_all[0], p_all[1:]
        out["whole"][e.name] = _entry(e.classes, whole)
        if folds:
            out.setdefault("fold_whole", {})[e.name] = np.round(per_fold_whole, 6).tolist()
        for seg, pr in zip(out["segments"], proba):  # a silent segment gets no emotion
            seg[e.name] = None if seg["silent"] else _entry(e.classes, pr)
    if all(seg["short"] for seg in out["segments"]):
        fill = "looped" if looped else "zero-padded"
        out["warnings"].append(
            f"{n_real / rate:.2f} s of audio after the first {offset:g} s, less than any training "
            f"clip ({pp.reliable_min_s:g} s): every answer is unreliable"
            + (f"; the CNN-LSTM read it {fill} to its {grid.n_samples / rate:.2f} s window"
               if cnn is not None else ""))
    return out


# ---------------------------------------------------------------- output
