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
    assert p.prepare.test_size == 0.05 and p.train_cnn_lstm.batch_size == 64
    assert p.download.actor_ids() == list(range(1, 25))
    assert p.train_cnn_lstm.decay == 1e-6


@pytest.mark.parametrize("section,key,value,expect", [
    ("prepare", "test_size", 1.5, "prepare.test_size: Input should be less than 1, got 1.5"),
    ("prepare", "split", "speaker", "prepare.split: Input should be 'random' or 'actor'"),
    ("prepare", "seed", "42", "prepare.seed: Input should be a valid integer, got '42'"),
    ("train_cnn_lstm", "batch_size", 0, "train_cnn_lstm.batch_size: Input should be greater than or equal to 1"),
    ("train_cnn_lstm", "decay", "1e-6", "train_cnn_lstm.decay: Input should be a valid number"),
    ("train_svm", "C", [], "train_svm.C: List should have at least 1 item"),
    ("train_svm", "gamma", [0.01, -1], "train_svm.gamma.1: Input should be greater than 0"),
    ("download", "md5", "xyz", "download.md5: String should match pattern"),
    ("download", "actors", [1, 25], "download.actors"),
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
    ("prepare", {"test_size": 0.5, "val_size": 0.5}, "test_size + val_size must be below 1"),
    ("prepare", {"test_fold": 1, "val_fold": 1}, "test_fold and val_fold must differ"),
    ("features_logmel", {"snr_db_min": 30}, "snr_db_min must not exceed snr_db_max"),
    ("features_logmel", {"win_size": 1000}, "win_size must not exceed the 384 frames"),
    ("train_cnn_lstm", {"pools": [2, 4]}, "filters and pools must have the same length"),
    ("download", {"actors": [3, 3]}, "actors must be 'all' or a non-empty list of distinct actor numbers"),
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
    data["prepare"]["test_size"] = 1.5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    r = subprocess.run([sys.executable, "-m", "ser.prepare", "--params", str(tmp_path / "params.yaml"),
                        "--corpus", str(tmp_path), "--out", str(tmp_path / "m.csv")],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'params.yaml'}: prepare.test_size: Input should be less than 1, got 1.5"]
