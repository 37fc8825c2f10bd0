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

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ser import inference, registry
from ser.audio import SILENCE, Resampler, at_rate, blocks, decode, info, silent_error
from ser.errors import SerError
from ser.features import tables
from ser.features.logmel import fit_window, logmel_windows, recording_windows, segment_bounds
from ser.params import FeaturesLogmel, Params, PredictParams
from ser.registry import Family

PROTOCOL_ORDER = ("actor", "random", "holdout")  # auto: the first whose models exist
PRODUCER = "dvc repro"  # what makes the models
COMMITTED = Path("models")  # the training stages' models, committed to git; dvc.lock beside it
LOCK = "dvc.lock"           # records each model file's md5: a file that differs is refused


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
        """(fold models, rows, classes): each fold model's probabilities, all finite: a model
        that answers NaN or infinity is refused in one line, never written as an answer."""
        out = np.stack([p(x) for p in self.probas])
        bad = ~np.isfinite(out).all(axis=(1, 2))
        if bad.any():
            raise SerError(f"the {self.name} model {self.runs[int(np.argmax(bad))]} answers "
                           "non-finite probabilities (NaN or infinite weights?): refused")
        return out


def _is_cnn(e: Ensemble) -> bool:
    """The network family (log-mel windows); the others are table families (one row a piece)."""
    return e.family.features == "logmel"


def _check_features(path: Path, saved: dict | None, current: dict, section: str) -> dict:
    if saved is None:
        raise SerError(f"{path}: holds no feature params (made by an older version): rerun "
                       f"`{PRODUCER}`")
    missing = [k for k in current if k not in saved]
    if missing:
        raise SerError(f"{path}: holds no {section}.{missing[0]} (made by an older version): rerun "
                       f"`{PRODUCER}`")
    for k, v in current.items():
        if saved[k] != v:
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


def check_place(path: Path, meta: dict, protocol: str) -> None:
    """A model file's meta must say the run its name says (<protocol>-<fold>.model in its
    family's folder): a file copied or moved from another run would join the wrong ensemble, or
    one twice, and change its answers without a word. One line naming the file."""
    want = (path.stem, protocol, int(path.stem.rsplit("-", 1)[1]))
    got = (meta.get("run"), meta.get("protocol"), meta.get("fold"))
    if got != want:
        raise SerError(f"{path}: holds the model of run {got[0]!r} (protocol {got[1]!r}, fold "
                       f"{got[2]!r}), not of {path.stem}: a copied or misplaced file, refused")


def check_columns(path: Path, meta: dict, family: Family, params: Params) -> None:
    """A table family's file names the columns its feature set gives, in that order: the rows
    are taken by these names, so unknown or reordered ones would be a traceback or wrong answers."""
    mod = tables.module(family.features)
    if mod is None:
        return
    want = mod.columns(getattr(params, f"features_{family.features}"))
    what = tables.column_difference(meta.get("columns"), want)
    if what:
        raise SerError(f"{path}: {what}, not the {len(want)} columns of features_{family.features} in "
                       "their order: refused")


def load_ensemble(models: Path, family: Family, protocol: str, params: Params,
                  fold: int | None = None) -> Ensemble | None:
    """The fold models of one family and protocol (or its one fold), or None when there are none.
    Each file's meta is checked (place, feature params, columns) before its model is built."""
    files = model_files(models, family.name, protocol, params, fold)
    if files is None:
        return None
    check_committed(models, files)
    section = f"features_{family.features}"
    current = getattr(params, section).saved()
    ens = None
    for f in files:
        def check(meta: dict, f: Path = f) -> None:
            check_place(f, meta, protocol)
            _check_features(f, (meta.get("features") or {}).get("params"), current, section)
            check_columns(f, meta, family, params)
        meta, proba = inference.read_model(family, f, check)
        feats = meta["features"]["params"]
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
            raise SerError(f"no trained {fam.name} models ({fam.label}) for protocol {' or '.join(order)}"
                           f"{which_fold} in {models / name}: run `{PRODUCER}` (its "
                           f"{fam.stage}@<...> stages write them)")
        out.append(ens)
    return out


def default_models(project: Path) -> tuple[Path, str]:
    """Where the models come from when none is named: the project's committed ones (the models/
    folder in `project`, each file checked against its dvc.lock), and a line saying so."""
    folder = Path(project) / COMMITTED
    shown = COMMITTED if folder.resolve() == COMMITTED.resolve() else folder
    return folder, f"models: the committed models ({shown}/, checked against {LOCK})"


def _lock_md5s(lock: Path) -> dict[str, str]:
    """Every output path dvc.lock records, with its md5: parsed once per version of the file
    (about 60 ms here), not once per family loaded."""
    st = lock.stat()
    return _parse_lock(lock.resolve(), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _parse_lock(lock: Path, mtime_ns: int, size: int) -> dict[str, str]:
    import yaml
    try:
        stages = (yaml.load(lock.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
                  or {}).get("stages") or {}
        return {o["path"]: o["md5"] for st in stages.values() for o in st.get("outs") or []
                if "md5" in o}
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError) as err:
        raise SerError(f"{lock}: unreadable ({str(err).splitlines()[0]})") from None


def check_committed(folder: Path, files: list[Path]) -> None:
    """In a repository's models/ folder (a dvc.lock beside it), every file must have the md5 that
    dvc.lock records for it, the one the committed report measured: else it is refused, in one
    line. Files elsewhere (--models DIR) are not checked against a lock."""
    lock = folder.parent / LOCK
    if folder.name != COMMITTED.name or not lock.is_file():
        return
    md5s = _lock_md5s(lock)
    for f in files:
        rel = f.relative_to(folder.parent).as_posix()
        want = md5s.get(rel)
        if want is None:
            raise SerError(f"{f}: not recorded in {LOCK} (no stage of this checkout wrote it): "
                           f"refused; run `{PRODUCER}`, or pass --models with its folder")
        got = hashlib.md5(f.read_bytes()).hexdigest()
        if got != want:
            raise SerError(f"{f}: md5 {got[:12]}... is not the one {LOCK} records ({want[:12]}...): "
                           f"refused; restore it with `git checkout {f}`, or run `{PRODUCER}`")


def window_grid(ens: list[Ensemble], params: Params) -> FeaturesLogmel:
    """The feature params that cut a recording into segments: the CNN-LSTM's own (saved with its
    models) when it runs, else params.yaml's."""
    cnn = next(filter(_is_cnn, ens), None)
    return FeaturesLogmel.from_saved(cnn.features) if cnn else params.features_logmel


def _entry(classes: list[str], proba: np.ndarray) -> dict:
    """Top class, its probability and all of them; the top is the argmax of what is shown."""
    shown = np.round(np.asarray(proba, dtype=float), 4)
    k = int(np.argmax(shown))
    return {"top": classes[k], "prob": float(shown[k]),
            "probs": {c: float(v) for c, v in zip(classes, shown)}}


BLOCK_S = 30.0  # a long recording is read this many seconds at a time
BATCH = 8       # segments of a long recording through the models at a time (memory: bench_predict)


def analyse(path: Path, ens: list[Ensemble], pp: PredictParams, grid: FeaturesLogmel,
            folds: bool = False, timeline: bool = True, name: str | None = None) -> dict:
    """One recording file (reported as `name`, default its path): see analyse_audio. One longer
    than pp.whole_max_s is read in blocks, twice (analyse_long), never whole."""
    name = str(path) if name is None else name
    frames, sr = info(path)
    if frames == 0 or frames / sr > pp.whole_max_s:  # 0: a header without a length (MP3)
        return analyse_long(lambda: blocks(path, round(BLOCK_S * sr)), sr, name, ens, pp, grid,
                            folds, silent_file=path)
    y, sr = decode(path)
    return analyse_audio(y, sr, name, ens, pp, grid, folds, timeline)


def cnn_input(y_cnn: np.ndarray, pp: PredictParams, grid: FeaturesLogmel) -> tuple[np.ndarray, bool]:
    """What the CNN-LSTM reads of a recording (samples at grid.sample_rate from grid.offset_s):
    with less audio than pp.loop_below_s (and than one window), the audio looped to fill one
    window (True); else as it is, a recording shorter than the window zero-padded as the stage
    pads a clip. Much padding reads as "surprised" (bench_short.py measures both)."""
    if len(y_cnn) >= min(pp.loop_below_s * grid.sample_rate, grid.n_samples):
        return y_cnn, False
    return np.resize(y_cnn, grid.n_samples), True


def _table_x(e: Ensemble, pieces: list[np.ndarray]) -> np.ndarray:
    """A table family's feature rows of some pieces of audio (at its rate), in its models'
    column order."""
    mod = tables.module(e.family.features)
    fp = mod.PARAMS.from_saved(e.features)
    rows = [mod.from_samples(y, fp.sample_rate, fp) for y in pieces]
    return pd.DataFrame(np.vstack(rows), columns=mod.columns(fp))[e.columns].to_numpy()


def table_rows(y: np.ndarray, sr: int, e: Ensemble, segments: list[dict],
               resampled: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """A table family's feature rows: the whole recording, then each segment (as recorded).
    `resampled` keeps the recording at each rate for the next family."""
    rate = e.features["sample_rate"]
    resampled = {} if resampled is None else resampled
    if rate not in resampled:
        resampled[rate] = at_rate(y, sr, rate)
    ys = resampled[rate]
    return _table_x(e, [ys] + [ys[round(seg["start_s"] * rate):round(seg["end_s"] * rate)]
                               for seg in segments])


def _checked(e: Ensemble, x: np.ndarray, path) -> np.ndarray:
    """(folds, rows, classes) of a table family's rows, which must be finite."""
    if not np.isfinite(x).all():
        raise SerError(f"{path}: its {e.family.label} features are not finite (silent or damaged "
                       "audio?)")
    return e.fold_probas(x)


_POOL: list = []


def _beside(job, *others) -> None:
    """Run `job` here and the `others` in one helper thread meanwhile (openSMILE and NumPy let go
    of the interpreter while they compute, so the table families overlap the CNN-LSTM on a
    second core); both finish before it returns, and an error of either is raised."""
    if not others:
        return job()
    if not _POOL:
        from concurrent.futures import ThreadPoolExecutor
        _POOL.append(ThreadPoolExecutor(1, thread_name_prefix="ser-tables"))
    fut = _POOL[0].submit(lambda: [f() for f in others])
    try:
        job()
    finally:
        fut.result()


def _warnings(sr: int, ens: list[Ensemble], grid: FeaturesLogmel) -> list[str]:
    out = []
    if any(map(_is_cnn, ens)) and sr / 2 < grid.fmax:
        out.append(f"sampled at {sr} Hz: nothing above {sr / 2:g} Hz, while the CNN-LSTM's bands "
                   f"reach {grid.fmax:g} Hz; its answers are unreliable")
    for e in ens:
        rate_needed = e.features.get("sample_rate")
        if not _is_cnn(e) and sr < rate_needed:
            out.append(f"sampled at {sr} Hz, below the {rate_needed} Hz audio the {e.family.label}'s "
                       f"features are taken from: its answers are unreliable (on RAVDESS clips "
                       f"sampled at 8 kHz the reference SVM is at chance: benchmarks/bench_bandwidth.py)")
    return out


def _segment(offset: float, rate: int, s: int, e: int, min_len: int, silent: bool) -> dict:
    return {"start_s": round(offset + s / rate, 3), "end_s": round(offset + e / rate, 3),
            "short": bool(e - s < min_len), "silent": bool(silent)}


def _check_heard(path, segments: list[dict], offset: float) -> None:
    if all(seg["silent"] for seg in segments):
        raise SerError(f"{path}: silent after the first {offset:g} s (peak below -60 dBFS), which "
                       "the models skip: nothing to recognise")


def _finish(out: dict, ens: list[Ensemble], per_fold: dict[str, np.ndarray],
            whole: dict[str, np.ndarray], whole_ens: dict[str, np.ndarray], folds: bool) -> dict:
    """Fill the answers: per family its (folds, heard segments, classes) probabilities, its
    (folds, classes) whole-recording ones and the ensemble's (classes); silent segments get no
    emotion."""
    heard = [seg for seg in out["segments"] if not seg["silent"]]
    for e in ens:
        out["whole"][e.name] = _entry(e.classes, whole_ens[e.name])
        if folds:
            out.setdefault("fold_whole", {})[e.name] = np.round(whole[e.name], 6).tolist()
        for seg in out["segments"]:
            seg[e.name] = None
        if e.name in per_fold:
            for seg, pr in zip(heard, per_fold[e.name].mean(axis=0)):
                seg[e.name] = _entry(e.classes, pr)
    return out


def _header(name: str, duration: float, sr: int, ens: list[Ensemble], grid: FeaturesLogmel) -> dict:
    """An answer before its segments and answers: the recording and its warnings."""
    return {"file": name, "duration_s": round(duration, 3), "sample_rate": sr,
            "warnings": _warnings(sr, ens, grid), "whole": {}, "segments": []}


def _segments(y_cnn: np.ndarray, grid: FeaturesLogmel, pp: PredictParams, hop: int) -> list[dict]:
    """The segments of a recording held whole (samples at grid.sample_rate from grid.offset_s)."""
    rate, min_len = grid.sample_rate, round(pp.reliable_min_s * grid.sample_rate)
    return [_segment(grid.offset_s, rate, s, e, min_len, np.abs(y_cnn[s:e]).max() < SILENCE)
            for s, e in segment_bounds(len(y_cnn), grid, hop)]


def _cnn_probas(e: Ensemble, y_cnn: np.ndarray, pp: PredictParams, grid: FeaturesLogmel,
                hop: int, heard: list[int], n_segments: int) -> tuple[np.ndarray, bool]:
    """(folds, heard segments, classes) of the CNN-LSTM on a recording held whole, and whether
    it read the recording looped (then one full window: one segment)."""
    y_in, looped = cnn_input(y_cnn, pp, grid)
    p = e.fold_probas(np.stack([w for _, _, w in recording_windows(y_in, grid, hop)]))
    return (p[:, heard] if p.shape[1] == n_segments else p), looped


def _short_warning(seconds: float, pp: PredictParams, grid: FeaturesLogmel, looped: bool,
                   cnn: bool) -> str:
    fill = "looped" if looped else "zero-padded"
    return (f"{seconds:.2f} s of audio after the first {grid.offset_s:g} s, less than any training "
            f"clip ({pp.reliable_min_s:g} s): every answer is unreliable"
            + (f"; the CNN-LSTM read it {fill} to its {grid.n_samples / grid.sample_rate:.2f} s "
               "window" if cnn else ""))


def analyse_audio(y: np.ndarray, sr: int, path: Path | str, ens: list[Ensemble],
                  pp: PredictParams, grid: FeaturesLogmel, folds: bool = False,
                  timeline: bool = True) -> dict:
    """One recording (mono samples at `sr`): the timeline of segments and the whole, for every
    family. The segments are the CNN-LSTM's windows (`grid`: its feature params), whichever
    families run. The CNN-LSTM reads a very short recording as `cnn_input` says; times are
    reported as recorded. With `folds`, also each fold model's whole-recording probabilities
    (`fold_whole`: family -> (folds, classes)), which the ensemble's answer averages. Without
    `timeline`, the table families answer for the whole recording only (what the corpus stage
    scores). A recording longer than pp.whole_max_s goes to analyse_long."""
    if len(y) / sr > pp.whole_max_s:
        n = round(BLOCK_S * sr)
        return analyse_long(lambda: (y[i:i + n] for i in range(0, len(y), n)), sr, str(path),
                            ens, pp, grid, folds)
    out = _header(str(path), len(y) / sr, sr, ens, grid)
    y_cnn = at_rate(y, sr, grid.sample_rate, grid.offset_s)
    if len(y_cnn) == 0:
        raise SerError(f"{path}: no audio after the first {grid.offset_s:g} s, which the models skip")
    hop = max(1, round(pp.hop_s * grid.sample_rate))
    segs = out["segments"] = _segments(y_cnn, grid, pp, hop)
    _check_heard(path, segs, grid.offset_s)
    heard = [i for i, seg in enumerate(segs) if not seg["silent"]]
    looped = False
    resampled: dict[int, np.ndarray] = {}  # the recording at each table family's rate, once
    per_fold, whole, whole_ens = {}, {}, {}

    def cnn_job():
        nonlocal looped
        for e in filter(_is_cnn, ens):
            p, looped = _cnn_probas(e, y_cnn, pp, grid, hop, heard, len(segs))
            per_fold[e.name], whole[e.name] = p, p.mean(axis=1)
            whole_ens[e.name] = p.mean(axis=0).mean(axis=0)  # the mean of the segments' answers

    def tables_job(e):
        def job():
            p = _checked(e, table_rows(y, sr, e, segs if timeline else [], resampled), path)
            whole[e.name], whole_ens[e.name] = p[:, 0], p.mean(axis=0)[0]
            if timeline:
                per_fold[e.name] = p[:, 1:][:, heard]
        return job

    _beside(cnn_job, *(tables_job(e) for e in ens if not _is_cnn(e)))
    _finish(out, ens, per_fold, whole, whole_ens, folds)
    if all(seg["short"] for seg in segs):
        out["warnings"].append(_short_warning(len(y_cnn) / grid.sample_rate, pp, grid, looped,
                                              any(map(_is_cnn, ens))))
    return out


class _Buffer:
    """A stream's samples from `base` on: appended as they come, dropped once no segment needs them."""

    def __init__(self):
        self.data, self.base = np.zeros(0, np.float32), 0

    @property
    def end(self) -> int:
        return self.base + len(self.data)

    def add(self, x: np.ndarray) -> None:
        self.data = np.concatenate([self.data, x]) if len(self.data) else x

    def get(self, a: int, b: int) -> np.ndarray:
        return self.data[a - self.base:b - self.base]

    def drop(self, before: int) -> None:
        if before > self.base:
            self.data, self.base = self.data[before - self.base:], before


def _with_last(it):
    """(item, is_last) pairs."""
    it = iter(it)
    try:
        prev = next(it)
    except StopIteration:
        return
    for x in it:
        yield prev, False
        prev = x
    yield prev, True


def _moments(read, sr: int, rate: int, skip: int) -> tuple[int, float, int, float, float]:
    """Pass 1 over a long recording: its length and peak (samples at `sr`), and the count, mean
    and std of what the CNN-LSTM reads (at `rate` after `skip` samples; accumulated in float64 by
    Chan et al.'s update; a std of 0 is 1)."""
    n_in, peak, cnt, mean, m2 = 0, 0.0, 0, 0.0, 0.0
    rs = Resampler(sr, rate, skip)
    for b, last in _with_last(read()):
        n_in += len(b)
        peak = max(peak, float(np.abs(b).max()) if len(b) else 0.0)
        z = rs.feed(b, last).astype(np.float64)
        if len(z):
            m, v, k = z.mean(), ((z - z.mean()) ** 2).sum(), len(z)
            d = m - mean
            mean, m2, cnt = mean + d * k / (cnt + k), m2 + v + d * d * cnt * k / (cnt + k), cnt + k
    std = np.sqrt(m2 / cnt) if cnt else 0.0
    return n_in, peak, cnt, mean, (std if std > 0 else 1.0)


def _ready_batches(read, sr: int, rate: int, skip: int, bounds: list[tuple[int, int]],
                   spans: dict[int, list[tuple[int, int]]]):
    """Pass 2: the recording through one resampling stream per rate (key "cnn": the CNN-LSTM's,
    `bounds`; each table rate r: `spans[r]`); yields (segment indices, buffers), BATCH segments
    at a time, once every stream holds them, and then drops what no later segment needs."""
    rates = list(spans)
    streams = {"cnn": Resampler(sr, rate, skip), **{r: Resampler(sr, r, 0) for r in rates}}
    bufs = {k: _Buffer() for k in streams}
    done, n = 0, len(bounds)
    for b, last in _with_last(read()):
        for k, st in streams.items():
            bufs[k].add(st.feed(b, last))
        ready = done
        while ready < n and bounds[ready][1] <= bufs["cnn"].end and all(
                spans[r][ready][1] <= bufs[r].end for r in rates):
            ready += 1
        if last:
            ready = n
        for i in range(done, ready, BATCH):
            yield list(range(i, min(i + BATCH, ready))), bufs
        done = ready
        if done < n:
            bufs["cnn"].drop(bounds[done][0])
            for r in rates:
                bufs[r].drop(spans[r][done][0])


def analyse_long(read, sr: int, name: str, ens: list[Ensemble], pp: PredictParams,
                 grid: FeaturesLogmel, folds: bool = False, silent_file=None) -> dict:
    """A recording longer than pp.whole_max_s, as `read()` gives it (mono blocks at `sr`), in
    memory independent of its length: one pass for its length and the CNN-LSTM's z-score
    (_moments), one for the segments, BATCH at a time (_ready_batches). The resampling is the
    whole recording's bit for bit (Resampler); the features of a segment are those of its
    samples, as analyse_audio's. Every family's whole answer is the mean of its heard segments':
    no SVM was trained on minutes of speech in one feature vector."""
    rate, offset = grid.sample_rate, grid.offset_s
    skip = int(offset * sr)
    n_in, peak, cnt, mean, std = _moments(read, sr, rate, skip)
    if n_in / sr <= pp.whole_max_s:  # a header without a length, and a short recording after all
        return analyse_audio(np.concatenate(list(read())), sr, name, ens, pp, grid, folds)
    if silent_file is not None and peak < SILENCE:
        raise silent_error(silent_file)
    hop = max(1, round(pp.hop_s * rate))
    min_len = round(pp.reliable_min_s * rate)
    bounds = segment_bounds(cnt, grid, hop)
    out = _header(name, n_in / sr, sr, ens, grid)
    segs = out["segments"] = [_segment(offset, rate, s, e, min_len, False) for s, e in bounds]
    cnns, tables = [e for e in ens if _is_cnn(e)], [e for e in ens if not _is_cnn(e)]
    rates = sorted({e.features["sample_rate"] for e in tables})
    spans = {r: [(round(g["start_s"] * r), round(g["end_s"] * r)) for g in segs] for r in rates}
    parts: dict[str, list[np.ndarray]] = {e.name: [] for e in ens}

    def run(batch: list[int], bufs: dict) -> None:
        for i in batch:
            segs[i]["silent"] = bool(np.abs(bufs["cnn"].get(*bounds[i])).max() < SILENCE)
        heard = [i for i in batch if not segs[i]["silent"]]
        if not heard:
            return

        def cnn_job():
            if cnns:
                x = np.stack([logmel_windows(fit_window(
                    (bufs["cnn"].get(*bounds[i]).astype(np.float64) - mean) / std, grid),
                    grid).astype(grid.dtype) for i in heard])
                for e in cnns:
                    parts[e.name].append(e.fold_probas(x))

        def table_job(e):
            r = e.features["sample_rate"]
            return lambda: parts[e.name].append(_checked(e, _table_x(e, [
                bufs[r].get(*spans[r][i]) for i in heard]), name))
        _beside(cnn_job, *(table_job(e) for e in tables))

    for batch, bufs in _ready_batches(read, sr, rate, skip, bounds, spans):
        run(batch, bufs)
    _check_heard(name, segs, offset)
    per_fold = {k: np.concatenate(v, axis=1) for k, v in parts.items()}
    _finish(out, ens, per_fold, {k: v.mean(axis=1) for k, v in per_fold.items()},
            {k: v.mean(axis=0).mean(axis=0) for k, v in per_fold.items()}, folds)
    return out


# ---------------------------------------------------------------- output
