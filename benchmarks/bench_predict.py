"""`ser predict` speed: seconds for a long recording with both model families, as a real-time factor.

    .venv/bin/python benchmarks/bench_predict.py [--minutes 10] [--folds 6] [--models data/models]

Without --models it writes model files of the reference's sizes in the project's format into a
temporary folder (the CNN-LSTM of params.yaml with random weights; an SVM pipeline fitted on
random statistics of 900 clips, as many as a fold trains on): speed does not depend on what the
weights learned. The recording is a generated voiced signal, 44.1 kHz stereo WAV. It runs with
glibc set to reuse freed memory, as `ser predict` does. Prints the
time to load the models, the time for the recording, and the real-time factor (the target: at
least 50x, a 10-minute recording in under 12 s).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import soundfile as sf
import torch

from reuse_memory import reexec_script
from ser import predict
from ser.params import FeaturesLogmel, load_params
from ser.svm_pipeline import fit
from ser.train import build_model, code_version


def write_models(folder: Path, folds: int, params_path: Path) -> None:
    """Fold models of the reference's sizes, in the format the training stages write. The SVM is
    fitted on weakly separable noise, so most clips are support vectors: the slow case."""
    from ser.features.stats import columns
    from ser.labels import class_names
    params = load_params(params_path)
    classes = class_names(params.prepare.classes)
    cols = columns(params.features_stats)
    rng = np.random.default_rng(0)
    y = np.array(classes)[rng.integers(0, len(classes), 900)]
    X = rng.normal(size=(900, len(cols)))
    X[:, :60] += 0.3 * np.array([classes.index(v) for v in y])[:, None]  # something to select
    svm_p = params.train_svm.model_copy(update={"C": [5.0], "gamma": [0.005], "n_jobs": 1})
    model, _ = fit(X, y, svm_p)
    torch.manual_seed(0)
    for k in range(folds):
        run = f"actor-{k}"
        (folder / "svm").mkdir(parents=True, exist_ok=True)
        (folder / "cnn_lstm").mkdir(parents=True, exist_ok=True)
        joblib.dump({"kind": "svm", "model": model, "classes": classes, "columns": cols,
                     "params": svm_p.model_dump(),
                     "features": params.features_stats.saved(),
                     "run": run, "protocol": "actor", "fold": k}, folder / "svm" / f"{run}.joblib")
        net = build_model(params.train_cnn_lstm, len(classes))
        torch.save({"kind": "cnn_lstm", "state_dict": net.state_dict(), "classes": classes,
                    "params": params.train_cnn_lstm.model_dump(),
                    "features": params.features_logmel.saved(),
                    "run": run, "protocol": "actor", "fold": k, "code": code_version()},
                   folder / "cnn_lstm" / f"{run}.pt")


def write_recording(path: Path, minutes: float) -> None:
    sr = 44100
    t = np.arange(int(sr * minutes * 60)) / sr
    f0 = 160 * (1 + 0.1 * np.sin(2 * np.pi * 0.3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    y = 0.1 * voice + 0.003 * np.random.default_rng(0).standard_normal(len(t))
    sf.write(path, np.stack([y, 0.8 * y], 1).astype(np.float32), sr, subtype="PCM_16")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--models", type=Path, default=None, help="trained models (default: generated)")
    ap.add_argument("--folds", type=int, default=6, help="generated fold models per family")
    ap.add_argument("--minutes", type=float, default=10.0)
    a = ap.parse_args()
    reexec_script()  # as `ser predict` runs
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = a.models
        if models is None:
            models = tmp / "models"
            write_models(models, a.folds, a.params)
        audio = tmp / "long.wav"
        write_recording(audio, a.minutes)
        params = load_params(a.params)
        t0 = time.perf_counter()
        fams = predict.load_families(models, "both", "auto", params)
        t_load = time.perf_counter() - t0
        grid = FeaturesLogmel.from_saved(next(f for f in fams if f.kind == "cnn_lstm").features)
        t0 = time.perf_counter()
        result = predict.analyse(audio, fams, params.predict, grid)
        dt = time.perf_counter() - t0
    seconds = a.minutes * 60
    print(f"models: {', '.join(f'{f.kind} x{len(f.runs)}' for f in fams)}, loaded in {t_load:.1f} s")
    print(f"{a.minutes:g}-minute recording, {len(result['segments'])} segments: {dt:.1f} s, "
          f"{seconds / dt:.0f}x real time (target: 50x)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
