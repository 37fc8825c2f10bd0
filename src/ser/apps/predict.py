"""`ser predict`: apply the trained models to any recording (ser.analysis), print the table,
write JSON, CSV and timeline plots.

PATH: audio files (WAV, FLAC, OGG, MP3; any rate; stereo is downmixed; any length) or folders,
walked for such files, from any folder: the settings are the project's params.yaml (`predict`),
the models its committed ones (its models/, checked against its dvc.lock), unless told. By default every family (ser.registry), each the
speaker-independent (actor) protocol's ensemble, since a new recording is a new speaker.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError
from tqdm import tqdm

from ser import registry
from ser.apps import project_params
from ser.analysis import Ensemble, analyse, default_models, load_ensembles, window_grid
from ser.errors import SerError
from ser.io import check_output
from ser.params import Params, PredictParams, load_params

log = logging.getLogger("predict")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


def audio_files(paths: list[Path]) -> list[Path]:
    """The files given, and the audio files inside the folders given, in a stable order. A path
    that does not exist is a typo on the command line: one line now, before any model loads."""
    out = []
    for p in paths:
        if not p.exists():
            raise SerError(f"{printable(str(p))}: no such file or folder")
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
        else:
            out.append(p)
    return out


def to_rows(results: list[dict], ens: list[Ensemble]) -> pd.DataFrame:
    """One row per file, family and segment (segment 'whole' for the whole recording)."""
    rows = []
    for r in results:
        for e in ens:
            parts = [("whole", 0.0, r["duration_s"], False, False, r["whole"][e.name])]
            parts += [(i, s["start_s"], s["end_s"], s["short"], s["silent"], s[e.name])
                      for i, s in enumerate(r["segments"])]
            for seg, a, b, short, silent, x in parts:
                x = x or {"top": "", "prob": np.nan, "probs": {c: np.nan for c in e.classes}}
                rows.append({"file": r["file"], "model": e.name, "segment": seg, "start_s": a,
                             "end_s": b, "short": short, "silent": silent, "top": x["top"],
                             "prob": x["prob"], **{f"prob_{c}": v for c, v in x["probs"].items()}})
    return pd.DataFrame(rows)


def to_text(results: list[dict], ens: list[Ensemble]) -> str:
    width = max(len(e.family.label) for e in ens)
    lines = []
    for r in results:
        n = len(r["segments"])
        lines.append(f"{r['file']} ({r['duration_s']:.1f} s, {n} segment{'' if n == 1 else 's'})"
                     + "".join(f"\n  warning: {w}" for w in r["warnings"]))
        for e in ens:
            x = r["whole"][e.name]
            lines.append(f"  whole recording, {e.family.label:{width}s}: {x['top']:9s} {x['prob']:.2f}")
        cols = [max(15, len(e.family.label)) for e in ens]  # a column as wide as its label
        head = "  " + f"{'segment':>15s}" + "".join(f"  {e.family.label:>{w}s}" for e, w in zip(ens, cols))
        lines.append(head)
        for s in r["segments"]:
            cells = "".join(f"  {'-':>{w}s}" if s[e.name] is None else
                            f"  {s[e.name]['top']:>{w - 5}s} {s[e.name]['prob']:.2f}"
                            for e, w in zip(ens, cols))
            flags = ("  short" if s["short"] else "") + ("  silent" if s["silent"] else "")
            lines.append(f"  {s['start_s']:6.1f}-{s['end_s']:6.1f} s{cells}{flags}")
    return "\n".join(lines)


def plot(result: dict, ens: list[Ensemble], path: Path) -> None:
    """The page's picture: per family an emotion strip on the recording's time axis, each segment
    in its top emotion's colour (registry.EMOTION_COLORS), more opaque when surer, hatched when
    short, white when silent; the whole-recording answer in the family's title."""
    from matplotlib.patches import Patch, Rectangle
    from ser import figures
    plt = figures.plt
    fig, axes = plt.subplots(len(ens), 1, figsize=(10, 0.5 + 1.1 * len(ens)), sharex=True, squeeze=False)
    duration = max(result["duration_s"], 0.1)
    seen = []
    for ax, e in zip(axes[:, 0], ens):
        ax.add_patch(Rectangle((0, 0), duration, 1, color="#f3f3f3", lw=0))
        for s in result["segments"]:
            x = s[e.name]
            box = dict(xy=(s["start_s"], 0.04), width=s["end_s"] - s["start_s"], height=0.92)
            if x is None:
                ax.add_patch(Rectangle(**box, facecolor="white", edgecolor="#bbbbbb"))
                continue
            color = registry.EMOTION_COLORS.get(x["top"], "#666666")
            seen += [x["top"]] if x["top"] not in seen else []
            ax.add_patch(Rectangle(**box, facecolor=color, alpha=0.35 + 0.65 * x["prob"], lw=0,
                                   hatch="//" if s["short"] else None))
        whole = result["whole"][e.name]
        ax.set_title(f"{e.family.plain}: {whole['top']} ({100 * whole['prob']:.0f}% sure) for the "
                     "whole recording" if whole else f"{e.family.plain}: silent", fontsize=9, loc="left")
        ax.set_xlim(0, duration)
        ax.set_ylim(0, 1)
        ax.set_yticks([])
    axes[-1, 0].set_xlabel("time (s); darker: surer; hatched: too short to trust")
    fig.legend(handles=[Patch(color=registry.EMOTION_COLORS.get(c, "#666666"), label=c) for c in seen],
               loc="upper right", ncol=len(seen) or 1, fontsize=8, frameon=False)
    fig.suptitle(Path(result["file"]).name, x=0.01, ha="left", fontsize=10)
    figures.save(fig, path)


def _write(target: str, text: str) -> None:
    if target == "-":
        sys.stdout.write(text)
    else:
        from ser.io import write_text
        write_text(target, text)


def as_json(results: list[dict], ens: list[Ensemble], errors: list[dict] | None = None) -> dict:
    """The object `ser predict --json` writes (and `POST /api/predict` answers for one file)."""
    return {"models": {e.name: {"protocol": e.protocol, "runs": e.runs, "classes": e.classes}
                       for e in ens}, "files": results, "errors": errors or []}


def families_of(which: list[str] | None, params: Params) -> list[str]:
    """--model's families in registry order: by default params.yaml's predict.families (the
    variants the README's rule chose), 'all': every registered family."""
    if not which:
        which = params.predict.families
    if "all" in which:
        return list(registry.FAMILIES)
    return [f for f in registry.FAMILIES if f in which]


def run(paths: list[Path], *, which: list[str] | None = None, protocol: str = "auto",
        fold: int | None = None, hop: float | None = None, json_out: str | None = None,
        csv_out: str | None = None, plot_out: Path | None = None,
        params_path: Path | None = None, models: Path | None = None) -> int:
    """Predict every file; print the table; write what was asked. Returns the exit status."""
    params_path = params_path or project_params()
    params = load_params(params_path)
    if models is None:
        models, where = default_models(project_params().parent)
        log.info("%s", where)
    pp = params.predict
    if hop is not None:
        try:
            pp = PredictParams.model_validate({**pp.model_dump(), "hop_s": hop})
        except ValidationError as err:
            raise SerError(f"--hop {hop}: {err.errors()[0]['msg']} (predict.hop_s)") from None
    files = audio_files(paths)
    for target in (json_out, csv_out):
        if target and target != "-":
            check_output(target, files)  # before any work, not after it
    if plot_out and not (len(files) == 1 and plot_out.suffix.lower() == ".png"):
        check_output(plot_out / "x.png", files)
    elif plot_out:
        check_output(plot_out, files)
    if not files:
        raise SerError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in {', '.join(map(str, paths))}")
    ens = load_ensembles(models, families_of(which, params), protocol, params, fold)
    for e in ens:
        log.info("%s: %s", e.family.label, e.describe())
    grid = window_grid(ens, params)
    results, done, errors = [], [], []
    for f in tqdm(files, desc="predict", unit="file", disable=len(files) < 2):
        try:
            results.append(analyse(f, ens, pp, grid, name=printable(str(f))))
            done.append(f)
        except SerError as err:
            tqdm.write(f"error: {printable(str(err))}", file=sys.stderr)  # on its own line, beside the bar
            errors.append({"file": printable(str(f)), "error": printable(str(err))})
    # written even when every file failed: no earlier run's results are left standing
    if json_out:
        # allow_nan=False: valid JSON or an error, never NaN (answers are checked finite)
        _write(json_out, json.dumps(as_json(results, ens, errors), indent=2, allow_nan=False) + "\n")
    if csv_out:
        _write(csv_out, to_rows(results, ens).to_csv(index=False))
    if results:
        if json_out != "-" and csv_out != "-":
            print(to_text(results, ens))  # the warnings under each file
        else:
            for r in results:
                for w in r["warnings"]:
                    print(f"warning: {r['file']}: {w}", file=sys.stderr)
        if plot_out:
            one = len(results) == 1 and plot_out.suffix.lower() == ".png"
            names = plot_names(done)
            for r, name in zip(results, names):
                plot(r, ens, plot_out if one else plot_out / name)
    return 1 if errors else 0


def printable(text: str) -> str:
    """A file name as every output can hold it: bytes that are not UTF-8 (which Python keeps as
    lone surrogates, and CSV, plots and strict JSON readers refuse) written as \\xNN escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def plot_names(files: list[Path]) -> list[str]:
    """A PNG name per file: its stem, with its folders when two files share a stem."""
    stems = [f.stem for f in files]
    out = []
    for f in files:
        if stems.count(f.stem) == 1:
            out.append(f"{f.stem}.png")
        else:
            parts = [p for p in f.with_suffix("").parts if p not in ("/", "..", ".")]
            out.append("_".join(parts).replace(":", "_") + ".png")
    return out
