"""Stage params: validate the whole of params.yaml before any other stage touches its outputs.

    bin/stage params --params params.yaml --out data/params.ok
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ser.errors import run_cli
from ser.io import write_text
from ser.params import PARAMS_FILE, load_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--out", type=Path, required=True, help="written, always the same, when valid")
    a = ap.parse_args()
    load_params(a.params)
    write_text(a.out, "params.yaml is valid\n")
    logging.getLogger("params").info("%s: valid", a.params)


if __name__ == "__main__":
    run_cli(main)
