"""The shipped models (models/, stage release): they are the models the committed report measured
(manifest and dvc.lock agree, the files match their hashes, at most 40 MB), a shipped model gives
the committed predictions (no drift), and a fresh copy without data/models uses them, refusing a
file that does not match its manifest."""

import hashlib
import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import ROOT
from ser import modelfile, registry

SHIPPED = ROOT / "models"


def shipped() -> dict:
    if not (SHIPPED / "manifest.json").is_file():
        pytest.skip("no release committed yet (models/manifest.json): the release stage of the "
                    "first full run writes it")
    return json.loads((SHIPPED / "manifest.json").read_text())


def test_the_manifest_and_dvc_lock_agree():
    m = shipped()
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    folds = sorted(int(r.split("-")[1]) for r in params["folds"]["runs"] if r.startswith("actor-"))
    assert set(m["files"]) == {f"{f}/actor-{k}.model" for f in registry.FAMILIES for k in folds}
    total = 0
    for rel, e in m["files"].items():
        f = SHIPPED / rel
        total += f.stat().st_size
        outs = {o["path"]: o["md5"] for o in lock[e["dvc_lock"]["stage"]]["outs"]}
        assert outs[e["dvc_lock"]["path"]] == e["dvc_lock"]["md5"], rel  # what the report measured
        assert hashlib.sha256(f.read_bytes()).hexdigest() == e["sha256"], rel
        assert hashlib.md5(f.read_bytes()).hexdigest() == e["dvc_lock"]["md5"], rel
        meta, _ = modelfile.read(f, family=e["family"])
        assert meta["run"] == e["run"] and meta["classes"] == e["classes"]
    assert total <= 40e6, f"models/ holds {total / 1e6:.1f} MB"


def test_a_shipped_model_gives_the_committed_predictions(real_small_corpus):
    """No drift: three test clips of fold actor-0 (actors 1-4) through `ser predict`'s path with
    the shipped fold model give the probabilities the committed report pooled."""
    shipped()
    from ser import analysis
    from ser.params import load_params
    params = load_params(ROOT / "params.yaml")
    pp = params.predict.model_copy(update={"loop_below_s": 0.0})
    committed = pd.read_csv(ROOT / "reports" / "predictions" / "actor.csv", dtype={"clip_id": str})
    committed = committed[committed["run"] == "actor-0"].set_index("clip_id")
    ens = analysis.load_ensembles(SHIPPED, list(registry.FAMILIES), "actor", params, fold=0)
    grid = analysis.window_grid(ens, params)
    files = {p.stem: p for p in real_small_corpus.rglob("*.*")}
    for clip in committed.index[[0, 50, 100]]:
        r = analysis.analyse(files[clip], ens, pp, grid)
        for e in ens:
            entry = r["segments"][0][e.name] if e.family.features == "logmel" else r["whole"][e.name]
            for c, v in entry["probs"].items():
                assert v == pytest.approx(committed.loc[clip, f"{e.name}_prob_{c}"], abs=6e-4), (e.name, clip)


@pytest.mark.e2e
def test_a_fresh_copy_predicts_with_the_shipped_models_and_refuses_a_changed_one(repo, tmp_path):
    """The tiny pipeline's release stage wrote models/; a copy with no data/ uses it."""
    import soundfile as sf
    from conftest import synthetic_clip
    d, env, _ = repo
    assert (d / "models" / "manifest.json").is_file()
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copytree(d / "models", clone / "models")
    shutil.copy(d / "params.yaml", clone / "params.yaml")
    sf.write(clone / "voice.wav", synthetic_clip("03-01-05-02-01-01-02", 16000, 4.0) / 32768, 16000)

    def predict():
        return subprocess.run([sys.executable, "-m", "ser.apps.cli", "predict", "voice.wav", "--json", "-"],
                              cwd=clone, env=env, capture_output=True, text=True)
    r = predict()
    assert r.returncode == 0, r.stderr
    assert "predict: models: the shipped models (models/, released " in r.stderr.splitlines()[0]
    assert set(json.loads(r.stdout)["models"]) == set(registry.FAMILIES)
    target = clone / "models" / "cnn_lstm" / "actor-1.model"
    data = bytearray(target.read_bytes())
    data[-100] ^= 1
    target.write_bytes(bytes(data))
    r = predict()
    assert r.returncode == 1
    [line] = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert "actor-1.model: sha256" in line and "is not the manifest's" in line
