"""Every stage run directly (`python -m ser.stages.<stage>`) with a missing or wrong input stops
with one line naming the file, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ser.cpu import MALLOC_ENV

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd):
    """Without glibc's settings in the environment, so that a trainer restarts itself with them
    (ser.cpu) here whatever the caller's environment holds: the e2e pipeline starts it with them."""
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    return subprocess.run([sys.executable, "-m", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True)


@pytest.mark.parametrize("module,args,expect", [
    ("ser.stages.features", ["--family", "stats", "--corpus", "c", "--manifest", "nope.csv",
                             "--out", "o.parquet"],
     "error: nope.csv: not found (run the prepare stage first)"),
    ("ser.stages.features", ["--family", "logmel", "--corpus", "c", "--manifest", "nope.csv",
                             "--out", "o"],
     "error: nope.csv: not found (run the prepare stage first)"),
    ("ser.stages.folds", ["--manifest", "nope.csv", "--out", "o"],
     "error: nope.csv: not found (run the prepare stage first)"),
    ("ser.stages.folds", ["--manifest", ".", "--out", "o"],
     "error: .: is a directory, not a manifest"),
    ("ser.stages.train_svm", ["--family", "svm_stats", "--run", "random-0", "--folds", "f.csv",
                              "--features", "nope.parquet", "--model", "m", "--out", "o"],
     "error: f.csv: not found (run the folds stage first)"),
    ("ser.stages.train_cnn_lstm", ["--run", "random-0", "--folds", "f.csv", "--features", "nope", "--model", "m",
                   "--out", "o", "--checkpoint", "c"],
     "error: nope/logmel.npy: not found (run the features@logmel stage first)"),
    ("ser.stages.report", ["--runs", "nope", "--manifest", "nope.csv", "--out", "o"],
     "error: nope.csv: not found (run the prepare stage first)"),
    ("ser.stages.prepare", ["--corpus", "nope", "--out", "m.csv"],
     "error: nope: no audio files (run the download stage first)"),
])
def test_missing_input_is_one_line(tmp_path, module, args, expect):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    r = run(module, *args, cwd=tmp_path)
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if not line.startswith(("train_cnn_lstm:",))]
    assert lines == [expect]


def test_svm_names_a_missing_features_file(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "f.csv").write_text("clip_id,actor,label,split\na,1,sad,train\nb,1,sad,val\nc,1,sad,test\n")
    r = run("ser.stages.train_svm", "--family", "svm_stats", "--run", "random-0", "--folds", "f.csv",
            "--features", "stats.parquet",
            "--model", "m", "--out", "o", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == "error: stats.parquet: not found (run the features@stats stage first)"


def test_audio_load_of_a_missing_file_is_one_line(tmp_path):
    from ser.audio import load
    from ser.errors import SerError
    with pytest.raises(SerError, match=r"^.*missing\.wav: no such file$"):
        load(tmp_path / "missing.wav", 16000)


def test_serve_on_a_port_in_use_says_so_at_once_before_loading_models(tmp_path):
    """Once it loaded the models for 15 s, printed 'serving on ...', then died with uvicorn's
    raw [Errno 98]: now the port is bound first, and a taken one is one line."""
    import socket
    import time
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "ser.apps.cli", "serve", "--port", str(port),
                            "--models", str(tmp_path / "none"), "--params", str(ROOT / "params.yaml")],
                           capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 1 and time.monotonic() - t0 < 30
        [line] = r.stderr.strip().splitlines()
        assert line.startswith(f"error: cannot serve on 127.0.0.1:{port}: ") and "--port" in line
        assert "Traceback" not in r.stderr and "no trained" not in r.stderr  # before the models
    finally:
        taken.close()


def test_ser_predict_works_from_any_folder_with_the_projects_params_and_models(tmp_path):
    """Once it said 'params.yaml: not found (run from the repository root)' anywhere else: now
    the project's params.yaml and committed models (beside it) are found from the package. An SVM
    family's committed models answer a generated recording from a foreign folder."""
    import json
    import numpy as np
    import soundfile as sf
    from conftest import synthetic_clip
    if not (ROOT / "models" / "svm_stats_conditioned" / "actor-0.model").is_file():
        pytest.skip("no committed svm_stats_conditioned models")
    sf.write(tmp_path / "voice.wav", synthetic_clip("03-01-05-02-01-01-02", 16000, 4.0) / 32768, 16000)
    r = subprocess.run([sys.executable, "-m", "ser.apps.cli", "predict", "voice.wav", "--model",
                        "svm_stats_conditioned", "--json", "-"], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"models: the committed models ({ROOT / 'models'}/, checked against dvc.lock)" in r.stderr
    out = json.loads(r.stdout)
    assert out["models"]["svm_stats_conditioned"]["runs"] == [f"actor-{k}" for k in range(6)]
    assert np.isclose(sum(out["files"][0]["whole"]["svm_stats_conditioned"]["probs"].values()), 1, atol=2e-3)


def test_ser_ends_at_once_with_its_status_and_everything_written(tmp_path):
    """`ser` skips Python's teardown once done (0.7 s of a cold predict): what it printed and
    its exit status are still whole, an error's as a success's."""
    r = subprocess.run([sys.executable, "-m", "ser.apps.cli", "predict", "x.wav", "--hop", "0"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines()[-1] == "error: --hop 0.0: Input should be greater than or equal to 0.1 (predict.hop_s)"
    r = subprocess.run([sys.executable, "-m", "ser.apps.cli", "predict", "--help"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("PNGs for several"), r.stdout
