import numpy as np
import pandas as pd
import pytest

from ser.errors import SerError
from ser.stages.folds import actor_folds, make_folds
from ser.params import Folds
from ser.store import read_fold

BASE = dict(seed=42, test_size=0.05, val_size=0.15, actor_fold_size=4)


def manifest(actors=range(1, 25), per_class=8, classes=7) -> pd.DataFrame:
    """A manifest-shaped table: every actor has per_class clips of each class."""
    rows = [{"clip_id": f"{a:02d}-{c}-{i}", "path": f"Actor_{a:02d}/x.wav", "actor": a,
             "label": f"class{c}"} for a in actors for c in range(classes) for i in range(per_class)]
    return pd.DataFrame(rows)


def folds(**kw) -> Folds:
    return Folds(**{**BASE, **kw})


def test_random_folds_test_every_clip_exactly_once():
    m = manifest()
    runs = [f"random-{k}" for k in range(5)]
    t = make_folds(m, folds(runs=runs))
    tested = pd.concat([t[r].loc[t[r]["split"] == "test", "clip_id"] for r in runs])
    assert sorted(tested) == sorted(m["clip_id"])  # every clip once
    for r in runs:
        parts = {s: set(t[r].loc[t[r]["split"] == s, "clip_id"]) for s in ("train", "val", "test")}
        assert not (parts["train"] & parts["val"] or parts["train"] & parts["test"]
                    or parts["val"] & parts["test"])
        assert sum(map(len, parts.values())) == len(m)
        # the reference's train : validation ratio, 80 : 15, among the non-test clips
        assert len(parts["val"]) / (len(parts["val"]) + len(parts["train"])) == pytest.approx(15 / 95, abs=0.01)
        for s in ("train", "val", "test"):  # stratified: every class in proportion
            share = t[r].loc[t[r]["split"] == s, "label"].value_counts(normalize=True)
            assert len(share) == 7 and share.max() - share.min() < 0.03


def test_folds_are_deterministic_and_seeded():
    m = manifest()
    runs = ["random-0", "random-1", "random-2"]
    a, b = make_folds(m, folds(runs=runs)), make_folds(m, folds(runs=runs))
    assert all(a[r].equals(b[r]) for r in runs)
    c = make_folds(m, folds(runs=runs, seed=7))
    assert not a["random-0"]["split"].equals(c["random-0"]["split"])


def test_actor_folds_never_share_a_speaker():
    m = manifest()
    runs = [f"actor-{k}" for k in range(6)]
    t = make_folds(m, folds(runs=runs))
    tested = []
    for k, r in enumerate(runs):
        actors = {s: set(t[r].loc[t[r]["split"] == s, "actor"]) for s in ("train", "val", "test")}
        assert actors["test"] == set(range(4 * k + 1, 4 * k + 5))
        assert actors["val"] == set(range(4 * ((k + 1) % 6) + 1, 4 * ((k + 1) % 6) + 5))
        assert len(actors["train"]) == 16
        assert not (actors["train"] & actors["test"] or actors["train"] & actors["val"]
                    or actors["val"] & actors["test"])
        tested += list(t[r].loc[t[r]["split"] == "test", "clip_id"])
    assert sorted(tested) == sorted(m["clip_id"])


def test_actor_folds_gender_balanced():
    fs = actor_folds(list(range(1, 25)), 4)
    assert len(fs) == 6
    for f in fs:
        assert sum(a % 2 for a in f) == 2  # two men (odd), two women (even)
    assert sorted(sum(fs, [])) == list(range(1, 25))


def test_holdout_is_the_reference_split():
    m = manifest()
    t = make_folds(m, folds(runs=["holdout-0"]))["holdout-0"]
    counts = t["split"].value_counts()
    assert counts["test"] == pytest.approx(0.05 * len(m), abs=1)
    assert counts["val"] == pytest.approx(0.15 * len(m), abs=1)


def test_too_few_actors_for_the_actor_protocol():
    with pytest.raises(SerError, match="8 actors in folds of 4 make 2 folds; the actor protocol needs 3"):
        make_folds(manifest(actors=range(1, 9)), folds(runs=["actor-0", "actor-1"]))


def test_fold_tables_are_checked_where_read(tmp_path):
    t = make_folds(manifest(), folds(runs=["random-0", "random-1"]))["random-0"]
    good = tmp_path / "good.csv"
    t.to_csv(good, index=False)
    assert read_fold(good).equals(t)
    bad = tmp_path / "bad.csv"
    pd.concat([t, t.iloc[:1]]).to_csv(bad, index=False)
    with pytest.raises(SerError, match=r"bad\.csv: clip .* twice"):
        read_fold(bad)
    t.assign(split=np.where(t["split"] == "val", "valid", t["split"])).to_csv(bad, index=False)
    with pytest.raises(SerError, match="unknown split 'valid'"):
        read_fold(bad)
    bad.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(SerError, match=r"bad\.csv: not a folds table"):
        read_fold(bad)
    with pytest.raises(SerError, match=r"missing\.csv: not found \(run the folds stage first\)"):
        read_fold(tmp_path / "missing.csv")
