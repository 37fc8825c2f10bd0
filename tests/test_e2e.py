"""The real `dvc repro` in a temporary copy of the repository, on a generated 4-actor archive:
both protocols with tiny settings (random 2-fold CV, actor folds of one actor), then what a user
does next: rerun, change params, experiments, a bad param, an interrupted run, and the
several-machines flow through a DVC remote and its run cache."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import E2E_RUNS as RUNS, make_repo, sh
from ser import registry

FAMILIES = list(registry.FAMILIES)
SVM_SETS = [f.features for f in registry.FAMILIES.values() if f.stage == "train_svm"]

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def restore_repo_files(request):
    """Whatever a test does to the shared repository's params.yaml is undone after it, passed or
    failed, so that a failing test cannot make the next ones fail for the wrong reason."""
    if "repo" not in request.fixturenames:
        yield
        return
    params = request.getfixturevalue("repo")[0] / "params.yaml"
    saved = params.read_bytes()
    try:
        yield
    finally:
        params.write_bytes(saved)


def outputs(d: Path) -> dict[str, bytes]:
    """Every output of the pipeline, by path (what a stage run with bad params must not lose)."""
    return {str(p.relative_to(d)): p.read_bytes() for top in ("data", "models", "runs", "reports")
            for p in (d / top).rglob("*") if p.is_file()}


def test_repro_runs_every_stage_and_fold(repo):
    d, _, log = repo
    stages = ["params", "download", "prepare", "folds", "features@logmel", "corpus@tess",
              "evaluate_corpus@tess", "report"] + [f"features@{f}" for f in SVM_SETS]
    stages += [f"train_svm@{f}-{r}" for f in SVM_SETS for r in RUNS]
    stages += [f"train_cnn_lstm@{r}" for r in RUNS]
    for stage in stages:
        assert f"Running stage '{stage}'" in log
    m = pd.read_csv(d / "data/prepared/manifest.csv")
    assert len(m) == 224 and "split" not in m.columns
    assert pd.read_parquet(d / "data/features/stats.parquet").shape == (224, 200)
    assert pd.read_parquet(d / "data/features/egemaps.parquet").shape == (224, 88)
    assert pd.read_parquet(d / "data/features/egemaps_conditioned.parquet").shape == (224, 88)
    assert len(pd.read_csv(d / "data/features/logmel/index.csv")) == 224 * 2  # every clip, 1 copy
    for r in RUNS:
        for model in FAMILIES:
            pred = pd.read_csv(d / f"runs/{model}/{r}/predictions.csv")
            fold = pd.read_csv(d / f"data/folds/{r}.csv")
            assert sorted(pred["clip_id"]) == sorted(fold.loc[fold["split"] != "train", "clip_id"])
        assert json.loads((d / f"runs/cnn_lstm/{r}/metrics.json").read_text())["epochs_run"] == 3
        assert (d / f"models/cnn_lstm/{r}.model").read_bytes()[:2] == b"PK"  # a model file
    for prot in ("random", "actor"):  # every clip tested exactly once per protocol
        pooled = pd.read_csv(d / f"reports/predictions/{prot}.csv")
        assert sorted(pooled["clip_id"]) == sorted(m["clip_id"])
    metrics = json.loads((d / "reports/metrics.json").read_text())
    for key in ("random.svm_stats.accuracy", "actor.cnn_lstm.accuracy_ci_low",
                "random.svm_egemaps.accuracy", "random.gap.cnn_lstm-svm_stats.accuracy_pp",
                "actor.gap.svm_egemaps-svm_stats.mcnemar_p", "drop.svm_stats.accuracy_pp_ci_high"):
        assert key in metrics
    folds = json.loads((d / "reports/metrics_folds.json").read_text())
    assert {f"runs.{r}.gap.cnn_lstm-svm_stats.accuracy_pp" for r in RUNS} <= set(folds)
    md = (d / "reports/report.md").read_text()
    assert "CNN-LSTM" in md and "unseen speakers" in md and "95% CI" in md
    for fig in ("accuracy", "actors", "forest_random", "forest_actor", "curves_random", "curves_actor"):
        assert (d / f"reports/figures/{fig}.png").stat().st_size > 1000


def test_second_repro_does_nothing(repo):
    d, env, _ = repo
    out = sh("dvc", "repro", cwd=d, env=env)
    assert "Running stage" not in out
    assert "up to date" in sh("dvc", "status", cwd=d, env=env)


def test_dvc_lists_metrics_and_plots(repo):
    d, env, _ = repo
    shown = sh("dvc", "metrics", "show", "--json", cwd=d, env=env)
    assert "random.gap.cnn_lstm-svm_stats.accuracy_pp" in shown and "runs.actor-3.svm_stats.accuracy" in shown
    diff = sh("dvc", "metrics", "diff", "--all", cwd=d, env=env)
    assert "actor.gap.cnn_lstm-svm_egemaps.accuracy_pp" in diff
    assert "runs.random-1.gap.cnn_lstm-svm_stats.accuracy_pp" in diff
    r = sh("dvc", "plots", "show", "--json", cwd=d, env=env, ok=False)
    assert r.returncode == 0, r.stderr
    plots = json.loads(r.stdout)["data"]
    assert {f"reports/plots/confusion/{f}_{p}.csv" for f in FAMILIES
            for p in ("random", "actor")} <= set(plots)
    assert {f"reports/plots/curves/{r}.csv" for r in RUNS} <= set(plots)


def test_param_change_reruns_only_what_it_affects(repo):
    d, env, _ = repo
    p = yaml.safe_load((d / "params.yaml").read_text())
    p["report"]["bootstrap"] = 300
    (d / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    status = sh("dvc", "status", cwd=d, env=env)
    assert "report:" in status and "train_svm@" not in status and "train_cnn_lstm@" not in status
    assert "report.bootstrap" in sh("dvc", "params", "diff", cwd=d, env=env)
    sh("git", "checkout", "params.yaml", cwd=d, env=env)


def test_a_new_protocol_reruns_nothing_already_trained(repo):
    """Adding the holdout protocol recomputes no feature and retrains no existing fold."""
    d, env, _ = repo
    p = yaml.safe_load((d / "params.yaml").read_text())
    p["folds"]["runs"] = RUNS + ["holdout-0"]
    (d / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    out = sh("dvc", "repro", "folds", cwd=d, env=env)
    assert "Running stage 'features_" not in out
    status = sh("dvc", "status", cwd=d, env=env)
    changed = {line.strip().rstrip(":") for line in status.splitlines()
               if line and not line.startswith(("\t", " ")) and line.rstrip().endswith(":")}
    assert changed == {*(f"train_svm@{f}-holdout-0" for f in SVM_SETS),
                       "train_cnn_lstm@holdout-0", "report",
                       "evaluate_corpus@tess"}, status  # they read folds.runs; train nothing
    sh("git", "checkout", "params.yaml", "dvc.lock", cwd=d, env=env)
    sh("dvc", "checkout", cwd=d, env=env)
    assert "up to date" in sh("dvc", "status", cwd=d, env=env)


def test_exp_run_labels_intervals_with_their_confidence(repo):
    d, env, _ = repo
    out = sh("dvc", "exp", "run", "-S", "report.confidence=0.9", cwd=d, env=env)
    assert "Running stage 'report'" in out and "Running stage 'train_cnn_lstm" not in out
    md = (d / "reports/report.md").read_text()
    assert "90% CI" in md and "95%" not in md
    shown = sh("dvc", "exp", "show", "--no-pager", "--csv", cwd=d, env=env)
    header = shown.splitlines()[0]
    assert "random.gap.cnn_lstm-svm_stats.accuracy_pp" in header and "report.confidence" in header
    sh("git", "checkout", "--", ".", cwd=d, env=env)
    sh("dvc", "checkout", cwd=d, env=env)


def test_bad_param_stops_before_any_output_is_touched(repo):
    d, env, _ = repo
    before = {p: p.read_bytes() for p in (d / "reports").rglob("*") if p.is_file()}
    p = yaml.safe_load((d / "params.yaml").read_text())
    p["train_cnn_lstm"]["epochs"] = 0
    (d / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    r = sh("dvc", "repro", cwd=d, env=env, ok=False)
    assert r.returncode != 0
    assert "train_cnn_lstm.epochs: Input should be greater than or equal to 1" in r.stdout + r.stderr
    assert "Running stage 'train_" not in r.stdout
    after = {p: p.read_bytes() for p in (d / "reports").rglob("*") if p.is_file()}
    assert after == before
    assert all((d / f"models/cnn_lstm/{r}.model").exists() for r in RUNS)
    assert (d / "data/params.ok").exists()  # persist: not even the check's own marker goes
    sh("git", "checkout", "params.yaml", cwd=d, env=env)


def test_interrupted_repro_resumes_to_the_same_model(repo):
    """Kill `dvc repro` and its trainer mid-fold: the rerun resumes the killed fold from its
    checkpoint and ends with the very model an uninterrupted run made; no other fold reruns."""
    d, env, _ = repo
    model = d / "models/cnn_lstm/random-1.model"
    before = model.read_bytes()
    (d / "checkpoints/cnn_lstm/random-1.ckpt").unlink()  # a finished one would train nothing
    proc = subprocess.Popen(["dvc", "repro", "-f", "-s", "train_cnn_lstm@random-1"], cwd=d, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    ckpt = d / "checkpoints/cnn_lstm/random-1.ckpt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert ckpt.exists(), "training of random-1 never wrote its first checkpoint"
    os.killpg(proc.pid, signal.SIGKILL)  # dvc and its trainer, as a closed terminal would
    proc.wait()
    # the same command again; --no-run-cache: this fold finished once before, and DVC would
    # restore that run instead of resuming (a fold that never finished has no such record)
    out = sh("dvc", "repro", "-f", "-s", "--no-run-cache", "train_cnn_lstm@random-1", cwd=d, env=env)
    assert "resuming from checkpoints/cnn_lstm/random-1.ckpt after epoch" in out
    assert model.read_bytes() == before
    # every other fold kept (the report reruns: the fold's metrics hold its new timings)
    assert "Running stage 'train_" not in sh("dvc", "repro", cwd=d, env=env)
    assert "up to date" in sh("dvc", "status", cwd=d, env=env)


STAGE_KINDS = ["params", "download", "prepare", "folds", "corpus@tess", "features@stats",
               "train_svm@stats-random-0", "train_cnn_lstm@actor-1", "evaluate_corpus@tess", "report"]


def test_a_stage_run_alone_with_bad_params_loses_nothing(repo):
    """`dvc repro -s STAGE` skips the params stage: each stage validates params.yaml itself and
    stops in one line. Committed outputs (models/, runs/, reports/, data/params.ok) persist: DVC
    leaves them; cached ones (the data stages') DVC removes first, and the next `dvc repro`
    restores them from its cache, retraining nothing. Every output ends byte-identical."""
    d, env, _ = repo
    before = outputs(d)
    good = (d / "params.yaml").read_text()
    p = yaml.safe_load(good)
    p["report"]["bootstrap"] = 1
    (d / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    for stage in STAGE_KINDS:
        r = sh("dvc", "repro", "-f", "-s", stage, cwd=d, env=env, ok=False)
        assert r.returncode != 0, stage
        assert "report.bootstrap: Input should be greater than or equal to 100" in r.stdout + r.stderr, stage
        assert "Traceback" not in r.stdout + r.stderr, stage
        assert all((d / f).read_bytes() == before[f] for f in before
                   if f.startswith(("reports/", "models/", "runs/"))), stage
    (d / "params.yaml").write_text(good)
    out = sh("dvc", "repro", cwd=d, env=env)
    assert "Running stage 'train_" not in out  # restored from the cache, not retrained
    assert outputs(d) == before


def test_a_killed_dvc_loses_nothing_of_its_orphan_trainer(repo):
    """dvc killed while its trainer goes on: a second `dvc repro` is refused by the trainer's lock
    in one line; the orphan finishes and writes whole outputs; the next `dvc repro` takes them from
    its finished checkpoint without training and records them."""
    d, env, _ = repo
    model = d / "models/cnn_lstm/actor-2.model"
    want = model.read_bytes()
    ckpt = d / "checkpoints/cnn_lstm/actor-2.ckpt"
    ckpt.unlink()
    proc = subprocess.Popen(["dvc", "repro", "-f", "-s", "train_cnn_lstm@actor-2"], cwd=d, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.02)
    trainer = [pid for pid in subprocess.run(["pgrep", "-f", "train_cnn_lstm --run actor-2"],
                                             capture_output=True, text=True).stdout.split()
               if os.path.realpath(f"/proc/{pid}/cwd") == os.path.realpath(d)]  # not another repo's
    assert trainer, "no trainer found"
    for pid in trainer:  # held still while dvc is killed and rerun: a slow fold, in short
        os.kill(int(pid), signal.SIGSTOP)
    proc.kill()  # dvc only: its trainer goes on
    proc.wait()
    r = sh("dvc", "repro", "-f", "-s", "train_cnn_lstm@actor-2", cwd=d, env=env, ok=False)
    for pid in trainer:
        os.kill(int(pid), signal.SIGCONT)
    assert r.returncode != 0 and "another trainer is running this run" in r.stdout + r.stderr
    while any(Path(f"/proc/{pid}").exists() for pid in trainer) and time.time() < deadline:
        time.sleep(0.1)
    assert model.read_bytes() == want  # the orphan's whole output, as an uninterrupted run's
    out = sh("dvc", "repro", "-f", "-s", "train_cnn_lstm@actor-2", cwd=d, env=env)
    assert "after epoch 3" in out and "epoch 1:" not in out  # from the finished checkpoint
    assert model.read_bytes() == want
    assert "train_cnn_lstm@actor-2" not in sh("dvc", "status", cwd=d, env=env)


def test_a_missing_corpus_archive_stops_repro_before_any_training(tmp_path, small_archive):
    env = make_repo(tmp_path / "r", small_archive)
    env.pop("TESS_ARCHIVE")
    t0 = time.monotonic()
    r = sh("dvc", "repro", cwd=tmp_path / "r", env=env, ok=False)
    assert r.returncode != 0 and time.monotonic() - t0 < 120
    out = r.stdout + r.stderr
    assert "corpora.tess: set TESS_ARCHIVE=/path/to/archive.zip" in out
    assert "remove `tess` from `corpora` in params.yaml" in out
    assert "Running stage 'train_" not in out and "Running stage 'features@" not in out
    p = yaml.safe_load((tmp_path / "r" / "params.yaml").read_text())
    p["corpora"] = {}  # the RAVDESS pipeline alone, without any external corpus
    (tmp_path / "r" / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    assert "corpus@" not in sh("dvc", "stage", "list", cwd=tmp_path / "r", env=env)


def test_folds_on_two_machines_through_git_and_a_remote(repo, tmp_path, small_archive):
    """Machine A trains one fold, B the other; each commits its trained fold (model, run folder,
    dvc.lock entry) and pushes to git, and the data stages' outputs to a shared DVC remote with
    the run cache. C, a fresh clone, rebuilds the report without training anything. The random
    protocol alone (two folds, no corpus): the same claims for a third of the training. The
    remote starts with what an earlier machine pushed (the shared repository's data stages and
    run cache), so A restores the features as B does instead of computing them again."""
    runs = ["random-0", "random-1"]
    seed = tmp_path / "seed"
    seed.mkdir()
    env = make_repo(seed, small_archive)
    p = yaml.safe_load((seed / "params.yaml").read_text())
    p["folds"]["runs"], p["corpora"] = runs, {}
    (seed / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    remote = tmp_path / "remote"
    earlier, earlier_env, _ = repo
    sh("dvc", "remote", "add", "--local", "shared", str(remote), cwd=earlier, env=earlier_env)
    try:
        sh("dvc", "push", "-q", "--run-cache", "-r", "shared", cwd=earlier, env=earlier_env)
    finally:
        sh("dvc", "remote", "remove", "--local", "shared", cwd=earlier, env=earlier_env)
    sh("dvc", "remote", "add", "-d", "shared", str(remote), cwd=seed, env=env)
    sh("git", "commit", "-qam", "two folds, a remote", cwd=seed, env=env)
    origin = tmp_path / "origin.git"
    sh("git", "clone", "-q", "--bare", str(seed), str(origin), cwd=tmp_path, env=env)
    clones = {}
    for name in ("a", "b", "c"):
        clones[name] = tmp_path / name
        sh("git", "clone", "-q", str(origin), str(clones[name]), cwd=tmp_path, env=env)
    env_for = {n: dict(env, PYTHONPATH=str(c / "src")) for n, c in clones.items()}
    a, b, c = clones["a"], clones["b"], clones["c"]

    def training(runs):
        return [f"train_svm@{f}-{r}" for f in SVM_SETS for r in runs] + \
            [f"train_cnn_lstm@{r}" for r in runs]

    def land(d, e, msg):  # commit the trained fold and share it
        sh("git", "add", "-A", cwd=d, env=e)
        sh("git", "commit", "-qm", msg, cwd=d, env=e)
        sh("git", "pull", "-q", "--rebase", cwd=d, env=e)
        sh("git", "push", "-q", cwd=d, env=e)
        sh("dvc", "push", "--run-cache", cwd=d, env=e)

    def take_up(d, e, *stages):  # the landed folds from git, the data stages from the remote
        sh("git", "pull", "-q", cwd=d, env=e)
        sh("dvc", "fetch", "--run-cache", cwd=d, env=e)
        return sh("dvc", "repro", "--pull", *stages, cwd=d, env=e)
    out_a = take_up(a, env_for["a"], *training(runs[:1]))
    assert "Running stage 'features@logmel'" not in out_a  # the earlier machine's run cache
    assert "Running stage 'train_cnn_lstm@random-0'" in out_a
    land(a, env_for["a"], "fold random-0")
    out_b = take_up(b, env_for["b"], *training(runs))
    assert "Running stage 'features@logmel'" not in out_b  # restored from A's run cache
    assert "Running stage 'train_cnn_lstm@random-0'" not in out_b  # A's fold, from git
    assert "Running stage 'train_cnn_lstm@random-1'" in out_b
    land(b, env_for["b"], "fold random-1")
    out_c = take_up(c, env_for["c"])
    assert "Running stage 'train_" not in out_c and "Running stage 'report'" in out_c
    assert (c / "reports/report.md").exists()
    for r in runs:
        pa = (a if r in runs[:1] else b) / f"runs/cnn_lstm/{r}/predictions.csv"
        assert (c / f"runs/cnn_lstm/{r}/predictions.csv").read_bytes() == pa.read_bytes()
    assert "train_" not in sh("dvc", "status", cwd=c, env=env_for["c"])


# ---------------------------------------------------------------- ser predict, on the models above

def predict(d, env, *args, ok=True):
    r = subprocess.run([sys.executable, "-m", "ser.apps.cli", "predict", *map(str, args)], cwd=d,
                       env=env, capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_predict_gives_the_pipelines_probabilities(repo, tmp_path):
    """No drift: a test clip through `ser predict` with its fold's model gives what the pipeline
    wrote for it, for both models. The generated clips hold 1.1 s of audio after the 0.5 s
    offset, which predict.loop_below_s would loop for the CNN-LSTM; real clips hold 2.44 s or
    more, which it reads as the stage does, so the check runs with looping off."""
    d, env, _ = repo
    fold = pd.read_csv(d / "data/folds/actor-0.csv")
    manifest = pd.read_csv(d / "data/prepared/manifest.csv").set_index("clip_id")
    clips = fold.loc[fold["split"] == "test", "clip_id"].iloc[[0, 17, 40]].tolist()
    files = [d / "data/raw/ravdess" / manifest.loc[c, "path"] for c in clips]
    p = yaml.safe_load((d / "params.yaml").read_text())
    p["predict"]["loop_below_s"] = 0.0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    out = json.loads(predict(d, env, *files, "--protocol", "actor", "--fold", "0", "--json", "-",
                             "--params", tmp_path / "params.yaml", "--model", "all").stdout)
    assert set(out["models"]) == set(FAMILIES)
    assert all(m["runs"] == ["actor-0"] for m in out["models"].values())
    for model in FAMILIES:
        where = "first segment" if model == "cnn_lstm" else "whole"
        table = pd.read_csv(d / f"runs/{model}/actor-0/predictions.csv").set_index("clip_id")
        for clip, got in zip(clips, out["files"]):
            entry = got["whole"][model] if where == "whole" else got["segments"][0][model]
            want = table.loc[clip]
            for c, v in entry["probs"].items():
                assert v == pytest.approx(want[f"prob_{c}"], abs=6e-4), (model, clip, c)
            assert entry["top"] == want["pred"]


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """Generated recordings: good ones of every kind, and broken ones."""
    import numpy as np
    import soundfile as sf
    from conftest import synthetic_clip
    d = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    t = np.arange(int(16000 * 4)) / 16000
    sf.write(d / "tone.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 16000)
    sf.write(d / "noise.flac", 0.1 * rng.standard_normal(48000 * 4), 48000)
    voice = synthetic_clip("03-01-05-02-01-01-02", 44100, 5.0) / 32768
    sf.write(d / "stereo44k.wav", np.stack([voice, 0.5 * voice], 1), 44100)
    long = np.tile(voice, 14)  # 70 s, Ogg Vorbis, written in 1 s blocks: libsndfile's Vorbis
    with sf.SoundFile(d / "long70s.ogg", "w", 44100, 1, format="OGG", subtype="VORBIS") as f:
        for i in range(0, len(long), 44100):  # encoder crashed on one 70 s block here
            f.write(long[i:i + 44100])
    sf.write(d / "voice.mp3", voice, 44100)
    sf.write(d / "short1s.wav", voice[:44100], 44100)
    bad = d / "bad"
    bad.mkdir()
    sf.write(bad / "silence.wav", np.zeros(16000 * 3), 16000)
    (bad / "notes.wav").write_text("not audio, just text renamed .wav\n")
    sf.write(bad / "cut.wav", voice, 44100)
    data = (bad / "cut.wav").read_bytes()
    (bad / "cut.wav").write_bytes(data[: len(data) // 2])
    return d


def test_predict_any_audio(repo, audio, tmp_path):
    d, env, _ = repo
    r = predict(d, env, *sorted(audio.glob("*.*")), "--csv", tmp_path / "out.csv", "--json",
                tmp_path / "out.json", "--plot", tmp_path / "plots")
    doc = json.loads((tmp_path / "out.json").read_text())
    p = yaml.safe_load((d / "params.yaml").read_text())
    assert list(doc["models"]) == p["predict"]["families"]  # the default families
    files = {Path(f["file"]).name: f for f in doc["files"]}
    assert set(files) == {"tone.wav", "noise.flac", "stereo44k.wav", "long70s.ogg", "voice.mp3",
                          "short1s.wav"}
    classes = doc["models"]["cnn_lstm"]["classes"]
    for f in files.values():
        for model in p["predict"]["families"]:
            for entry in [f["whole"][model]] + [s[model] for s in f["segments"]]:
                assert entry["top"] == max(entry["probs"], key=entry["probs"].get)  # top = argmax
                assert sum(entry["probs"].values()) == pytest.approx(1, abs=2e-3)
                assert list(entry["probs"]) == classes
    # 70 s: full 3.07 s windows every 3 s from 0.5 s, the last one ending with the recording
    long = files["long70s.ogg"]
    assert long["duration_s"] == pytest.approx(70.0, abs=0.01)
    starts = [s["start_s"] for s in long["segments"]]
    assert starts[:3] == [0.5, 3.5, 6.5] and len(starts) == 24
    assert long["segments"][-1]["end_s"] == pytest.approx(70.0, abs=0.01)
    assert not any(s["short"] for s in long["segments"])
    assert files["short1s.wav"]["segments"][0]["short"] and files["short1s.wav"]["warnings"]
    table = pd.read_csv(tmp_path / "out.csv")
    assert list(table.columns[:9]) == ["file", "model", "segment", "start_s", "end_s", "short",
                                       "silent", "top", "prob"]
    assert len(table) == 3 * sum(1 + len(f["segments"]) for f in files.values())
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(
        Path(n).stem + ".png" for n in files)
    assert "whole recording, CNN-LSTM" in r.stdout


def test_predict_bad_files_fail_alone(repo, audio):
    d, env, _ = repo
    r = predict(d, env, audio / "bad", audio / "tone.wav", ok=False)
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3 and "Traceback" not in r.stderr
    assert any("silence.wav: silent" in e for e in errors)
    assert any("notes.wav: cannot decode audio" in e for e in errors)
    assert any("cut.wav: truncated" in e for e in errors)
    assert "tone.wav" in r.stdout  # the good file is still done


def test_predict_without_models_or_with_other_features(repo, audio, tmp_path):
    d, env, _ = repo
    r = predict(d, env, audio / "tone.wav", "--models", tmp_path / "none", ok=False)
    first = registry.get(yaml.safe_load((d / "params.yaml").read_text())["predict"]["families"][0])
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        f"error: no trained {first.name} models ({first.label}) for protocol actor or random or "
        f"holdout in {tmp_path / 'none' / first.name}: run `dvc repro` (its {first.stage}@<...> stages "
        "write them)"]
    p = yaml.safe_load((d / "params.yaml").read_text())
    p["features_logmel"]["n_mels"] = 64
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    r = predict(d, env, audio / "tone.wav", "--model", "cnn_lstm", "--params", tmp_path / "params.yaml",
                ok=False)
    assert r.returncode == 1
    assert "trained on features_logmel.n_mels = 128, but params.yaml now says 64" in r.stderr
