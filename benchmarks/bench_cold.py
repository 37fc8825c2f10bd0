"""`ser predict`'s cold start: a 10 s WAV answered by a fresh `ser predict` process, end to end.

    .venv/bin/python benchmarks/bench_cold.py [--models models] [--runs 5]

Times the command as a user runs it (`ser predict FILE`: start, imports, models, answer; the
target: at most 4 s on an idle host), median of --runs, then where one such process spends its
time: Python's start, importing ser.apps.predict (as `ser` does, the collector off), loading the
models, the first answer (which pays the first call of the feature code) and a second answer of
the same file; `ser` then ends without Python's teardown. Without --models
it writes model files of the reference's sizes (bench_predict.write_models).
"""

from __future__ import annotations

import argparse
import os
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bench_predict import models_or_generated  # noqa: E402
from generated import synthetic_clip  # noqa: E402
from ser.cpu import MALLOC_ENV  # noqa: E402
from ser.params import PARAMS_FILE  # noqa: E402

PHASES = """
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from ser.apps.cli import lasting
with lasting():  # as `ser` imports
    from ser.apps import predict
from ser.analysis import analyse, load_ensembles, window_grid
from ser.params import load_params
t1 = time.perf_counter()
params = load_params(Path(sys.argv[1]))
ens = load_ensembles(Path(sys.argv[2]), predict.families_of(None, params), "auto", params)
t2 = time.perf_counter()
analyse(Path(sys.argv[3]), ens, params.predict, window_grid(ens, params))
t3 = time.perf_counter()
analyse(Path(sys.argv[3]), ens, params.predict, window_grid(ens, params))
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "models": t2 - t1, "first": t3 - t2, "second": t4 - t3}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--models", type=Path, default=None, help="trained models (default: generated)")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    ser = Path(sys.executable).with_name("ser")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        models = models_or_generated(a.models, tmp, a.params)
        stems = ["03-01-05-02-01-01-02", "03-01-03-01-02-01-01", "03-01-04-02-01-02-04"]
        y = np.concatenate([synthetic_clip(stems[k % 3], 16000, 1.6) for k in range(7)])[:160000]
        sf.write(tmp / "talk.wav", y, 16000, subtype="PCM_16")
        cmd = [str(ser), "predict", str(tmp / "talk.wav"), "--params", str(a.params), "--models", str(models)]
        walls = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            walls.append(time.perf_counter() - t0)
        print(f"ser predict of a 10 s WAV, cold: median {statistics.median(walls):.2f} s (all: "
              f"{', '.join(f'{w:.2f}' for w in walls)} s; target 4 s)")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        start = time.perf_counter() - t0
        out = subprocess.run([sys.executable, "-c", PHASES, str(a.params), str(models), str(tmp / "talk.wav")],
                             check=True, capture_output=True, text=True, env={**os.environ, **MALLOC_ENV})
        p = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"where it goes: Python start {start:.2f} s, imports {p['import']:.2f} s, models "
              f"{p['models']:.2f} s, first answer {p['first']:.2f} s (a second one: {p['second']:.2f} s)")


if __name__ == "__main__":
    main()
