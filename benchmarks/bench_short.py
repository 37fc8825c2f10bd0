"""Short input: both models' accuracy on RAVDESS clips cut short, zero-padded or looped.

    .venv/bin/python benchmarks/bench_short.py [--run random-0] [--split val] [--every 1]

What decides `predict.loop_below_s` (params.yaml). Each clip of one split of one fold (validation
by default: a choice is never made on test clips) is cut to a few seconds of audio after the
first `features_logmel.offset_s` (which the models skip), taken from the start of the clip or
from its middle, and read through `ser predict`'s own path (ser.analysis.analyse_audio, the
whole-recording answer) three ways:
  pad      never looped: the CNN-LSTM reads it zero-padded to its window, as the stage pads;
  loop     the recording itself looped to fill the window before either model reads it;
  predict  as params.yaml's `predict` section says (what `ser predict` does).
The SVM reads whatever audio it is given (pad and predict are the same audio for it). Prints the
accuracy and the share of the most frequent answer (a model that reads silence as one emotion
gives that answer to most clips). Needs the fold's models.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from reuse_memory import reexec_script
from ser import analysis, registry
from ser.audio import decode
from ser.params import PARAMS_FILE, FeaturesLogmel, load_params
from ser.store import read_fold, read_manifest

LENGTHS = (1.0, 1.5, 2.0, 2.4, 2.8)  # seconds of audio after the offset


def cut(y: np.ndarray, sr: int, offset: float, seconds: float, at: str) -> np.ndarray:
    """The first `offset` seconds, then `seconds` of the rest: from its start or its middle."""
    head, n = int(offset * sr), round(seconds * sr)
    body = y[head:]
    a = 0 if at == "start" else max(0, (len(body) - n) // 2)
    return np.concatenate([y[:head], body[a:a + n]])


def loop(y: np.ndarray, sr: int, grid: FeaturesLogmel) -> np.ndarray:
    """The recording after its first offset_s looped to fill the CNN-LSTM's window."""
    head = int(grid.offset_s * sr)
    n = int(np.ceil(grid.n_samples / grid.sample_rate * sr))
    return np.concatenate([y[:head], np.resize(y[head:], n)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--run", default="random-0", help="the fold whose models and clips are used")
    ap.add_argument("--split", default="val", choices=["val", "test", "train"])
    ap.add_argument("--model", nargs="+", default=list(registry.FAMILIES), choices=list(registry.FAMILIES))
    ap.add_argument("--every", type=int, default=1, help="take every n-th clip (quicker)")
    a = ap.parse_args()
    reexec_script()  # as `ser predict` runs
    params = load_params(a.params)
    protocol, fold = a.run.rsplit("-", 1)
    fams = analysis.load_ensembles(Path("models"), a.model, protocol, params, int(fold))
    grid = analysis.window_grid(fams, params)
    never = params.predict.model_copy(update={"loop_below_s": 0.0})
    variants = {"pad": (never, lambda y, sr: y), "loop": (never, lambda y, sr: loop(y, sr, grid)),
                "predict": (params.predict, lambda y, sr: y)}
    manifest = read_manifest(Path("data/prepared/manifest.csv")).set_index("clip_id")
    clips = read_fold(Path(f"data/folds/{a.run}.csv"))
    clips = clips[clips["split"] == a.split].iloc[::a.every]
    rows = []
    for clip, label in tqdm(zip(clips["clip_id"], clips["label"]), total=len(clips), desc=a.run):
        y, sr = decode(Path("data/raw/ravdess") / manifest.loc[clip, "path"])
        cases = [("whole clip", "-", "predict", y)]
        cases += [(f"{s:g} s", at, v, cut(y, sr, grid.offset_s, s, at))
                  for s in LENGTHS for at in ("start", "middle") for v in variants]
        for length, at, v, yc in cases:
            pp, fill = variants[v]
            r = analysis.analyse_audio(fill(yc, sr), sr, clip, fams, pp, grid)
            for f in fams:
                rows.append({"length": length, "from": at, "policy": v, "model": f.name,
                             "label": label, "top": r["whole"][f.name]["top"]})
    df = pd.DataFrame(rows)
    order = {k: i for i, k in enumerate(["whole clip", *(f"{s:g} s" for s in LENGTHS)])}
    res = (df.groupby(["model", "length", "from", "policy"])
           .apply(lambda g: pd.Series({"acc": 100 * (g["top"] == g["label"]).mean(),
                                       "modal": 100 * g["top"].value_counts(normalize=True).iloc[0],
                                       "answer": g["top"].value_counts().index[0]}))
           .reset_index())
    res = res.sort_values(["model", "length", "from", "policy"],
                          key=lambda c: c.map(order) if c.name == "length" else c)
    print(f"\n{a.run}, {a.split} clips ({len(clips)}), predict.loop_below_s = "
          f"{params.predict.loop_below_s:g} s: accuracy (%) of the whole-recording answer and the "
          f"share (%) of the most frequent answer")
    print(res.to_string(index=False, float_format=lambda v: f"{v:.1f}"))


if __name__ == "__main__":
    main()
