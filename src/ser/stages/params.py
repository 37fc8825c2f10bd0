"""Stage params: validate the whole of params.yaml before any other stage touches its outputs.

    bin/stage params --params params.yaml --out data/params.ok
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ser import corpora, registry
from ser.errors import run_cli
from ser.io import write_text
from ser.params import PARAMS_FILE, ParamsError, Params, load_params


def check_families(params: Params, source: str) -> None:
    """What the schema cannot know: report.compare and predict.families name registered families,
    the headline first."""
    for a, b in params.report.compare:
        for name in (a, b):
            if name not in registry.FAMILIES:
                raise ParamsError(f"{source}: report.compare: no model family {name!r} (families: "
                                  f"{', '.join(registry.FAMILIES)})")
    for name in params.predict.families:
        if name not in registry.FAMILIES:
            raise ParamsError(f"{source}: predict.families: no model family {name!r} (families: "
                              f"{', '.join(registry.FAMILIES)})")
    if params.report.compare[0] != [registry.NETWORK, registry.REFERENCE_SVM]:
        raise ParamsError(f"{source}: report.compare: the first pair is the headline, the "
                          f"reference's question: [{registry.NETWORK}, {registry.REFERENCE_SVM}]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--out", type=Path, required=True, help="written, always the same, when valid")
    a = ap.parse_args()
    params = load_params(a.params)
    check_families(params, str(a.params))
    corpora.check_mappings(params, str(a.params))
    write_text(a.out, "params.yaml is valid\n")
    logging.getLogger("params").info("%s: valid", a.params)


if __name__ == "__main__":
    run_cli(main)
