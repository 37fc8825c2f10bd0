"""Both models' accuracy on held-out RAVDESS clips band-limited to lower sampling rates.

    .venv/bin/python benchmarks/bench_bandwidth.py [--protocol random] [--every 1]

Each clip is judged by the fold model that did not train on it (the fold that tested it), through
`ser predict`'s own path (ser.analysis.analyse_audio: the whole-recording answer a user gets).
The clip is resampled from its 48 kHz to each rate (soxr, as librosa does), which removes
everything above half that rate, and handed over at that rate, as a user's recording would be.
Needs `dvc repro` to have trained the protocol's folds (a fold without models is skipped).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import librosa
import pandas as pd
from tqdm import tqdm

from reuse_memory import reexec_script
from ser import analysis, registry
from ser.audio import decode
from ser.params import PARAMS_FILE, load_params
from ser.store import read_fold, read_manifest

RATES = (48000, 44100, 22050, 16000, 8000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--protocol", default="random", choices=["random", "actor", "holdout"])
    ap.add_argument("--every", type=int, default=1, help="take every n-th test clip (quicker)")
    a = ap.parse_args()
    reexec_script()  # as `ser predict` runs
    params = load_params(a.params)
    manifest = read_manifest(Path("data/prepared/manifest.csv")).set_index("clip_id")
    rows = []
    for k in params.folds.folds_of(a.protocol):
        run = f"{a.protocol}-{k}"
        try:
            fams = analysis.load_ensembles(Path("models"), list(registry.FAMILIES), a.protocol,
                                           params, k)
        except Exception as err:  # noqa: BLE001 - a fold not trained yet
            print(f"{run}: skipped ({err})")
            continue
        grid = analysis.window_grid(fams, params)
        fold = read_fold(Path(f"data/folds/{run}.csv"))
        test = fold[fold["split"] == "test"].iloc[::a.every]
        for clip, label in tqdm(zip(test["clip_id"], test["label"]), total=len(test), desc=run):
            y, sr = decode(Path("data/raw/ravdess") / manifest.loc[clip, "path"])
            for rate in RATES:
                yr = y if rate == sr else librosa.resample(y, orig_sr=sr, target_sr=rate,
                                                           res_type="soxr_hq")
                r = analysis.analyse_audio(yr, rate, clip, fams, params.predict, grid)
                rows.append({"run": run, "clip": clip, "rate": rate, "label": label,
                             **{m: r["whole"][m]["top"] for m in registry.FAMILIES}})
    df = pd.DataFrame(rows)
    if df.empty:
        raise SystemExit(f"no trained {a.protocol} folds in models")
    acc = df.groupby("rate").apply(lambda g: pd.Series(
        {m: (g[m] == g["label"]).mean() for m in registry.FAMILIES} | {"clips": len(g)}))
    acc = acc.sort_index(ascending=False)
    print(f"\n{a.protocol} folds {sorted(df['run'].unique())}, features_stats at "
          f"{params.features_stats.sample_rate} Hz: accuracy (%) of the whole-recording answer")
    for rate, r in acc.iterrows():
        print(f"  {rate / 1000:6.2f} kHz: " + "   ".join(f"{registry.get(m).label} {100 * r[m]:5.1f}"
                                                    for m in registry.FAMILIES)
              + f"   ({int(r['clips'])} clips)")


if __name__ == "__main__":
    main()
