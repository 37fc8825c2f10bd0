"""Applications of the trained models: `ser predict`, `ser serve`."""

from __future__ import annotations

from pathlib import Path


def project_params() -> Path:
    """The params.yaml the applications read unless told: the project's own (this package sits
    in its src/ser/), found from the package so that `ser` works from any folder; the models
    they read unless told are the models/ beside it. Outside a checkout: the current folder's."""
    from ser.params import PARAMS_FILE  # not at import: `ser` restarts itself before its imports
    own = Path(__file__).resolve().parents[3] / PARAMS_FILE
    return own if own.is_file() else PARAMS_FILE
