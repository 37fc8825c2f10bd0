import numpy as np
import pytest
import soundfile as sf

from conftest import SECONDS
from ser.errors import SerError
from ser.stages.prepare import scan


@pytest.fixture(scope="module")
def scanned(small_corpus):
    return scan(small_corpus, "seven", n_jobs=1)


def test_manifest_columns_and_protocol(scanned):
    assert len(scanned) == 4 * 56  # 60 clips per actor less the 4 original neutral ones
    assert {"clip_id", "path", "actor", "gender", "emotion", "intensity", "statement", "repetition",
            "duration", "sample_rate", "label"} <= set(scanned.columns)
    assert "split" not in scanned.columns  # the folds stage's business
    assert "neutral" not in set(scanned["emotion"])
    assert (scanned.loc[scanned["emotion"] == "calm", "label"] == "neutral").all()
    assert (scanned["sample_rate"] == 48000).all() and (scanned["duration"] == SECONDS).all()
    assert scanned["clip_id"].is_monotonic_increasing


def test_real_corpus_manifest(real_small_corpus):
    m = scan(real_small_corpus, "seven", n_jobs=1)
    assert len(m) == 224 and (m["sample_rate"] == 48000).all()
    assert m["duration"].between(2.5, 6).all()


def test_eight_classes_keep_every_clip(small_corpus):
    assert len(scan(small_corpus, "eight", n_jobs=1)) == 240


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


def test_wav_and_flac_archives_give_the_same_clips(tmp_path, small_wav_archive, small_corpus):
    """The original archive holds WAVs, the mirror FLACs: both decode to the same samples."""
    from ser.stages.download import extract
    extract(small_wav_archive, tmp_path / "wav", [1, 2, 3, 4])
    a, b = scan(tmp_path / "wav", "seven", n_jobs=1), scan(small_corpus, "seven", n_jobs=1)
    assert a["path"].str.endswith(".wav").all() and b["path"].str.endswith(".flac").all()
    assert a["clip_id"].tolist() == b["clip_id"].tolist()
    assert (a["duration"] == b["duration"]).all()
    stem = "Actor_01/03-01-05-01-01-01-01"
    ya, _ = sf.read(tmp_path / "wav" / f"{stem}.wav")
    yb, _ = sf.read(small_corpus / f"{stem}.flac")
    assert np.array_equal(ya, yb)


def test_truncated_wav_is_named(corpus_copy):
    """A cut WAV decodes what is left without error; its header still says how much there was."""
    src = corpus_copy / "Actor_04" / "03-01-06-01-02-02-04.flac"
    y, sr = sf.read(src, dtype="int16")
    wav = src.with_suffix(".wav")
    sf.write(wav, y, sr, subtype="PCM_16")
    src.unlink()
    wav.write_bytes(wav.read_bytes()[: wav.stat().st_size * 2 // 3])
    with pytest.raises(SerError, match=r"03-01-06-01-02-02-04\.wav: truncated \(\d+ of the \d+ bytes"):
        scan(corpus_copy, "seven", n_jobs=1)
