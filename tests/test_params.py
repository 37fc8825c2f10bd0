from pathlib import Path

import re

import pytest
import yaml

from ser.params import ParamsError, load_params, parse_params

ROOT = Path(__file__).resolve().parents[1]


def good() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_repository_params_load():
    p = load_params(ROOT / "params.yaml")
    assert p.folds.test_size == 0.05 and p.train_cnn_lstm.batch_size == 64
    assert p.folds.protocols() == ["random", "actor"]
    assert p.folds.folds_of("random") == list(range(5)) and p.folds.folds_of("actor") == list(range(6))
    assert p.download.actor_ids() == list(range(1, 25))
    assert p.train_cnn_lstm.decay == 1e-6


@pytest.mark.parametrize("section,key,value,expect", [
    ("folds", "test_size", 1.5, "folds.test_size: Input should be less than 1, got 1.5"),
    ("prepare", "classes", "nine", "prepare.classes: Input should be 'seven' or 'eight'"),
    ("folds", "seed", "42", "folds.seed: Input should be a valid integer, got '42'"),
    ("folds", "runs", ["random-0", "fold-1"], "folds.runs.1: String should match pattern"),
    ("train_cnn_lstm", "epochs", 0, "train_cnn_lstm.epochs: Input should be greater than or equal to 1, got 0"),
    ("train_cnn_lstm", "batch_size", 0, "train_cnn_lstm.batch_size: Input should be greater than or equal to 1"),
    ("train_cnn_lstm", "decay", "1e-6", "train_cnn_lstm.decay: Input should be a valid number"),
    ("train_svm", "C", [], "train_svm.C: List should have at least 1 item"),
    ("train_svm", "gamma", [0.01, -1], "train_svm.gamma.1: Input should be greater than 0"),
    ("download", "md5", "xyz", "download.md5: String should match pattern"),
    ("download", "url", "ftp://x", "download.url: String should match pattern"),
    ("download", "actors", [1, 25], "download.actors: must be 'all' or a list of distinct actor "
                                    "numbers (actors run 1-24), got [1, 25]"),
    ("download", "actors", 99, "download.actors: must be 'all' or a list of distinct actor "
                               "numbers (actors run 1-24), got 99"),
    ("features_logmel", "window", 3, "features_logmel.window: Input should be a valid string"),
])
def test_bad_value_names_key(section, key, value, expect):
    data = good()
    data[section][key] = value
    with pytest.raises(ParamsError) as err:
        parse_params(data)
    msg = str(err.value)
    assert msg.startswith("params.yaml: ") and expect in msg
    assert "\n" not in msg


def test_unknown_key_rejected():
    data = good()
    data["train_svm"]["kernal"] = "rbf"
    with pytest.raises(ParamsError, match=r"train_svm\.kernal: Extra inputs are not permitted"):
        parse_params(data)


def test_unknown_section_rejected():
    data = good()
    data["trian"] = {}
    with pytest.raises(ParamsError, match="trian: Extra inputs"):
        parse_params(data)


def test_missing_required_section():
    data = good()
    del data["download"]
    with pytest.raises(ParamsError, match="download: Field required"):
        parse_params(data)


@pytest.mark.parametrize("section,changes,expect", [
    ("folds", {"test_size": 0.5, "val_size": 0.5}, "test_size + val_size must be below 1"),
    ("folds", {"runs": ["random-0", "random-0", "random-1"]}, "runs must not repeat a run"),
    ("features_logmel", {"snr_db_min": 30}, "snr_db_min must not exceed snr_db_max"),
    ("features_logmel", {"win_size": 1000}, "win_size must not exceed the 384 frames"),
    ("train_cnn_lstm", {"pools": [2, 4]}, "filters and pools must have the same length"),
])
def test_cross_field_checks(section, changes, expect):
    data = good()
    data[section].update(changes)
    with pytest.raises(ParamsError, match=re.escape(f"params.yaml: {section}: {expect}")):
        parse_params(data)


def test_file_errors(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("prepare: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ParamsError, match="expected a mapping"):
        load_params(bad)


def test_stage_prints_one_line(tmp_path):
    """A stage started with a bad value stops with one line naming the key, no traceback."""
    import subprocess
    import sys
    data = good()
    data["folds"]["test_size"] = 1.5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    r = subprocess.run([sys.executable, "-m", "ser.stages.prepare", "--params", str(tmp_path / "params.yaml"),
                        "--corpus", str(tmp_path), "--out", str(tmp_path / "m.csv")],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'params.yaml'}: folds.test_size: Input should be less than 1, got 1.5"]


@pytest.mark.parametrize("changes,expect", [
    ({"folds": {"runs": ["random-0"]}},
     "folds.runs: the random protocol needs at least random-0 and random-1"),
    ({"folds": {"runs": ["random-0", "random-2"]}},
     "folds.runs: list the random protocol whole: random-0, random-1"),
    ({"folds": {"runs": ["actor-0", "actor-1"]}},
     "folds.runs: list the actor protocol whole: actor-0, actor-1, actor-2, actor-3, actor-4, actor-5"),
    ({"folds": {"runs": ["holdout-1"]}}, "folds.runs: list the holdout protocol whole: holdout-0"),
    ({"download": {"actors": [1, 2, 3, 4]}},
     "folds.runs: the actor protocol needs at least 3 folds (test, validation, training) but "
     "4 actors in folds of 4 make 1"),
])
def test_runs_must_list_whole_protocols(changes, expect):
    data = good()
    for section, values in changes.items():
        data[section].update(values)
    with pytest.raises(ParamsError) as err:
        parse_params(data)
    assert str(err.value) == f"params.yaml: {expect}"


def test_actor_folds_follow_the_actors():
    data = good()
    data["download"]["actors"] = [1, 2, 3, 4]
    data["folds"].update(actor_fold_size=1, runs=[f"actor-{k}" for k in range(4)])
    assert parse_params(data).folds.folds_of("actor") == [0, 1, 2, 3]


def test_a_missing_key_is_named_not_defaulted():
    data = good()
    del data["train_cnn_lstm"]["epochs"]
    with pytest.raises(ParamsError, match=r"^params.yaml: train_cnn_lstm.epochs: Field required$"):
        parse_params(data)


def test_exponents_without_a_dot_are_numbers(tmp_path):
    text = (ROOT / "params.yaml").read_text()
    text = text.replace("  lr: 0.01\n", "  lr: 1e-2\n").replace("decay: 1.0e-06", "decay: 1e-6")
    assert "lr: 1e-2" in text and "decay: 1e-6" in text
    (tmp_path / "params.yaml").write_text(text)
    p = load_params(tmp_path / "params.yaml").train_cnn_lstm
    assert p.lr == 0.01 and p.decay == 1e-6


def test_the_params_stage_validates_and_writes_the_same_file(tmp_path):
    import subprocess
    import sys
    out = tmp_path / "ok"
    r = subprocess.run([sys.executable, "-m", "ser.stages.params", "--params", str(ROOT / "params.yaml"),
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and out.read_text() == "params.yaml is valid\n"
    data = good()
    data["train_cnn_lstm"]["epochs"] = 0
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
    r = subprocess.run([sys.executable, "-m", "ser.stages.params", "--params", str(tmp_path / "bad.yaml"),
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 1 and "train_cnn_lstm.epochs" in r.stderr


def test_compare_is_checked_against_the_registry(tmp_path):
    from ser.stages.params import check_families
    data = good()
    data["report"]["compare"] = [["cnn_lstm", "svm_stats"], ["cnn_lstm", "wav2vec"]]
    with pytest.raises(ParamsError, match="report.compare: no model family 'wav2vec'"):
        check_families(parse_params(data), "params.yaml")
    data["report"]["compare"] = [["svm_egemaps", "svm_stats"]]
    with pytest.raises(ParamsError, match="the first pair is the headline"):
        check_families(parse_params(data), "params.yaml")
    data["report"]["compare"] = [["cnn_lstm", "cnn_lstm"]]
    with pytest.raises(ParamsError, match="two different families"):
        parse_params(data)


def test_predict_families_are_checked_against_the_registry():
    from ser.stages.params import check_families
    data = good()
    data["predict"]["families"] = ["cnn_lstm", "svm_wav2vec"]
    with pytest.raises(ParamsError, match="predict.families: no model family 'svm_wav2vec'"):
        check_families(parse_params(data), "params.yaml")


def test_a_conditioned_section_merges_its_published_one(tmp_path):
    """`<<: *anchor` merges a section (DVC reads it so too); a key that overrides a merged one is
    not a duplicate, a key given twice still is."""
    text = (ROOT / "params.yaml").read_text()
    assert "features_stats_conditioned:\n  <<: *stats\n" in text
    p = load_params(ROOT / "params.yaml")
    assert p.features_stats_conditioned.frame_s == p.features_stats.frame_s
    (tmp_path / "params.yaml").write_text(text.replace(
        "features_stats_conditioned:\n  <<: *stats\n",
        "features_stats_conditioned:\n  <<: *stats\n  n_mels: 40\n  n_mels: 41\n"))
    with pytest.raises(ParamsError, match="key 'n_mels' appears twice"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize("key", ["predict.reliable_min_s", "serve.max_upload_mb", "serve.max_seconds",
                                 "features_logmel.offset_s", "train_cnn_lstm.lr", "train_cnn_lstm.bn_eps",
                                 "train_cnn_lstm.decay", "download.timeout_s", "download.stall_limit_s",
                                 "features_stats_conditioned.level_dbfs", "folds.test_size"])
@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_no_float_param_takes_an_infinity_or_nan(tmp_path, key, value):
    """Each once passed validation and then failed late (a traceback, an HTTP 500 on every
    upload, a model of NaN weights written with exit 0): now one line naming the key."""
    section, name = key.split(".")
    text = (ROOT / "params.yaml").read_text()
    head = text.index(f"\n{section}:")
    at = text.index(f"\n  {name}:", head) + len(f"\n  {name}:")
    end = text.index("\n", at)
    (tmp_path / "params.yaml").write_text(text[:at] + f" {value}  # was{text[at:end].split('#')[0]}" + text[end:])
    with pytest.raises(ParamsError, match=rf"params.yaml: {key}: Input should be a finite number"):
        load_params(tmp_path / "params.yaml")
