"""RAVDESS file names and emotion labels: the one place that knows them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ser.errors import SerError

# RAVDESS emotion codes (the third field of a file name), in the corpus' own order.
EMOTIONS: dict[int, str] = {
    1: "neutral", 2: "calm", 3: "happy", 4: "sad",
    5: "angry", 6: "fearful", 7: "disgust", 8: "surprised",
}
N_ACTORS = 24
CLIPS_PER_ACTOR = 60  # speech: 1 neutral x 2 statements x 2 repetitions + 7 x 2 x 2 x 2
AUDIO_SUFFIXES = (".wav", ".flac")

_NAME = re.compile(r"^03-01-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d\d)$")


@dataclass(frozen=True)
class ClipInfo:
    clip_id: str
    emotion: str
    intensity: str  # "normal" | "strong"
    statement: int  # 1: "Kids are talking by the door", 2: "Dogs are sitting by the door"
    repetition: int
    actor: int

    @property
    def gender(self) -> str:
        return "male" if self.actor % 2 else "female"


def parse_name(stem: str) -> ClipInfo:
    """Parse a speech file's stem, e.g. '03-01-05-02-01-02-12' (angry, strong, actor 12)."""
    m = _NAME.match(stem)
    if not m:
        raise SerError(f"not a RAVDESS speech file name: {stem!r} "
                       "(expected 03-01-EE-II-SS-RR-AA with emotion 01-08)")
    emo, inten, stmt, rep, actor = (int(g) for g in m.groups())
    if not 1 <= actor <= N_ACTORS:
        raise SerError(f"not a RAVDESS speech file name: {stem!r} (actor {actor} not in 1-24)")
    if emo == 1 and inten == 2:
        raise SerError(f"not a RAVDESS speech file name: {stem!r} (neutral has no strong intensity)")
    return ClipInfo(stem, EMOTIONS[emo], "normal" if inten == 1 else "strong", stmt, rep, actor)


def training_label(emotion: str, classes: str) -> str | None:
    """The class a clip is trained on, or None when the protocol drops it.

    'seven' is the reference protocol: calm is relabelled neutral and the original neutral
    clips are dropped. 'eight' keeps all RAVDESS emotions.
    """
    if classes == "eight":
        return emotion
    if emotion == "neutral":
        return None
    return "neutral" if emotion == "calm" else emotion


def class_names(classes: str) -> list[str]:
    """The classes of a protocol, in a fixed order (the columns of every confusion matrix)."""
    names = [training_label(e, classes) for e in EMOTIONS.values()]
    return list(dict.fromkeys(n for n in names if n is not None))


def expected_stems(actor: int) -> set[str]:
    """Every speech clip stem one actor must have."""
    stems = set()
    for emo in EMOTIONS:
        for inten in (1, 2) if emo != 1 else (1,):
            for stmt in (1, 2):
                for rep in (1, 2):
                    stems.add(f"03-01-{emo:02d}-{inten:02d}-{stmt:02d}-{rep:02d}-{actor:02d}")
    return stems
