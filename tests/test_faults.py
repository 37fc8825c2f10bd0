"""Reliability and security: planted model files run no code, output paths are written and not
replaced, bad input is one line naming it, tables are checked where read, the stage runner finds
the project's Python. (Checkpoints: test_train; -s with bad params and killed runs: test_e2e.)"""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from conftest import ROOT, section, stub_cnn, tone
from ser import inference, modelfile, registry
from ser.errors import SerError
from ser.io import check_output, write_text
from ser.params import ParamsError, load_params


class Evil:
    """Unpickling it runs a shell command: what a file from a shared remote could carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["joblib", "torch", "skops-untrusted", "empty", "not-zip",
                                  "zip-without-meta", "folder"])
@pytest.mark.parametrize("family", ["svm_stats", "cnn_lstm"])
def test_a_planted_model_file_runs_no_code_and_is_one_line(tmp_path, kind, family):
    import joblib
    marker = tmp_path / "pwned"
    path = tmp_path / "actor-0.model"
    if kind == "joblib":
        joblib.dump({"kind": "svm", "model": Evil(marker)}, path)
    elif kind == "torch":
        torch.save({"kind": "cnn_lstm", "state_dict": Evil(marker)}, path)
    elif kind == "skops-untrusted":  # a well-formed model file whose estimator is of another type
        from sklearn.linear_model import LogisticRegression
        est = LogisticRegression().fit(np.eye(3), [0, 1, 2])
        modelfile.write(path, {"family": family, "classes": ["happy", "sad", "angry"], "columns": ["x"] * 3},
                        {modelfile.ESTIMATOR: modelfile.estimator_bytes(est), modelfile.WEIGHTS: b"not tensors"})
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "not-zip":
        path.write_bytes(b"\x00\x01 some bytes")
    elif kind == "zip-without-meta":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("other.txt", "x")
    else:
        path.mkdir()
    with pytest.raises(SerError) as err:
        inference.read_model(registry.get(family), path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    assert not marker.exists()
    if kind in ("joblib", "torch"):
        assert "convert a file you trust with `python -m ser.apps.convert_models" in msg


class Custom:
    """A type no model of this project holds: skops builds it only if trusted."""

    def __init__(self):
        self.x = np.zeros(2)


def test_untrusted_types_are_named_and_not_built(tmp_path):
    path = tmp_path / "m.model"
    modelfile.write(path, {"family": "svm_stats", "classes": ["happy", "sad", "angry"]},
                    {modelfile.ESTIMATOR: modelfile.estimator_bytes({"model": Custom()})})
    with pytest.raises(SerError, match=r"holds types this project does not trust \(test_faults.Custom\): refused"):
        inference.read_model(registry.get("svm_stats"), path)


def test_a_model_file_of_another_family_is_refused(tmp_path):
    path = tmp_path / "m.model"
    modelfile.write(path, {"family": "cnn_lstm", "classes": ["a"]},
                    {modelfile.WEIGHTS: b"", modelfile.ESTIMATOR: b""})
    with pytest.raises(SerError, match="a model of family 'cnn_lstm', not 'svm_stats'"):
        inference.read_model(registry.get("svm_stats"), path)


# ---------------------------------------------------------------- output paths

def test_a_symlink_is_followed_not_replaced(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_a_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo).read()))
    reader.start()
    write_text(fifo, "through the pipe")
    reader.join(5)
    assert got == ["through the pipe"] and fifo.exists() and not fifo.is_file()


def test_a_full_device_is_one_line():
    with pytest.raises(SerError, match=r"^/dev/full: cannot write \(No space left on device\)$"):
        write_text("/dev/full", "x")
    assert Path("/dev/full").is_char_device()


@pytest.mark.parametrize("where,message", [
    (lambda t: t / "file.txt" / "out.json", "a part of the path is a file"),
    (lambda t: t, "is a directory, not a file to write"),
    (lambda t: Path("/proc/ser-test/out.json"), "cannot write in /proc"),
])
def test_unwritable_outputs_are_refused_before_any_work(tmp_path, where, message):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(SerError, match=message):
        check_output(where(tmp_path))


def test_predict_checks_its_outputs_before_loading_anything(tmp_path):
    """No models there: had it loaded them first, the error would be about the models."""
    from ser.apps.predict import run
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(SerError, match="file.txt/out.json: cannot write"):
        run([tmp_path], json_out=str(tmp_path / "file.txt" / "out.json"),
            params_path=ROOT / "params.yaml", models=tmp_path / "none")


@pytest.mark.parametrize("given,message", [
    (lambda t: [t / "clip.wav", t / "typo.wav"], r"typo\.wav: no such file or folder$"),
    (lambda t: [t / "empty"], r"^no audio files \(.*\) in .*empty$"),
])
def test_predict_checks_its_inputs_before_loading_anything(tmp_path, given, message):
    """A typo or an empty folder was said only after every model had loaded (seconds): now at
    once, and no models there shows it (loaded first, the error would be about them)."""
    from ser.apps.predict import run
    (tmp_path / "clip.wav").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SerError, match=message):
        run(given(tmp_path), params_path=ROOT / "params.yaml", models=tmp_path / "none")


@pytest.mark.parametrize("hop", [float("nan"), float("inf"), 0.001, 0.0, -1.0])
def test_hop_is_bounded_by_params_validation(tmp_path, hop):
    from ser.apps.predict import run
    with pytest.raises(SerError, match=r"^--hop .*\(predict.hop_s\)$"):
        run([tmp_path], hop=hop, params_path=ROOT / "params.yaml", models=tmp_path / "none")


def test_plot_names_do_not_collide():
    from ser.apps.predict import plot_names
    names = plot_names([Path("a/take.wav"), Path("b/take.wav"), Path("c/other.flac")])
    assert names == ["a_take.png", "b_take.png", "other.png"] and len(set(names)) == 3


# ---------------------------------------------------------------- audio

def test_phase_inverted_stereo_is_silent_once_downmixed(tmp_path):
    from ser.audio import decode
    y = tone(220, 16000, 3.0)
    sf.write(tmp_path / "inv.wav", np.stack([y, -y], 1), 16000)
    with pytest.raises(SerError, match="inv.wav: silent .*once downmixed"):
        decode(tmp_path / "inv.wav")


def test_a_file_name_that_is_not_utf8_decodes(tmp_path):
    from ser.audio import decode
    name = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.flac")
    with open(name, "wb") as f:
        sf.write(f, tone(220, 16000, 1.0), 16000, format="FLAC")
    y, sr = decode(name)
    assert sr == 16000 and len(y) == 16000


def test_silent_segments_get_no_emotion(tmp_path):
    from ser.analysis import analyse_audio
    grid, pp = section("features_logmel"), section("predict", hop_s=3.0)
    y = np.concatenate([np.zeros(16000 * 8, dtype=np.float32), tone(220, 16000, 6.0)])
    r = analyse_audio(y, 16000, "gap.wav", [stub_cnn(grid)], pp, grid)
    silent = [s for s in r["segments"] if s["silent"]]
    assert silent and all(s["cnn_lstm"] is None for s in silent)
    assert all(s["cnn_lstm"]["top"] == "neutral" for s in r["segments"] if not s["silent"])
    assert r["whole"]["cnn_lstm"]["top"] == "neutral"


def test_audio_far_below_the_cnn_lstm_bands_is_warned_about():
    from ser.analysis import analyse_audio
    grid, pp = section("features_logmel"), section("predict")
    r = analyse_audio(tone(200, 1000, 4.0), 1000, "phone.wav", [stub_cnn(grid)], pp, grid)
    assert any("sampled at 1000 Hz: nothing above 500 Hz" in w for w in r["warnings"])
    r = analyse_audio(tone(200, 16000, 4.0), 16000, "ok.wav", [stub_cnn(grid)], pp, grid)
    assert not any("nothing above" in w for w in r["warnings"])


# ---------------------------------------------------------------- ensembles

def test_an_ensemble_is_the_protocols_folds_all_present(tmp_path):
    from ser.analysis import model_files
    params = load_params(ROOT / "params.yaml")
    folder = tmp_path / "svm_stats"
    folder.mkdir()
    for name in ["actor-0 (copy).model", "actor-0.bak.model", "actor-7.model", "notes.txt"]:
        (folder / name).write_text("stray")
    assert model_files(tmp_path, "svm_stats", "actor", params, None) is None  # strays: not models
    for k in range(6):
        (folder / f"actor-{k}.model").write_text("x")
    files = model_files(tmp_path, "svm_stats", "actor", params, None)
    assert [f.name for f in files] == [f"actor-{k}.model" for k in range(6)]  # not actor-7
    (folder / "actor-3.model").unlink()
    with pytest.raises(SerError, match="the actor ensemble needs 6 fold models but actor-3.model is missing"):
        model_files(tmp_path, "svm_stats", "actor", params, None)
    assert [f.name for f in model_files(tmp_path, "svm_stats", "actor", params, 2)] == ["actor-2.model"]


# ---------------------------------------------------------------- tables

def _manifest(tmp_path, rows):
    pd.DataFrame(rows, columns=["clip_id", "path", "actor", "label"]).to_csv(tmp_path / "m.csv", index=False)
    return tmp_path / "m.csv"


def test_tables_are_checked_where_read(tmp_path):
    from ser.runs import read_predictions
    from ser.store import load_features, load_logmel, read_fold, read_manifest
    with pytest.raises(SerError, match="clip_id a appears twice"):
        read_manifest(_manifest(tmp_path, [("a", "x.wav", 1, "sad"), ("a", "y.wav", 1, "sad")]))
    pd.DataFrame({"clip_id": ["a", "b", "c"], "actor": 1, "label": ["sad", "bored", "sad"],
                  "split": ["train", "val", "test"]}).to_csv(tmp_path / "f.csv", index=False)
    with pytest.raises(SerError, match="clip b has label 'bored', not one of the classes"):
        read_fold(tmp_path / "f.csv", ["sad", "happy"])
    df = pd.DataFrame({"f0": [1.0, 2.0]}, index=pd.Index(["a", "a"], name="clip_id"))
    df.to_parquet(tmp_path / "stats.parquet")
    with pytest.raises(SerError, match="clip a appears twice"):
        load_features(tmp_path / "stats.parquet")
    df = pd.DataFrame({"f0": [1.0, np.nan]}, index=pd.Index(["a", "b"], name="clip_id"))
    df.to_parquet(tmp_path / "stats.parquet")
    with pytest.raises(SerError, match=r"clip b: f0 is .*nan.*, not a finite number"):
        load_features(tmp_path / "stats.parquet")
    lm = tmp_path / "logmel"
    lm.mkdir()
    np.save(lm / "logmel.npy", np.zeros((2, 1, 2, 2), dtype=np.float16))
    pd.DataFrame({"row": [0, 1], "clip_id": ["a", "a"], "copy": [0, 0]}).to_csv(lm / "index.csv", index=False)
    with pytest.raises(SerError, match="clip a copy 0 appears twice"):
        load_logmel(lm)
    (tmp_path / "p.csv").write_text("clip_id,split,label,pred,prob_sad\n")
    with pytest.raises(SerError, match="a predictions table without rows"):
        read_predictions(tmp_path / "p.csv")


# ---------------------------------------------------------------- params

def _params_text(tmp_path, text):
    (tmp_path / "params.yaml").write_bytes(text)
    return tmp_path / "params.yaml"


def test_params_are_read_as_dvc_reads_them(tmp_path):
    good = (ROOT / "params.yaml").read_bytes()
    with pytest.raises(ParamsError, match=r"not valid YAML: key 'seed' appears twice \(line 3\)"):
        load_params(_params_text(tmp_path, b"report:\n  seed: 1\n  seed: 2\n"))
    with pytest.raises(ParamsError, match="not valid YAML: key 'report' appears twice"):
        load_params(_params_text(tmp_path, good + b"\nreport:\n  seed: 1\n"))
    with pytest.raises(ParamsError, match="train_cnn_lstm.channels_last: Input should be a valid boolean, got 'no'"):
        load_params(_params_text(tmp_path, good.replace(b"channels_last: true", b"channels_last: no")))
    with pytest.raises(ParamsError, match=r"params.yaml: not UTF-8 text \(byte"):
        load_params(_params_text(tmp_path, b"# caf\xe9\n" + good))
    with pytest.raises(ParamsError, match="is a directory, not a params file"):
        load_params(tmp_path)


def test_a_stray_ser_py_in_the_working_folder_is_not_run(tmp_path):
    """The memory-reuse restart runs with -P: the current folder is not on sys.path."""
    marker = tmp_path / "pwned"
    (tmp_path / "ser.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.pop("MALLOC_MMAP_MAX_", None)
    r = subprocess.run([sys.executable, "-P", "-m", "ser.apps.cli", "predict", "nothing.wav",
                        "--models", "none"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 1 and not marker.exists(), r.stderr


def test_predict_writes_its_json_when_every_file_fails(tmp_path):
    """No earlier run's results are left standing: the JSON says what failed."""
    from ser.analysis import Ensemble
    from ser.apps.predict import run
    import ser.apps.predict as predict
    out = tmp_path / "out.json"
    out.write_text('{"files": ["an earlier run"]}')
    (tmp_path / "bad.wav").write_text("not audio")
    grid = section("features_logmel")
    stub = stub_cnn(grid)
    orig = predict.load_ensembles
    predict.load_ensembles = lambda *a, **k: [stub]
    try:
        code = run([tmp_path / "bad.wav"], json_out=str(out), params_path=ROOT / "params.yaml")
    finally:
        predict.load_ensembles = orig
    doc = json.loads(out.read_text())
    assert code == 1 and doc["files"] == [] and "cannot decode" in doc["errors"][0]["error"]
    assert isinstance(stub, Ensemble)


# ---------------------------------------------------------------- the stage runner

def _runner_root(tmp_path, venv: bool) -> Path:
    root = tmp_path / "repo"
    (root / "bin").mkdir(parents=True)
    shutil.copy(ROOT / "bin" / "stage", root / "bin" / "stage")
    (root / "src").symlink_to(ROOT / "src")
    if venv:  # the project's own environment, as `make setup` makes it
        (root / ".venv").symlink_to(Path(sys.prefix))
    return root


def test_the_stage_runner_finds_the_repositorys_venv(tmp_path):
    """`.venv/bin/dvc repro` without an activated environment: PATH has no project Python."""
    root = _runner_root(tmp_path, venv=True)
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "python3").write_text("#!/bin/sh\nexit 1\n")  # a system Python without the packages
    (fake / "python3").chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "HOME": str(tmp_path)}
    r = subprocess.run(["sh", str(root / "bin" / "stage"), "params", "--params",
                        str(ROOT / "params.yaml"), "--out", str(tmp_path / "ok")], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ok").read_text() == "params.yaml is valid\n"


def test_the_stage_runner_says_what_to_do_without_a_project_python(tmp_path):
    root = _runner_root(tmp_path, venv=False)
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "python3").write_text("#!/bin/sh\nexit 1\n")
    (fake / "python3").chmod(0o755)
    r = subprocess.run(["sh", str(root / "bin" / "stage"), "params", "--out", "x"],
                       env={"PATH": f"{fake}:/usr/bin:/bin", "HOME": str(tmp_path)},
                       capture_output=True, text=True)
    assert r.returncode == 1
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("error: no Python with the project's packages") and "make setup" in line


# ---------------------------------------------------------------- the explicit conversion

def test_old_pickles_convert_to_model_files_with_the_same_answers(tmp_path):
    """The earlier format (joblib / torch.save dicts, CappedPCA pickled as ser.svm.CappedPCA)
    converts, only when asked, to model files that give the same probabilities."""
    import types
    import joblib
    from sklearn.datasets import make_classification
    from ser import svm_pipeline
    from ser.apps.convert_models import convert
    from ser.cnn_lstm import CNNLSTM
    from ser.stages.train_cnn_lstm import network_args
    # an old CNN-LSTM file
    p = section("train_cnn_lstm", filters=[4, 4, 8, 8], lstm_units=16)
    torch.manual_seed(0)
    net = CNNLSTM(3, **network_args(p, {"n_mels": 128, "win_size": 128})).eval()
    torch.save({"kind": "cnn_lstm", "state_dict": net.state_dict(), "classes": ["happy", "sad", "angry"],
                "params": p.model_dump(), "features": {"n_mels": 128, "win_size": 128},
                "run": "actor-1", "protocol": "actor", "fold": 1, "code": "ser 0.1.0"},
               tmp_path / "actor-1.pt")
    # an old SVM file, CappedPCA under its old module path
    X, y = make_classification(n_samples=90, n_features=12, n_informative=6, n_classes=3, random_state=0)
    model, _ = svm_pipeline.fit(X, np.array(["happy", "sad", "angry"])[y],
                                section("train_svm", C=[1], gamma=[0.01], cv_folds=3))
    old = types.ModuleType("ser.svm")
    old.CappedPCA = svm_pipeline.CappedPCA
    sys.modules["ser.svm"] = old
    svm_pipeline.CappedPCA.__module__ = "ser.svm"
    try:
        joblib.dump({"kind": "svm", "model": model, "classes": ["happy", "sad", "angry"],
                     "columns": [f"c{i}" for i in range(12)], "params": {}, "features": {"sample_rate": 16000},
                     "run": "actor-1", "protocol": "actor", "fold": 1}, tmp_path / "actor-1.joblib")
    finally:
        svm_pipeline.CappedPCA.__module__ = "ser.svm_pipeline"
        del sys.modules["ser.svm"]
    with pytest.raises(SerError, match="convert a file you trust"):  # never loaded unasked
        inference.read_model(registry.get("svm_stats"), tmp_path / "actor-1.joblib")
    out = tmp_path / "models"
    cnn_file = convert(tmp_path / "actor-1.pt", out)
    svm_file = convert(tmp_path / "actor-1.joblib", out)
    assert cnn_file == out / "cnn_lstm" / "actor-1.model" and svm_file == out / "svm_stats" / "actor-1.model"
    meta, proba = inference.read_model(registry.get("cnn_lstm"), cnn_file)
    x = np.random.default_rng(0).normal(size=(2, 5, 128, 128)).astype(np.float32) * 5 - 40
    with torch.no_grad():
        want = torch.softmax(net(torch.from_numpy(x)), 1).numpy()
    np.testing.assert_allclose(proba(x), want, atol=0.02)  # the reader runs bf16 where it can
    meta, proba = inference.read_model(registry.get("svm_stats"), svm_file)
    order = [list(model.classes_).index(c) for c in meta["classes"]]
    np.testing.assert_allclose(proba(X), model.predict_proba(X)[:, order], atol=1e-12)
    assert meta["run"] == "actor-1" and "converted from actor-1.joblib" in meta["code"]


def test_a_copied_or_misplaced_model_file_is_refused_in_one_line(tmp_path):
    """Issue 43: random-0.model copied to actor-2 joined the actor ensemble, actor-0 copied over
    actor-1 was averaged twice, each changing the answers without a word. A file's meta must say
    the run its name says."""
    from sklearn.datasets import make_classification
    from conftest import section
    from ser import svm_pipeline
    from ser.analysis import load_ensemble
    params = load_params(ROOT / "params.yaml")
    from ser.features import stats
    columns = stats.columns(params.features_stats)
    X, y = make_classification(n_samples=90, n_features=len(columns), n_informative=4, n_classes=3,
                               random_state=0)
    classes = ["happy", "sad", "angry"]
    model, _ = svm_pipeline.fit(X, np.array(classes)[y], section("train_svm", C=[1], gamma=[0.1],
                                                                 cv_folds=3, pca_components=0))
    payload = {modelfile.ESTIMATOR: modelfile.estimator_bytes(model)}
    folder = tmp_path / "svm_stats"

    def write(place: str, run: str) -> None:
        prot, k = run.rsplit("-", 1)
        modelfile.write(folder / f"{place}.model", {
            "family": "svm_stats", "classes": classes, "columns": columns,
            "features": {"family": "stats", "params": params.features_stats.saved()},
            "run": run, "protocol": prot, "fold": int(k)}, payload)
    for k in range(6):
        write(f"actor-{k}", f"actor-{k}")
    ens = load_ensemble(tmp_path, registry.get("svm_stats"), "actor", params)
    assert ens.runs == [f"actor-{k}" for k in range(6)]
    shutil.copy(folder / "actor-0.model", folder / "actor-1.model")
    with pytest.raises(SerError, match=r"actor-1.model: holds the model of run 'actor-0' \(protocol "
                                       r"'actor', fold 0\), not of actor-1: a copied or misplaced file"):
        load_ensemble(tmp_path, registry.get("svm_stats"), "actor", params)
    write("actor-1", "actor-1")
    write("actor-2", "random-0")
    with pytest.raises(SerError, match=r"actor-2.model: holds the model of run 'random-0' \(protocol 'random'"):
        load_ensemble(tmp_path, registry.get("svm_stats"), "actor", params)


def test_a_model_that_answers_nan_is_refused_never_written(tmp_path):
    """Issue 43: a NaN-weight model made `--json` write NaN (invalid JSON, exit 0) and `ser serve`
    answer 500. Now a network file with non-finite weights is refused when read, and any model
    whose probabilities are not finite is refused when it answers, in one line."""
    from conftest import section
    from ser.analysis import Ensemble
    from ser.cnn_lstm import CNNLSTM
    from ser.stages.train_cnn_lstm import network_args
    net = network_args(section("train_cnn_lstm", filters=[4, 4, 8, 8], lstm_units=16),
                       {"n_mels": 128, "win_size": 128})
    state = CNNLSTM(3, **net).state_dict()
    state["head.weight"][0, 0] = float("nan")
    path = tmp_path / "cnn_lstm" / "actor-0.model"
    modelfile.write(path, {"family": "cnn_lstm", "classes": ["happy", "sad", "angry"], "network": net,
                           "run": "actor-0", "protocol": "actor", "fold": 0},
                    {modelfile.WEIGHTS: modelfile.tensors_bytes(state)})
    with pytest.raises(SerError, match=r"actor-0.model: non-finite weights in 1 of \d+ tensors "
                                       r"\(head.weight, ...\): refused"):
        inference.read_model(registry.get("cnn_lstm"), path)
    ens = Ensemble(registry.get("svm_stats"), "actor", ["actor-0", "actor-1"], ["a", "b"], {}, None,
                   [lambda x: np.full((len(x), 2), 0.5), lambda x: np.full((len(x), 2), np.nan)])
    with pytest.raises(SerError, match="the svm_stats model actor-1 answers non-finite probabilities"):
        ens.proba(np.zeros((1, 3)))


def test_convert_models_loads_no_pickle_without_trust(tmp_path):
    """Issue 43: convert_models ran the pickle before saying it was no model. It is documented to
    load pickles, for files one trusts: without --trust it says so and loads nothing."""
    import joblib
    marker = tmp_path / "pwned"
    joblib.dump({"kind": "svm", "model": Evil(marker)}, tmp_path / "actor-0.joblib")
    r = subprocess.run([sys.executable, "-m", "ser.apps.convert_models", str(tmp_path / "actor-0.joblib"),
                        "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 1 and not marker.exists() and not (tmp_path / "out").exists()
    [line] = r.stderr.strip().splitlines()
    assert line.startswith(f"error: {tmp_path / 'actor-0.joblib'}: loading a pickle runs any code")
    assert "pass --trust" in line


def test_dvc_lock_is_parsed_once_per_version_and_a_change_is_seen(tmp_path):
    """check_committed reads dvc.lock for every family it loads: the parse is cached by the
    file's mtime and size, so the same file is parsed once and an edited one is read again."""
    import yaml
    from ser import analysis
    lock = tmp_path / "dvc.lock"

    def write(md5: str) -> None:
        lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {"train_svm@stats-actor-0": {
            "outs": [{"path": "models/svm_stats/actor-0.model", "md5": md5}]}}}))
    write("a" * 32)
    first = analysis._lock_md5s(lock)
    assert first == {"models/svm_stats/actor-0.model": "a" * 32}
    assert analysis._lock_md5s(lock) is first  # the cached parse
    write("b" * 31 + "cd")  # another size, another version
    assert analysis._lock_md5s(lock) == {"models/svm_stats/actor-0.model": "b" * 31 + "cd"}


# ---------------------------------------------------------------- outputs that never clobber (issue 43)

def test_a_read_only_file_is_refused_also_through_a_symlink_and_keeps_its_content(tmp_path):
    """Issue 43: --json through a symlink to a 0444 file replaced its content and its mode."""
    target = tmp_path / "kept.json"
    target.write_text("precious")
    target.chmod(0o444)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    for path in (target, link):
        with pytest.raises(SerError, match=rf"^{path}: read-only: refused"):
            check_output(path)
    assert target.read_text() == "precious" and (target.stat().st_mode & 0o777) == 0o444


def test_a_replaced_file_keeps_its_mode(tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("old")
    out.chmod(0o600)
    write_text(out, "new")
    assert out.read_text() == "new" and (out.stat().st_mode & 0o777) == 0o600


def test_a_dangling_symlink_is_refused_and_creates_nothing(tmp_path):
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "elsewhere" / "made.json")
    for call in (lambda: check_output(link), lambda: write_text(link, "x")):
        with pytest.raises(SerError, match=r"link.json: a symbolic link to .*made.json, which does "
                                           r"not exist: refused"):
            call()
    assert not (tmp_path / "elsewhere").exists()


def test_a_fifo_without_a_reader_is_refused_at_once(tmp_path):
    """Issue 43: a FIFO with no reader blocked forever; with a reader it is written through."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(SerError, match=r"pipe: a FIFO that nothing reads: refused"):
        check_output(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        check_output(fifo)
    finally:
        os.close(fd)


def test_standard_output_as_a_pipe_still_works():
    code = ("from ser.io import check_output, write_text\n"
            "check_output('/dev/stdout'); write_text('/dev/stdout', 'through stdout')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "through stdout", out.stderr


def test_predict_refuses_to_write_over_its_input_before_any_work(tmp_path):
    """Issue 43: `--csv` naming the input audio overwrote the recording with CSV text, exit 0."""
    from ser.apps.predict import run
    wav = tmp_path / "take.wav"
    sf.write(wav, tone(220, 16000, 1.0), 16000)
    before = wav.read_bytes()
    link = tmp_path / "out.csv"
    link.symlink_to(wav)
    for out in (wav, link):
        for kw in ({"csv_out": str(out)}, {"json_out": str(out)}):
            with pytest.raises(SerError, match=rf"^{out}: is {wav}, an input of this command: refused"):
                run([tmp_path], **kw, params_path=ROOT / "params.yaml", models=tmp_path / "none")
    assert wav.read_bytes() == before


# ---------------------------------------------------------------- bounded model files (issue 43)

def _tiny_cnn(tmp_path, **network) -> tuple[Path, dict, dict]:
    """A small CNN-LSTM model file (as train_cnn_lstm writes it), its meta and its weights."""
    from ser.cnn_lstm import CNNLSTM
    from ser.stages.train_cnn_lstm import network_args
    feats = {"n_mels": 128, "win_size": 128}
    net = network_args(section("train_cnn_lstm", filters=[4, 4, 8, 8], lstm_units=16), feats)
    state = CNNLSTM(3, **net).state_dict()
    meta = {"family": "cnn_lstm", "classes": ["happy", "sad", "angry"], "network": {**net, **network},
            "features": {"family": "logmel", "params": feats}, "run": "actor-0", "protocol": "actor", "fold": 0}
    path = tmp_path / "cnn_lstm" / "actor-0.model"
    modelfile.write(path, meta, {modelfile.WEIGHTS: modelfile.tensors_bytes(state)})
    return path, meta, state


def _peak_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("network,message", [
    ({"lstm_units": 12000}, r"network and weights do not match \(head.weight: \(3, 12000\) declared, "
                            r"\(3, 16\) in the weights\)"),
    ({"filters": [64] * 40, "pools": [1] * 40}, "network more than 16 blocks or LSTM layers: refused"),
    ({"lstm_layers": 10 ** 6}, "network more than 16 blocks"),
    ({"lstm_units": 0}, r"network lstm_units: Input should be greater than or equal to 1, got 0: refused"),
    ({"bn_eps": float("inf")}, "network bn_eps: Input should be a finite number"),
    ({"input_shape": [128, 10 ** 7]}, r"network input_shape \[128, 10000000\] is not its features' "
                                      r"\(n_mels, win_size\) \[128, 128\]: refused"),
    ({"kernel": "3"}, "network kernel: Input should be a valid integer"),
    ({"gates": 4}, "network and weights do not match .*unexpected keyword argument 'gates'"),
])
def test_a_model_file_declaring_a_huge_network_is_refused_before_it_is_built(tmp_path, network, message):
    """Issue 43: meta.json's lstm_units: 12000 in a 12 KB file was built before anything checked
    sizes (past 10 GB and 600 s). Every size is checked (schema, maxima, the weights' shapes on
    PyTorch's meta device) before anything is built: refused in one line, in a moment."""
    import time
    path, _, _ = _tiny_cnn(tmp_path, **network)
    peak, t0 = _peak_mb(), time.perf_counter()
    with pytest.raises(SerError) as err:
        inference.read_model(registry.get("cnn_lstm"), path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
    assert re.search(message, str(err.value)), str(err.value)
    assert time.perf_counter() - t0 < 5 and _peak_mb() - peak < 200


def test_a_network_built_on_the_meta_device_answers_as_one_built_whole(tmp_path):
    """The reader builds the network without memory or initialisation and hands it the file's
    weights (the cold start saved 0.15 s of initialising weights it then replaced): the same
    probabilities as the network built and loaded the ordinary way."""
    import numpy as np
    import torch
    from ser.cnn_lstm import CNNLSTM, prepare
    path, meta, state = _tiny_cnn(tmp_path)
    _, proba = inference.read_model(registry.get("cnn_lstm"), path)
    whole = CNNLSTM(3, **meta["network"])
    whole.load_state_dict(state)
    model, autocast = prepare(whole, device="cpu", channels_last=True, bf16="auto")
    x = np.random.default_rng(0).standard_normal((4, 3, 128, 128)).astype(np.float32)
    with torch.no_grad(), autocast():
        want = torch.softmax(model.eval()(torch.from_numpy(x)).float(), 1).numpy()
    assert np.array_equal(proba(x), want)


def test_weights_of_another_precision_are_refused(tmp_path):
    path, meta, state = _tiny_cnn(tmp_path)
    state = {k: v.double() if v.is_floating_point() else v for k, v in state.items()}
    modelfile.write(path, meta, {modelfile.WEIGHTS: modelfile.tensors_bytes(state)})
    with pytest.raises(SerError, match=r"network and weights do not match \([a-z0-9_.]+: torch.float32 "
                                       r"declared, torch.float64 in the weights\)"):
        inference.read_model(registry.get("cnn_lstm"), path)


@pytest.mark.parametrize("classes", [["happy"] * 3, [f"c{i}" for i in range(200)], "happy", [], [["happy"]]])
def test_a_model_files_classes_are_distinct_emotions(tmp_path, classes):
    path, meta, state = _tiny_cnn(tmp_path)
    modelfile.write(path, {**meta, "classes": classes}, {modelfile.WEIGHTS: modelfile.tensors_bytes(state)})
    with pytest.raises(SerError, match=r"actor-0.model: classes .* are not distinct emotions of neutral, "):
        inference.read_model(registry.get("cnn_lstm"), path)


def _svm_file(path: Path, estimator_payload: bytes, columns: list[str]) -> None:
    modelfile.write(path, {"family": "svm_stats", "classes": ["happy", "sad", "angry"], "columns": columns,
                           "run": "actor-0", "protocol": "actor", "fold": 0},
                    {modelfile.ESTIMATOR: estimator_payload})


def test_a_zip_bomb_inside_the_estimator_is_refused_before_it_is_decompressed(tmp_path):
    """Issue 43: the 512 MB limit applied to the outer zip only: a 4 KB .model whose
    estimator.skops inflated to 4.6 GB. skops' own archive is counted against the same limits."""
    import io
    import time
    for name, members in (("big", {"schema.json": 600}), ("many", {f"{i}.npy": 0 for i in range(5000)})):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for member, mb in members.items():
                with z.open(member, "w", force_zip64=True) as f:
                    for _ in range(mb):
                        f.write(bytes(1 << 20))
        path = tmp_path / name / "svm_stats" / "actor-0.model"
        _svm_file(path, buf.getvalue(), ["x"])
        assert path.stat().st_size < 2 << 20
        peak, t0 = _peak_mb(), time.perf_counter()
        with pytest.raises(SerError, match=rf"^{path}: unreadable estimator \((its entries declare \d+ "
                                           rf"bytes|5000 entries), over \d+\)$"):
            inference.read_model(registry.get("svm_stats"), path)
        assert time.perf_counter() - t0 < 2 and _peak_mb() - peak < 100


def _fitted_svm(n_features: int):
    from sklearn.datasets import make_classification
    from ser import svm_pipeline
    X, y = make_classification(n_samples=90, n_features=n_features, n_informative=4, n_classes=3,
                               random_state=0)
    model, _ = svm_pipeline.fit(X, np.array(["happy", "sad", "angry"])[y],
                                section("train_svm", C=[1], gamma=[0.1], cv_folds=3, pca_components=0))
    return X, model


def test_an_estimator_of_another_kind_is_refused_though_skops_trusts_it(tmp_path):
    """Issue 43: a DummyClassifier (trusted by skops' defaults, not by the project) loaded, then
    raised AttributeError in predict, serve and evaluate_corpus."""
    from sklearn.dummy import DummyClassifier
    path = tmp_path / "svm_stats" / "actor-0.model"
    dummy = DummyClassifier().fit(np.zeros((3, 2)), ["happy", "sad", "angry"])
    _svm_file(path, modelfile.estimator_bytes(dummy), ["x", "y"])
    with pytest.raises(SerError, match=r"actor-0.model: holds a DummyClassifier, not the calibrated SVM "
                                       r"pipeline train_svm writes: refused"):
        inference.read_model(registry.get("svm_stats"), path)
    X, model = _fitted_svm(7)
    _svm_file(path, modelfile.estimator_bytes(model), ["x", "y"])
    with pytest.raises(SerError, match=r"its estimator takes 7 features, its meta names 2 columns: refused"):
        inference.read_model(registry.get("svm_stats"), path)


@pytest.mark.parametrize("change,message", [
    (lambda c: c[::-1], r"column 0 '.*' where its features have '.*'"),
    (lambda c: [*c[:-1], "no_such_feature"], r"column 199 'no_such_feature' where its features have"),
    (lambda c: c[:-1], "199 columns"),
    (lambda c: None, "no list of columns"),
])
def test_unknown_or_reordered_columns_are_refused(tmp_path, change, message):
    """Issue 43: unknown columns in meta gave a KeyError traceback (500 in serve); reversed
    columns were accepted and changed the answer."""
    from ser.analysis import load_ensemble
    from ser.features import stats
    params = load_params(ROOT / "params.yaml")
    columns = stats.columns(params.features_stats)
    X, model = _fitted_svm(len(columns))
    path = tmp_path / "svm_stats" / "actor-0.model"
    modelfile.write(path, {"family": "svm_stats", "classes": ["happy", "sad", "angry"],
                           "columns": change(columns), "run": "actor-0", "protocol": "actor", "fold": 0,
                           "features": {"family": "stats", "params": params.features_stats.saved()}},
                    {modelfile.ESTIMATOR: modelfile.estimator_bytes(model)})
    with pytest.raises(SerError, match=rf"actor-0.model: {message}.*not the 200 columns of features_stats"):
        load_ensemble(tmp_path, registry.get("svm_stats"), "actor", params, fold=0)


# ---------------------------------------------------------------- one line, not a traceback (issue 43)

def test_file_names_that_are_not_utf8_are_written_in_every_output(tmp_path):
    """Issue 43: a non-UTF-8 file name made --csv (pyarrow) and --plot (matplotlib) tracebacks.
    Every output names the file with its odd bytes as \\xNN escapes."""
    from ser.analysis import analyse_audio
    from ser.apps.predict import as_json, plot, printable, to_rows
    grid, pp = section("features_logmel"), section("predict")
    path = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.wav")
    name = printable(path)
    assert name.endswith("caf\\xe9.wav")
    ens = [stub_cnn(grid)]
    r = analyse_audio(tone(220, 16000, 4.0), 16000, name, ens, pp, grid)
    write_text(tmp_path / "out.csv", to_rows([r], ens).to_csv(index=False))
    assert "caf\\xe9.wav" in (tmp_path / "out.csv").read_text()
    json.loads(json.dumps(as_json([r], ens), allow_nan=False).encode().decode("utf-8", "strict"))
    plot(r, ens, Path(path).with_suffix(".png"))
    assert os.path.getsize(os.fsencode(str(tmp_path)) + b"/caf\xe9.png") > 1000


def test_a_full_disk_is_one_line_for_a_plot_and_for_any_stage(tmp_path):
    """Issue 43: --plot or a training stage on a full disk (ENOSPC) was a traceback."""
    from ser import figures
    fig, _ = figures.plt.subplots()
    with pytest.raises(SerError, match=r"^/dev/full: cannot write \(No space left on device\)$"):
        figures.save(fig, Path("/dev/full"))
    code = ("import errno, os\nfrom ser.errors import run_cli\n"
            "def main():\n    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), 'checkpoints/x.ckpt')\n"
            "run_cli(main)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stderr == (
        "error: checkpoints/x.ckpt: cannot write (No space left on device): make room and rerun; "
        "what was written whole is kept\n")


def test_the_plot_draws_the_pages_emotion_strips(monkeypatch):
    """Issue 41: `ser predict --plot` draws what the page does: per family a strip on the time
    axis, each segment in its top emotion's colour (registry.EMOTION_COLORS), a silent one white."""
    from matplotlib.colors import to_hex
    from ser import figures
    from ser.analysis import analyse_audio
    from ser.apps.predict import plot
    grid, pp = section("features_logmel"), section("predict", hop_s=3.0)
    y = np.concatenate([tone(220, 16000, 7.0), np.zeros(16000 * 4, dtype=np.float32)])
    r = analyse_audio(y, 16000, "take.wav", [stub_cnn(grid)], pp, grid)
    saved = []
    monkeypatch.setattr(figures, "save", lambda fig, path: saved.append(fig))
    plot(r, [stub_cnn(grid)], Path("unused.png"))
    ax = saved[0].axes[0]
    faces = [to_hex(p.get_facecolor(), keep_alpha=False) for p in ax.patches[1:]]
    silent = [s["silent"] for s in r["segments"]]
    assert len(faces) == len(r["segments"]) and any(silent) and not all(silent)
    assert faces == ["#ffffff" if s else registry.EMOTION_COLORS["neutral"].lower() for s in silent]
    assert ax.get_title(loc="left") == "Neural network (CNN-LSTM): neutral (90% sure) for the whole recording"


def test_a_feature_table_missing_a_column_is_refused_before_training(tmp_path):
    """Issue 43: a stats table with one column dropped trained on 199 features (and wrote a model
    that only the reader's check would refuse)."""
    from ser.features import stats
    from ser.stages.train_svm import check_columns
    p = section("features_stats")
    cols = stats.columns(p)
    df = pd.DataFrame(np.zeros((2, len(cols))), columns=cols, index=pd.Index(["a", "b"], name="clip_id"))
    df.attrs = {"family": "stats", "params": p.saved()}
    df.to_parquet(tmp_path / "stats.parquet")
    check_columns(tmp_path / "stats.parquet", pd.read_parquet(tmp_path / "stats.parquet"))
    cut = df.drop(columns=cols[5])
    cut.to_parquet(tmp_path / "stats.parquet")
    with pytest.raises(SerError, match=r"stats.parquet: 199 columns, not the 200 columns of "
                                       r"features_stats: rerun `dvc repro features@stats`"):
        check_columns(tmp_path / "stats.parquet", pd.read_parquet(tmp_path / "stats.parquet"))
    df[list(reversed(cols))].to_parquet(tmp_path / "stats.parquet")
    with pytest.raises(SerError, match=r"column 0 .* where its features have"):
        check_columns(tmp_path / "stats.parquet", pd.read_parquet(tmp_path / "stats.parquet"))
