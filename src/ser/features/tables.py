"""The table feature families (one row of named columns per recording: stats, egemaps) and the
feature sets they compute. A feature set is a params section `features_<set>`, e.g. stats and
stats_conditioned: the same code (the module whose PARAMS is the section's type), other params.
"""

from __future__ import annotations

from types import ModuleType

from ser.features import egemaps, stats
from ser.params import Params

MODULES = {m.PARAMS: m for m in (stats, egemaps)}
SETS = [k.removeprefix("features_") for k in Params.model_fields if k.startswith("features_")]


def module(feature_set: str) -> ModuleType | None:
    """The table family's module that computes a feature set; None for a set that is no table."""
    field = Params.model_fields.get(f"features_{feature_set}")
    if field is None:
        raise KeyError(f"no feature set {feature_set!r} (sets: {', '.join(SETS)})")
    return MODULES.get(field.annotation)


def column_difference(got: object, want: list[str]) -> str | None:
    """How a table's or a model file's columns differ from the `want` of its feature set, in a
    few words ('199 columns', "column 0 'x' where its features have 'y'"); None when equal."""
    if got == want:
        return None
    if not isinstance(got, list):
        return "no list of columns"
    if len(got) != len(want):
        return f"{len(got)} columns"
    i = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
    return f"column {i} {str(got[i])[:40]!r} where its features have {want[i]!r}"
