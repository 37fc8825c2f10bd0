"""The real `dvc repro` in a temporary copy of the repository, on a 4-actor archive."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def sh(*args, cwd, env):
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory, small_archive):
    d = tmp_path_factory.mktemp("repo")
    for name in ("src", "dvc.yaml", "params.yaml", "pyproject.toml", ".dvc/config", ".dvcignore",
                 ".gitignore"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, d / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, d / name)
    p = yaml.safe_load((d / "params.yaml").read_text())
    p["download"].update(md5=hashlib.md5(small_archive.read_bytes()).hexdigest(), actors=[1, 2, 3, 4])
    p["features_logmel"].update(augment_copies=1)
    p["train_svm"].update(C=[1, 10], gamma=[0.005, 0.01], cv_folds=3)
    p["train_cnn_lstm"].update(filters=[4, 4, 8, 8], lstm_units=16, epochs=2,
                               bn_recalibration_batches=2)
    p["report"].update(bootstrap=200)
    (d / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    env = dict(os.environ, RAVDESS_ARCHIVE=str(small_archive), DVC_NO_ANALYTICS="1",
               PYTHONPATH=str(d / "src"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("MALLOC_MMAP_MAX_", None)
    sh("git", "init", "-q", cwd=d, env=env)
    sh("git", "config", "user.email", "e2e@localhost", cwd=d, env=env)  # dvc exp commits too
    sh("git", "config", "user.name", "e2e", cwd=d, env=env)
    sh("git", "add", "-A", cwd=d, env=env)
    sh("git", "commit", "-qm", "init", cwd=d, env=env)
    log = sh("dvc", "repro", cwd=d, env=env)
    return d, env, log


def test_repro_runs_every_stage(repo):
    d, _, log = repo
    for stage in ("download", "prepare", "features_stats", "features_logmel", "train_svm",
                  "train_cnn_lstm", "report"):
        assert f"Running stage '{stage}'" in log
    m = pd.read_csv(d / "data/prepared/manifest.csv")
    assert len(m) == 224 and set(m["split"]) == {"train", "val", "test"}
    assert pd.read_parquet(d / "data/features/stats.parquet").shape == (224, 200)
    idx = pd.read_csv(d / "data/features/logmel/index.csv")
    assert len(idx) == 224 + (m["split"] == "train").sum()
    for model in ("svm", "cnn_lstm"):
        metrics = json.loads((d / f"reports/{model}/metrics.json").read_text())
        assert 0 <= metrics["test"]["accuracy"] <= 1
        pred = pd.read_csv(d / f"reports/{model}/predictions.csv")
        assert len(pred) == (m["split"] != "train").sum()
    assert json.loads((d / "reports/cnn_lstm/metrics.json").read_text())["epochs_run"] == 2
    assert "CNN-LSTM" in (d / "reports/report.md").read_text()
    assert not (d / "data/checkpoints/cnn_lstm.ckpt").exists()  # removed once the stage is done


def test_second_repro_does_nothing(repo):
    d, env, _ = repo
    out = sh("dvc", "repro", cwd=d, env=env)
    assert "Running stage" not in out
    assert "up to date" in sh("dvc", "status", cwd=d, env=env)


def test_dvc_lists_metrics_and_plots(repo):
    d, env, _ = repo
    shown = sh("dvc", "metrics", "show", "--json", cwd=d, env=env)
    assert "gap.test.accuracy_pp" in shown and "svm.test.accuracy" in shown
    diff = sh("dvc", "metrics", "diff", "--all", cwd=d, env=env)
    assert "gap.test.accuracy_pp" in diff
    sh("dvc", "plots", "show", "--json", cwd=d, env=env)


def test_param_change_reruns_only_what_it_affects(repo):
    d, env, _ = repo
    p = yaml.safe_load((d / "params.yaml").read_text())
    p["report"]["bootstrap"] = 300
    (d / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    status = sh("dvc", "status", cwd=d, env=env)
    assert "report:" in status and "train_svm:" not in status and "train_cnn_lstm:" not in status
    assert "report.bootstrap" in sh("dvc", "params", "diff", cwd=d, env=env)
    sh("git", "checkout", "params.yaml", cwd=d, env=env)


def test_exp_run_lists_the_gap_beside_params(repo):
    d, env, _ = repo
    out = sh("dvc", "exp", "run", "-S", "report.confidence=0.9", cwd=d, env=env)
    assert "Running stage 'report'" in out and "Running stage 'train_cnn_lstm'" not in out
    shown = sh("dvc", "exp", "show", "--no-pager", "--csv", cwd=d, env=env)
    header = shown.splitlines()[0]
    assert "gap.test.accuracy_pp" in header and "report.confidence" in header
