import numpy as np
import pytest
import soundfile as sf

from ser.errors import SerError
from ser.params import Prepare
from ser.prepare import actor_folds, make_manifest, scan


@pytest.fixture(scope="module")
def scanned(small_corpus):
    return scan(small_corpus, "seven", n_jobs=1)


def test_manifest_columns_and_protocol(scanned):
    assert len(scanned) == 4 * 56  # 60 clips per actor less the 4 original neutral ones
    assert {"clip_id", "path", "actor", "gender", "emotion", "intensity", "statement", "repetition",
            "duration", "sample_rate", "label"} <= set(scanned.columns)
    assert "neutral" not in set(scanned["emotion"])
    assert (scanned.loc[scanned["emotion"] == "calm", "label"] == "neutral").all()
    assert (scanned["sample_rate"] == 48000).all() and scanned["duration"].between(2.5, 6).all()
    assert scanned["clip_id"].is_monotonic_increasing


def test_eight_classes_keep_every_clip(small_corpus):
    assert len(scan(small_corpus, "eight", n_jobs=1)) == 240


def test_random_split_stratified_and_deterministic(small_corpus):
    p = Prepare()
    a, b = make_manifest(small_corpus, p), make_manifest(small_corpus, p)
    assert (a["split"] == b["split"]).all()
    counts = a["split"].value_counts()
    assert counts["test"] == pytest.approx(0.05 * len(a), abs=1)
    assert counts["val"] == pytest.approx(0.15 * len(a), abs=1)
    for split in ("train", "val", "test"):  # every class in every part, in proportion
        share = a.loc[a["split"] == split, "label"].value_counts(normalize=True)
        assert len(share) == 7 and share.max() - share.min() < 0.12
    c = make_manifest(small_corpus, Prepare(seed=7))
    assert not (a["split"] == c["split"]).all()


def test_actor_split_keeps_speakers_apart(small_corpus):
    p = Prepare(split="actor", actor_fold_size=2, test_fold=0, val_fold=1)
    m = make_manifest(small_corpus, p)
    actors = {s: set(m.loc[m["split"] == s, "actor"]) for s in ("train", "val", "test")}
    assert actors == {"test": {1, 2}, "val": {3, 4}, "train": set()} or \
        actors["test"].isdisjoint(actors["train"])
    assert actors["test"].isdisjoint(actors["val"])
    with pytest.raises(SerError, match=r"prepare.test_fold must be below 2"):
        make_manifest(small_corpus, Prepare(split="actor", actor_fold_size=2, test_fold=2))


def test_actor_folds_gender_balanced():
    folds = actor_folds(list(range(1, 25)), 4)
    assert len(folds) == 6
    for f in folds:
        assert sum(a % 2 for a in f) == 2  # two men (odd), two women (even)
    assert sorted(sum(folds, [])) == list(range(1, 25))


def test_corrupt_file_is_named(corpus_copy):
    victim = corpus_copy / "Actor_02" / "03-01-03-01-01-01-02.flac"
    victim.write_bytes(b"fLaC" + bytes(200))
    with pytest.raises(SerError, match=r"03-01-03-01-01-01-02\.flac: cannot decode audio"):
        scan(corpus_copy, "seven", n_jobs=1)


def test_truncated_file_is_named(corpus_copy):
    victim = corpus_copy / "Actor_01" / "03-01-04-02-02-01-01.flac"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(SerError, match=r"03-01-04-02-02-01-01\.flac: (truncated|cannot decode)"):
        scan(corpus_copy, "seven", n_jobs=1)


def test_wav_and_flac_both_read(tmp_path, small_corpus):
    """The original archive holds WAVs, the mirror FLACs: both decode to the same samples."""
    src = small_corpus / "Actor_01" / "03-01-05-01-01-01-01.flac"
    y, sr = sf.read(src)
    (tmp_path / "Actor_01").mkdir()
    sf.write(tmp_path / "Actor_01" / "03-01-05-01-01-01-01.wav", y, sr, subtype="PCM_16")
    m = scan(tmp_path, "seven", n_jobs=1)
    assert m["path"].tolist() == ["Actor_01/03-01-05-01-01-01-01.wav"]
    assert m["duration"].iloc[0] == pytest.approx(len(y) / sr, abs=1e-4)
