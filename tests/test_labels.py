import pytest

from ser.errors import SerError
from ser.labels import class_names, expected_stems, parse_name, training_label


def test_parse_name():
    c = parse_name("03-01-05-02-01-02-12")
    assert (c.emotion, c.intensity, c.statement, c.repetition, c.actor, c.gender) == \
        ("angry", "strong", 1, 2, 12, "female")
    assert parse_name("03-01-02-01-02-01-01").gender == "male"


@pytest.mark.parametrize("stem", ["03-02-05-02-01-02-12",  # song, not speech
                                  "03-01-09-01-01-01-01",  # no emotion 09
                                  "03-01-05-02-01-02-25",  # no actor 25
                                  "03-01-01-02-01-01-01",  # neutral has no strong intensity
                                  "03-01-05-02-01-02", "readme"])
def test_parse_name_rejects(stem):
    with pytest.raises(SerError, match="not a RAVDESS speech file name"):
        parse_name(stem)


def test_protocols():
    assert class_names("seven") == ["neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    assert len(class_names("eight")) == 8
    assert training_label("neutral", "seven") is None
    assert training_label("calm", "seven") == "neutral"
    assert training_label("calm", "eight") == "calm"


def test_sixty_clips_per_actor():
    stems = expected_stems(7)
    assert len(stems) == 60
    assert all(parse_name(s).actor == 7 for s in stems)
