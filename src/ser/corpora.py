"""External corpora as data (params.yaml `corpora`): a file name gives speaker and emotion
through the entry's pattern, the emotion a project class through its mapping. The one place that
reads these names, for the corpus and evaluate_corpus stages.

The corpus table (`data/corpora/<name>/manifest.csv`): clip_id (the file's stem), path (under
the corpus folder), speaker, emotion (the corpus's word), label (the project class; empty when
the mapping drops the emotion).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pandas as pd

from ser.errors import SerError
from ser.labels import class_names
from ser.params import Corpus, Params, ParamsError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
COLUMNS = ["clip_id", "path", "speaker", "emotion", "label"]


def check_mappings(params: Params, source: str = "params.yaml") -> None:
    """Every corpus's emotions map to classes of the protocol (prepare.classes) or to null."""
    classes = class_names(params.prepare.classes)
    for name, c in params.corpora.items():
        for emotion, label in c.emotions.items():
            if label is not None and label not in classes:
                raise ParamsError(f"{source}: corpora.{name}.emotions.{emotion}: {label!r} is not "
                                  f"one of the classes ({', '.join(classes)})")


def parse(name: str, corpus_name: str, c: Corpus) -> dict:
    """One audio file's row, from its name (a path inside the archive); one line naming the file
    when its name does not fit the pattern or its emotion has no mapping."""
    stem = PurePosixPath(name).stem
    m = re.fullmatch(c.pattern, stem)
    if m is None:
        raise SerError(f"{name}: does not match corpora.{corpus_name}.pattern {c.pattern!r}: "
                       "results must be on the corpus declared")
    emotion = m.group("emotion")
    if emotion not in c.emotions:
        raise SerError(f"{name}: emotion {emotion!r} is not in corpora.{corpus_name}.emotions "
                       f"({', '.join(c.emotions)}): map it to a class, or to null to drop it")
    return {"clip_id": stem, "path": name, "speaker": m.group("speaker"), "emotion": emotion,
            "label": c.emotions[emotion] or ""}


def table(names: list[str], corpus_name: str, c: Corpus) -> pd.DataFrame:
    rows = [parse(n, corpus_name, c) for n in sorted(names)]
    if not rows:
        raise SerError(f"corpora.{corpus_name}: the archive holds no audio files "
                       f"({', '.join(AUDIO_SUFFIXES)})")
    df = pd.DataFrame(rows, columns=COLUMNS)
    dup = df["clip_id"].duplicated()
    if dup.any():
        raise SerError(f"corpora.{corpus_name}: two files are named {df.loc[dup, 'clip_id'].iloc[0]!r}")
    return df


def read_table(path: Path) -> pd.DataFrame:
    """A corpus table, checked: its columns, each clip once."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise SerError(f"{path}: not found (run its corpus@<name> stage first)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise SerError(f"{path}: not a corpus table ({str(err).splitlines()[0]})") from None
    if list(df.columns) != COLUMNS:
        raise SerError(f"{path}: columns {list(df.columns)}, expected {COLUMNS}")
    dup = df["clip_id"].duplicated()
    if dup.any():
        raise SerError(f"{path}: clip {df.loc[dup, 'clip_id'].iloc[0]} appears twice")
    return df
