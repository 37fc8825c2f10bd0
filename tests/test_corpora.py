"""External corpora as data: naming schemes (TESS's and CREMA-D's) and mappings from params,
every fault one line (a missing archive, a name off the pattern, a mapping to an unknown class),
on generated corpora; and the real TESS copy when it is there."""

import hashlib
import os
from pathlib import Path

import pytest
import soundfile as sf
import yaml

from conftest import ROOT, make_tess_archive
from ser import corpora
from ser.errors import SerError
from ser.params import ParamsError, load_params, parse_params

TESS_ZIP = ROOT.parent / "shared" / "data" / "tess-flac-160words.zip"
CREMA_D = {  # CREMA-D's naming, 1001_DFA_ANG_XX: actor, sentence, emotion, level
    "about": "CREMA-D (Cao et al., 2014): 91 actors, 6 emotions; ODbL.", "url": None,
    "archive_env": "CREMA_ARCHIVE", "sha256": None,
    "pattern": r"(?P<speaker>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2}|X)",
    "example": "1001_DFA_ANG_XX",
    "emotions": {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy",
                 "NEU": "neutral", "SAD": "sad"}}


def params_with(**corpora_entries):
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["corpora"].update(corpora_entries)
    return parse_params(data)


def test_tess_names_give_speaker_and_emotion_and_the_mapping_gives_classes():
    c = load_params(ROOT / "params.yaml").corpora["tess"]
    df = corpora.table(["TESS/OAF_Fear/OAF_bar_fear.flac", "TESS/YAF_pleasant_surprised/YAF_dog_ps.flac",
                        "TESS/OAF_neutral/OA_bite_neutral.flac"], "tess", c)
    assert df.set_index("clip_id")[["speaker", "emotion", "label"]].to_dict("index") == {
        "OAF_bar_fear": {"speaker": "OA", "emotion": "fear", "label": "fearful"},
        "YAF_dog_ps": {"speaker": "YA", "emotion": "ps", "label": "surprised"},
        "OA_bite_neutral": {"speaker": "OA", "emotion": "neutral", "label": "neutral"}}  # the typo


def test_a_crema_d_scheme_is_a_params_entry_and_no_code():
    p = params_with(crema=CREMA_D)
    c = p.corpora["crema"]
    df = corpora.table(["AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1091_TSI_NEU_X.wav",
                        "AudioWAV/1002_IEO_HAP_HI.wav"], "crema", c)
    assert df["speaker"].tolist() == ["1001", "1002", "1091"]
    assert df["label"].tolist() == ["angry", "happy", "neutral"]
    dropped = dict(CREMA_D, emotions={**CREMA_D["emotions"], "NEU": None})
    df = corpora.table(["a/1001_DFA_NEU_XX.wav"], "crema", params_with(crema=dropped).corpora["crema"])
    assert df["label"].tolist() == [""]  # dropped by the mapping, counted by the stage


def test_names_off_the_pattern_or_unmapped_emotions_are_one_line():
    c = load_params(ROOT / "params.yaml").corpora["tess"]
    with pytest.raises(SerError, match=r"^TESS/x/notes\.wav: does not match corpora\.tess\.pattern"):
        corpora.table(["TESS/x/notes.wav"], "tess", c)
    with pytest.raises(SerError, match="emotion 'bored' is not in corpora.tess.emotions"):
        corpora.table(["TESS/OAF_bored/OAF_bar_bored.wav"], "tess", c)


def test_params_faults_are_params_errors():
    with pytest.raises(ParamsError, match="corpora.crema: pattern does not match the example"):
        params_with(crema=dict(CREMA_D, example="1001-DFA-ANG-XX"))
    with pytest.raises(ParamsError, match="needs the named groups"):
        params_with(crema=dict(CREMA_D, pattern="(?P<actor>\\d+)_.*", example="1_x"))
    with pytest.raises(ParamsError, match=r"corpora.crema.emotions.ANG: 'rage' is not one of the classes"):
        corpora.check_mappings(params_with(crema=dict(CREMA_D, emotions={**CREMA_D["emotions"],
                                                                          "ANG": "rage"})))


def _params_file(tmp_path, archive: Path | None = None) -> Path:
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    if archive is not None:
        data["corpora"]["tess"]["sha256"] = hashlib.sha256(archive.read_bytes()).hexdigest()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "params.yaml"


def test_the_corpus_stage_extracts_and_counts(tmp_path, monkeypatch):
    from ser.stages import corpus
    archive = make_tess_archive(tmp_path / "tess.zip")
    monkeypatch.setenv("TESS_ARCHIVE", str(archive))
    corpus.run(_params_file(tmp_path, archive), "tess", tmp_path / "out", tmp_path / "dl")
    df = corpora.read_table(tmp_path / "out" / "manifest.csv")
    assert len(df) == 28 and df["speaker"].nunique() == 2 and (df["label"] != "").all()
    assert all((tmp_path / "out" / p).is_file() for p in df["path"])


def test_a_missing_archive_is_one_line_naming_the_variable_and_how_to_drop(tmp_path, monkeypatch):
    from ser.stages import corpus
    monkeypatch.delenv("TESS_ARCHIVE", raising=False)
    with pytest.raises(SerError) as err:
        corpus.run(_params_file(tmp_path), "tess", tmp_path / "out", tmp_path / "dl")
    msg = str(err.value)
    assert "set TESS_ARCHIVE=/path/to/archive.zip" in msg and "remove `tess` from `corpora`" in msg
    assert "\n" not in msg and not (tmp_path / "out").exists()


def test_another_archive_is_refused_by_its_checksum(tmp_path, monkeypatch):
    from ser.stages import corpus
    archive = make_tess_archive(tmp_path / "tess.zip")
    monkeypatch.setenv("TESS_ARCHIVE", str(archive))
    with pytest.raises(SerError, match="expected corpora.tess.sha256 .*set sha256: null"):
        corpus.run(_params_file(tmp_path), "tess", tmp_path / "out", tmp_path / "dl")


def test_a_zip_bomb_is_refused_before_anything_is_extracted(tmp_path, monkeypatch):
    """Issue 43: with sha256: null any archive is taken; a TESS-named zip bomb (4.8 MB to 3 GiB)
    was extracted in full. Its declared size is checked first: audio never deflates 20-fold."""
    import zipfile
    from ser.stages import corpus
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("TESS/OAF_angry/OAF_bar_angry.wav", "w", force_zip64=True) as f:
            for _ in range(100):
                f.write(bytes(1 << 20))
    monkeypatch.setenv("TESS_ARCHIVE", str(archive))
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["corpora"]["tess"]["sha256"] = None
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(SerError, match=rf"^{archive}: its audio declares 0.10 GB in 0.1 MB, over 20 "
                                       r"times its size, which audio never compresses to: refused$"):
        corpus.run(tmp_path / "params.yaml", "tess", tmp_path / "out", tmp_path / "dl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.zip", "params.yaml"]


def test_a_clip_that_cannot_be_decoded_stops_the_evaluation_naming_it(tmp_path):
    """Results must be on the corpus declared: a bad clip is an error, not a skipped row."""
    from ser.analysis import analyse
    from conftest import section
    bad = tmp_path / "OAF_bar_angry.wav"
    bad.write_text("not audio")
    with pytest.raises(SerError, match=r"OAF_bar_angry\.wav: cannot decode audio"):
        analyse(bad, [], section("predict"), section("features_logmel"))


def real_tess() -> Path:
    path = Path(os.environ.get("TESS_ARCHIVE") or TESS_ZIP)
    if not path.is_file():
        msg = f"needs the TESS archive: set TESS_ARCHIVE=/path/to/archive.zip or put it at {TESS_ZIP}"
        if os.environ.get("SER_REQUIRE_CORPUS") == "1":
            pytest.fail(msg + " (SER_REQUIRE_CORPUS=1)")
        pytest.skip(msg)
    return path


def test_the_real_tess_copy_is_read_whole(tmp_path, monkeypatch):
    from ser.stages import corpus
    monkeypatch.setenv("TESS_ARCHIVE", str(real_tess()))
    corpus.run(ROOT / "params.yaml", "tess", tmp_path / "out", tmp_path / "dl")
    df = corpora.read_table(tmp_path / "out" / "manifest.csv")
    assert len(df) == 2240 and sorted(df["speaker"].unique()) == ["OA", "YA"]
    assert df.groupby(["speaker", "label"]).size().eq(160).all() and df["label"].nunique() == 7
    y, sr = sf.read(tmp_path / "out" / df["path"].iloc[0])
    assert sr in (24414, 96000) and len(y) > sr  # a second or more of speech
