"""How each family's answers move with the recording chain: level, noise, 16-bit files.

    .venv/bin/python benchmarks/bench_robustness.py [--fold 0] [--every 1] [--models models]

The test clips of one actor-protocol fold (new speakers), each judged by that fold's model of every
family that has one, through `ser predict`'s own path from a file (ser.analysis.analyse: decode,
resample, whole-recording answer). Each condition writes the clip anew, as a user's recording
would arrive:

- original: the corpus file (48 kHz, 16 bits, with RAVDESS's long runs of digital zeros);
- level +20 dB / -20 dB: the same samples scaled, as a 32-bit float WAV (nothing clips);
- noise +-1 LSB: the 16-bit samples plus integer noise drawn from {-1, 0, +1} (no digital zeros
  left), a 16-bit WAV at 48 kHz;
- 16-bit at R: resampled to R (soxr, as librosa) and written as a 16-bit WAV; float at 16 kHz:
  the same as a float WAV (the control: resampling alone);
- room noise N dB below: white noise N dB below the speech's level (the rms of its active frames,
  ser.features.level.active_rms), as a microphone's own noise floor, a 16-bit WAV at 48 kHz.

Prints, per condition and family, the accuracy and how many answers differ from the original's.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

from reuse_memory import reexec_script
from ser import analysis, registry
from ser.audio import decode
from ser.features.level import active_rms
from ser.params import PARAMS_FILE, load_params
from ser.store import read_fold, read_manifest


def conditions(y: np.ndarray, sr: int, rng: np.random.Generator) -> dict:
    """name -> (samples, rate, soundfile subtype) of one clip (y: the decoded 16-bit samples)."""
    out = {"level +20 dB": (y * 10.0, sr, "FLOAT"), "level -20 dB": (y * 0.1, sr, "FLOAT")}
    pcm = np.round(y * 32768).astype(np.int32) + rng.integers(-1, 2, len(y))
    out["noise +-1 LSB"] = (np.clip(pcm, -32768, 32767).astype(np.float32) / 32768, sr, "PCM_16")
    for rate in (44100, 22050, 16000):
        yr = librosa.resample(y, orig_sr=sr, target_sr=rate, res_type="soxr_hq")
        out[f"16-bit at {rate / 1000:g} kHz"] = (yr, rate, "PCM_16")
    out["float at 16 kHz"] = (librosa.resample(y, orig_sr=sr, target_sr=16000, res_type="soxr_hq"),
                              16000, "FLOAT")
    speech = active_rms(y, sr)
    for db in (50, 40, 30):
        out[f"room noise {db} dB below"] = (y + rng.standard_normal(len(y)) * speech * 10 ** (-db / 20),
                                            sr, "PCM_16")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--corpus", type=Path, default=Path("data/raw/ravdess"))
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--every", type=int, default=1, help="take every n-th test clip (quicker)")
    a = ap.parse_args()
    reexec_script()  # as `ser predict` runs
    params = load_params(a.params)
    ens = []
    for fam in registry.FAMILIES:
        try:
            ens += analysis.load_ensembles(a.models, [fam], "actor", params, a.fold)
        except Exception as err:  # noqa: BLE001 - a family not trained yet
            print(f"{fam}: skipped ({err})")
    if not ens:
        raise SystemExit(f"no actor-{a.fold} models in {a.models}")
    grid = analysis.window_grid(ens, params)
    manifest = read_manifest(Path("data/prepared/manifest.csv")).set_index("clip_id")
    fold = read_fold(Path(f"data/folds/actor-{a.fold}.csv"))
    test = fold[fold["split"] == "test"].iloc[::a.every]
    rng = np.random.default_rng(0)
    rows, zeros = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for clip, label in tqdm(zip(test["clip_id"], test["label"]), total=len(test), unit="clip"):
            path = a.corpus / manifest.loc[clip, "path"]
            y, sr = decode(path)
            zeros.append(float(np.mean(y == 0)))
            files = {"original": path}
            for name, (samples, rate, subtype) in conditions(y, sr, rng).items():
                files[name] = Path(tmp) / f"{len(files)}.wav"
                sf.write(files[name], samples, rate, subtype=subtype)
            for name, f in files.items():
                r = analysis.analyse(f, ens, params.predict, grid)
                rows.append({"clip": clip, "label": label, "condition": name,
                             **{e.name: r["whole"][e.name]["top"] for e in ens}})
    df = pd.DataFrame(rows)
    orig = df[df["condition"] == "original"].set_index("clip")
    print(f"\nactor-{a.fold}: {len(test)} test clips (median share of exact-zero samples "
          f"{100 * np.median(zeros):.0f}%); accuracy %, and answers changed from the original's")
    for name, g in df.groupby("condition", sort=False):
        g = g.set_index("clip")
        cells = [f"{e.family.label} {100 * (g[e.name] == g['label']).mean():5.1f}"
                 + ("" if name == "original" else f" ({int((g[e.name] != orig[e.name]).sum()):3d} changed)")
                 for e in ens]
        print(f"  {name:24s} " + "   ".join(cells))


if __name__ == "__main__":
    main()
