"""The `ser` command: `ser predict` (ser.apps.predict) and `ser serve` (ser.apps.serve).

    ser predict PATH... [--model FAMILY... | all] [--protocol ...] [--fold K] [--hop S]
                [--json FILE] [--csv FILE] [--plot FILE.png|FOLDER]
    ser serve [--host 127.0.0.1] [--port 8000] [--model ...] [--protocol ...] [--fold K]

From any folder: the settings are the project's params.yaml (`predict`, `serve`), the models its
committed ones (its models/, each checked against its dvc.lock), unless --params, --models say.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import sys
from pathlib import Path

from ser import registry
from ser.cpu import reexec_with_reused_memory
from ser.errors import run_cli

PROTOCOLS = ("actor", "random", "holdout")


def _models(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", nargs="+", choices=[*registry.FAMILIES, "all"], default=None,
                   metavar="FAMILY", help=f"model families ({', '.join(registry.FAMILIES)}) or all "
                   "(default: params.yaml predict.families)")
    p.add_argument("--protocol", choices=["auto", *PROTOCOLS], default="auto",
                   help="whose fold models (auto: actor, else random, else holdout)")
    p.add_argument("--fold", type=int, default=None,
                   help="one fold's model instead of the ensemble (e.g. the fold that tested a clip)")
    p.add_argument("--params", type=Path, default=None,
                   help="settings (default: the project's params.yaml, wherever `ser` runs)")
    p.add_argument("--models", type=Path, default=None,
                   help="folder of <family>/<run>.model files (default: the committed models/)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ser", description="Speech emotion recognition: apply the "
                                 "trained models to recordings.")
    sub = ap.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("predict", help="apply the trained models to recordings",
                        description="Apply the trained models to any recording.")
    pr.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="audio files or folders")
    _models(pr)
    pr.add_argument("--hop", type=float, default=None, help="seconds between segment starts "
                    "(default: params.yaml predict.hop_s)")
    pr.add_argument("--json", dest="json_out", metavar="FILE", help="write JSON ('-': stdout)")
    pr.add_argument("--csv", dest="csv_out", metavar="FILE", help="write CSV ('-': stdout)")
    pr.add_argument("--plot", type=Path, metavar="FILE.png|FOLDER",
                    help="probability timeline: a PNG for one file, a folder of PNGs for several")
    sv = sub.add_parser("serve", help="a local web page: upload a recording or speak",
                        description="Serve the models on a local web page and a JSON API.")
    sv.add_argument("--host", default=None, help="address to bind (default: params.yaml serve.host)")
    sv.add_argument("--port", type=int, default=None, help="port (default: params.yaml serve.port)")
    _models(sv)
    return ap


def main(argv: list[str] | None = None) -> None:
    a = parser().parse_args(argv)
    if a.command == "predict":
        with lasting():
            from ser.apps import predict
        code = predict.run(a.paths, which=a.model, protocol=a.protocol, fold=a.fold, hop=a.hop,
                           json_out=a.json_out, csv_out=a.csv_out, plot_out=a.plot,
                           params_path=a.params, models=a.models)
        sys.exit(code)
    with lasting():
        from ser.apps import serve
    serve.run(host=a.host, port=a.port, which=a.model, protocol=a.protocol, fold=a.fold,
              params_path=a.params, models=a.models)


@contextlib.contextmanager
def lasting():
    """For imports, whose ~280,000 objects live as long as the process: Python's collector, which
    would scan them again and again as they pile up (0.4 s of a 4 s cold `ser predict`,
    benchmarks/README.md), is off while they are made, and they are kept out of its later scans."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def cli() -> None:
    """The `ser` console script. Like training, it restarts itself with glibc set to reuse freed
    memory: the CNN-LSTM's forward passes ran 4x faster so (benchmarks/README.md). Once done it
    exits at once: Python's own teardown of the libraries' ~3400 modules took 0.7 s of a 5 s
    `ser predict` (benchmarks/README.md) and has nothing left to do (every output is written and
    closed by then)."""
    reexec_with_reused_memory("ser.apps.cli")
    try:
        run_cli(main)
    except SystemExit as end:
        if end.code is not None and not isinstance(end.code, int):
            raise  # a message: Python prints it
        exit_at_once(end.code or 0)
    exit_at_once(0)


def exit_at_once(code: int) -> None:
    """End the process with `code` now: logs and standard streams flushed, no teardown."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`ser predict ... | head`)
            code = code or 1
    os._exit(code)


if __name__ == "__main__":
    cli()
