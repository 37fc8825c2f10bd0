"""The training stage's guarantees: resume only what matches, one trainer per run, same bytes,
no code run from a checkpoint."""

import logging
import os

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import section
from ser.stages import train_cnn_lstm as train
from ser import modelfile, modelread
from ser.errors import SerError
from ser.store import logmel_index

RUNTIME = section("runtime", n_jobs=1)


@pytest.fixture
def stage_inputs(tmp_path):
    """A tiny feature folder and fold table in the stages' own formats."""
    rng = np.random.default_rng(0)
    ids = [f"c{i:02d}" for i in range(24)]
    labels = ["sad", "happy", "angry"] * 8
    index = logmel_index(ids, 1)
    x = np.stack([rng.normal(size=(5, 128, 128)) * 5 - 40 + 3 * (i // 2 % 3)
                  for i in range(len(index))]).astype(np.float16)
    feats = tmp_path / "logmel"
    feats.mkdir()
    np.save(feats / "logmel.npy", x)
    index.to_csv(feats / "index.csv", index=False)
    (feats / "params.json").write_text('{"sample_rate": 16000, "n_mels": 128, "win_size": 128}\n')
    fold = pd.DataFrame({"clip_id": ids, "actor": np.arange(24) % 4 + 1, "label": labels,
                         "split": ["train"] * 16 + ["val"] * 4 + ["test"] * 4})
    fold.to_csv(tmp_path / "fold.csv", index=False)
    return feats, tmp_path / "fold.csv"


def tiny(**kw):
    return section("train_cnn_lstm", **{**dict(filters=[4, 4, 8, 8], lstm_units=16, batch_size=8,
                                               epochs=2, bn_recalibration_batches=1, seed=3), **kw})


def write_params(tmp_path, **kw):
    import yaml
    from conftest import ROOT
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["train_cnn_lstm"].update(filters=[4, 4, 8, 8], lstm_units=16, batch_size=8, epochs=2,
                                  bn_recalibration_batches=1, seed=3, **kw)
    data["runtime"].update(reuse_memory=False)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_stage(tmp_path, stage_inputs, name="m"):
    feats, fold = stage_inputs
    return train.run(write_params(tmp_path), "random-1", fold, feats, tmp_path / f"{name}.model",
                     tmp_path / f"out_{name}", tmp_path / "ck" / f"{name}.ckpt")


def test_fingerprint_covers_content_fold_and_code(tmp_path, stage_inputs, monkeypatch):
    feats, fold = stage_inputs
    p, classes = tiny(), ["happy", "sad", "angry"]
    base = train.fingerprint(p, classes, feats, fold)
    assert train.fingerprint(p, classes, feats, fold) == base
    assert train.fingerprint(tiny(lr=0.02), classes, feats, fold) != base
    assert train.fingerprint(p, ["sad", "happy", "angry"], feats, fold) != base  # label order
    x = np.load(feats / "logmel.npy")
    x[0, 0, 0, 0] += 1  # same size, other content: what a changed features seed does
    np.save(feats / "logmel.npy", x)
    changed = train.fingerprint(p, classes, feats, fold)
    assert changed != base
    t = pd.read_csv(fold)
    t.loc[[0, 20], "split"] = t.loc[[20, 0], "split"].to_numpy()
    t.to_csv(fold, index=False)
    assert train.fingerprint(p, classes, feats, fold) != changed
    again = train.fingerprint(p, classes, feats, fold)
    monkeypatch.setattr(train, "code_version", lambda: "training code other")
    assert train.fingerprint(p, classes, feats, fold) != again


def test_other_inputs_start_fresh_and_say_so(tmp_path, stage_inputs, caplog):
    feats, fold = stage_inputs
    x, index = train.load_logmel(feats)
    index = train.fold_index(index, train.read_fold(fold))
    ck = tmp_path / "a.ckpt"
    classes = ["happy", "sad", "angry"]
    net = train.network_args(tiny(), {"n_mels": 128, "win_size": 128})
    train.fit(tiny(epochs=1), x, index, classes, net, checkpoint=ck, fp="old", rt=RUNTIME)
    with caplog.at_level(logging.INFO, logger="train_cnn_lstm"):
        _, st, _ = train.fit(tiny(epochs=2), x, index, classes, net, checkpoint=ck, fp="new", rt=RUNTIME)
    assert st["epoch"] == 2 and len(torch.load(ck, weights_only=True)["state"]["history"]) == 2
    assert "starting fresh" in caplog.text and "written from other params" in caplog.text


def test_a_planted_checkpoint_runs_no_code(tmp_path, stage_inputs, caplog):
    """A checkpoint whose pickle would call os.system (as one arriving from a shared remote could)
    is refused by weights_only loading and set aside: training starts fresh, the code never runs."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    ck = tmp_path / "ck" / "m.ckpt"
    ck.parent.mkdir()
    torch.save({"fingerprint": Evil(), "state": {}}, ck)
    with caplog.at_level(logging.WARNING, logger="train_cnn_lstm"):
        m = run_stage(tmp_path, stage_inputs)
    assert m["epochs_run"] == 2 and not marker.exists()
    assert (tmp_path / "ck" / "m.ckpt.bad").exists()
    assert "holds objects other than tensors and plain values" in caplog.text


def test_unreadable_checkpoint_is_set_aside(tmp_path, stage_inputs, caplog):
    feats, fold = stage_inputs
    ck = tmp_path / "ck" / "m.ckpt"
    ck.parent.mkdir()
    ck.write_bytes(b"PK\x03\x04 garbage, not a torch archive")
    with caplog.at_level(logging.WARNING, logger="train_cnn_lstm"):
        m = run_stage(tmp_path, stage_inputs)
    assert m["epochs_run"] == 2
    assert (tmp_path / "ck" / "m.ckpt.bad").read_bytes().startswith(b"PK\x03\x04 garbage")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "unreadable checkpoint" in lines[0] and "\n" not in lines[0]


def test_same_inputs_same_model_bytes(tmp_path, stage_inputs):
    a = run_stage(tmp_path, stage_inputs, "a")
    b = run_stage(tmp_path, stage_inputs, "b")
    assert (tmp_path / "a.model").read_bytes() == (tmp_path / "b.model").read_bytes()
    assert a["test"] == b["test"]
    meta, _ = modelread.read(tmp_path / "a.model", modelfile.WEIGHTS, family="cnn_lstm")
    assert meta["run"] == "random-1" and meta["protocol"] == "random" and meta["fold"] == 1
    assert meta["classes"] == ["happy", "sad", "angry"]
    assert meta["features"] == {"family": "logmel", "params": {"sample_rate": 16000, "n_mels": 128,
                                                               "win_size": 128}}
    assert meta["code"].startswith("training code ") and meta["network"]["filters"] == [4, 4, 8, 8]


def test_a_finished_checkpoint_gives_the_same_outputs_without_training(tmp_path, stage_inputs, caplog):
    """The checkpoint stays when a run ends: a rerun (e.g. after `dvc repro` was killed while its
    trainer finished) trains no epoch and writes the same model and predictions."""
    run_stage(tmp_path, stage_inputs, "a")
    first = (tmp_path / "a.model").read_bytes()
    pred = (tmp_path / "out_a" / "predictions.csv").read_bytes()
    assert (tmp_path / "ck" / "a.ckpt").exists()
    with caplog.at_level(logging.INFO, logger="train_cnn_lstm"):
        run_stage(tmp_path, stage_inputs, "a")
    assert "resuming from" in caplog.text and "after epoch 2" in caplog.text
    assert "epoch 1:" not in caplog.text  # no epoch trained again
    assert (tmp_path / "a.model").read_bytes() == first
    assert (tmp_path / "out_a" / "predictions.csv").read_bytes() == pred
    assert (tmp_path / "out_a" / "live" / "plots" / "metrics" / "val" / "acc.tsv").exists()


def test_a_second_trainer_on_the_same_run_stops(tmp_path, stage_inputs):
    ck = tmp_path / "ck" / "m.ckpt"
    with train.exclusive(ck):
        with pytest.raises(SerError, match=r"m\.ckpt: another trainer is running this run"):
            run_stage(tmp_path, stage_inputs)
    assert run_stage(tmp_path, stage_inputs)["epochs_run"] == 2  # the lock goes with its holder


def test_runtime_settings_are_not_in_the_model_file(tmp_path, stage_inputs):
    """params.yaml's runtime section is declared by no stage, and the model file does not record
    it: other jobs and memory settings, and the default thread count spelled out, give the same
    bytes. (Another thread count, device or compile changes the last bits of the weights as
    another host does; the run folder's metrics say which were used.)"""
    import yaml
    a = run_stage(tmp_path, stage_inputs, "a")
    path = write_params(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["runtime"].update(threads=torch.get_num_threads(), n_jobs=1, reuse_memory=True)
    path.write_text(yaml.safe_dump(data))
    feats, fold = stage_inputs
    b = train.run(path, "random-1", fold, feats, tmp_path / "b.model", tmp_path / "out_b",
                  tmp_path / "ck" / "b.ckpt")
    assert (tmp_path / "a.model").read_bytes() == (tmp_path / "b.model").read_bytes()
    assert a["test"] == b["test"] and b["threads"] == torch.get_num_threads()
    meta, _ = modelread.read(tmp_path / "a.model")
    assert not set(meta["training"]) & set(section("runtime").model_dump())
