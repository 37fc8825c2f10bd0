"""The committed models (models/<family>/<run>.model, written by the training stages, kept by git):
dvc.lock records each one's md5 and they match it (so a fresh clone trains nothing), they fit in
80 MB, a committed model gives its run's committed predictions through `ser predict`'s path (no
drift), and a fresh copy predicts with them, refusing a file that differs from dvc.lock."""

import hashlib
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import ROOT
from ser import analysis, modelfile, modelread, registry
from ser.params import load_params

MODELS = ROOT / "models"


def committed() -> list:
    files = sorted(MODELS.glob(f"*/*{modelfile.SUFFIX}"))
    if not files:
        pytest.skip("no trained model committed yet (models/<family>/<run>.model): the training "
                    "stages of the full run write them")
    return files


def test_every_committed_model_is_the_one_dvc_lock_records():
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    outs = {o["path"]: (name, o["md5"]) for name, st in lock.items() for o in st.get("outs", [])}
    total = 0
    for f in committed():
        rel = f.relative_to(ROOT).as_posix()
        assert rel in outs, f"{rel}: no dvc.lock entry"
        stage, md5 = outs[rel]
        assert hashlib.md5(f.read_bytes()).hexdigest() == md5, rel
        fam = registry.get(f.parent.name)
        meta, _ = modelread.read(f, family=fam.name)
        run = meta["run"]
        want = f"train_svm@{fam.features}-{run}" if fam.stage == "train_svm" else f"{fam.stage}@{run}"
        assert f.stem == run and stage == want, (rel, stage)
        run_dir = ROOT / "runs" / f.parent.name / meta["run"]
        assert (run_dir / "predictions.csv").is_file(), f"{rel}: its run folder is not committed"
        total += f.stat().st_size
    assert total <= 80e6, f"models/ holds {total / 1e6:.1f} MB"


def test_a_committed_model_gives_its_runs_predictions(real_small_corpus):
    """No drift: three test clips of fold actor-0 (actors 1-4) through `ser predict`'s path with
    each family's committed actor-0 model give the probabilities its run folder recorded."""
    committed()
    params = load_params(ROOT / "params.yaml")
    pp = params.predict.model_copy(update={"loop_below_s": 0.0})
    names = [f for f in registry.FAMILIES if (MODELS / f / "actor-0.model").is_file()]
    if not names:
        pytest.skip("no actor-0 model committed yet")
    ens = analysis.load_ensembles(MODELS, names, "actor", params, fold=0)
    grid = analysis.window_grid(ens, params)
    files = {p.stem: p for p in real_small_corpus.rglob("*.*")}
    for e in ens:
        table = pd.read_csv(ROOT / "runs" / e.name / "actor-0" / "predictions.csv",
                            dtype={"clip_id": str}).set_index("clip_id")
        test = table[table["split"] == "test"]
        for clip in test.index[[0, 50, 100]]:
            r = analysis.analyse(files[clip], ens, pp, grid)
            entry = r["segments"][0][e.name] if e.family.features == "logmel" else r["whole"][e.name]
            for c, v in entry["probs"].items():
                assert v == pytest.approx(test.loc[clip, f"prob_{c}"], abs=6e-4), (e.name, clip)


@pytest.mark.e2e
def test_a_fresh_copy_predicts_with_the_committed_models_and_refuses_a_changed_one(repo, tmp_path):
    """The tiny pipeline wrote models/ and dvc.lock; a copy with no data/ uses them."""
    import soundfile as sf
    from conftest import synthetic_clip
    d, env, _ = repo
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("models", "src"):
        shutil.copytree(d / name, clone / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("params.yaml", "dvc.lock"):
        shutil.copy(d / name, clone / name)
    sf.write(clone / "voice.wav", synthetic_clip("03-01-05-02-01-01-02", 16000, 4.0) / 32768, 16000)

    def predict():
        return subprocess.run([sys.executable, "-m", "ser.apps.cli", "predict", "voice.wav", "--json", "-"],
                              cwd=clone, env={**env, "PYTHONPATH": str(clone / "src")},
                              capture_output=True, text=True)
    r = predict()
    assert r.returncode == 0, r.stderr
    assert "predict: models: the committed models (models/, checked against dvc.lock)" in r.stderr.splitlines()[0]
    import json
    assert list(json.loads(r.stdout)["models"]) == yaml.safe_load((d / "params.yaml").read_text())["predict"]["families"]
    target = clone / "models" / "cnn_lstm" / "actor-1.model"
    data = bytearray(target.read_bytes())
    data[-100] ^= 1
    target.write_bytes(bytes(data))
    r = predict()
    assert r.returncode == 1
    [line] = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert "actor-1.model: md5" in line and "is not the one dvc.lock records" in line
    shutil.copy(d / "models" / "cnn_lstm" / "actor-1.model", target)
    (clone / "dvc.lock").write_text((clone / "dvc.lock").read_text().replace(
        "models/cnn_lstm/actor-1.model", "models/cnn_lstm/other.model"))
    r = predict()
    assert r.returncode == 1 and "actor-1.model: not recorded in dvc.lock" in r.stderr
