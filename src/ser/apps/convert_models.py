"""Convert model files of the earlier pickle format (`data/models/svm/<run>.joblib`,
`data/models/cnn_lstm/<run>.pt`) to model files of this version (ser.modelfile).

    python -m ser.apps.convert_models data/models/svm/actor-0.joblib ... --out converted --trust

Loading a pickle runs whatever code it carries: convert only files you trust (your own runs).
This is the one place that loads one, and only when asked: without --trust it says so and
loads nothing. The SVM files become the svm_stats
family (the reference's statistics), written to OUT/<family>/<run>.model; the converted model
gives the same probabilities as the original.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import sys
import types
from pathlib import Path

from ser import modelfile, svm_pipeline
from ser.cnn_lstm import CNNLSTM
from ser.errors import SerError, run_cli

log = logging.getLogger("convert_models")


def _load_pickle(path: Path) -> dict:
    """The old file's dict. Old SVM pickles name ser.svm.CappedPCA, now ser.svm_pipeline's."""
    alias = types.ModuleType("ser.svm")
    alias.CappedPCA = svm_pipeline.CappedPCA
    sys.modules.setdefault("ser.svm", alias)
    try:
        if path.suffix == ".pt":
            import torch
            saved = torch.load(path, map_location="cpu", weights_only=False)
        else:
            import joblib
            saved = joblib.load(path)
    except Exception as err:  # noqa: BLE001 - any unpickling failure: one line
        raise SerError(f"{path}: cannot load ({str(err).splitlines()[0]})") from None
    finally:
        if sys.modules.get("ser.svm") is alias:
            del sys.modules["ser.svm"]
    if not isinstance(saved, dict) or saved.get("kind") not in ("svm", "cnn_lstm"):
        raise SerError(f"{path}: not a model file of this project's earlier format")
    return saved


def convert(path: Path, out: Path) -> Path:
    """Write the model file of one old file; returns its path."""
    saved = _load_pickle(path)
    common = {"classes": saved["classes"], "run": saved["run"], "protocol": saved["protocol"],
              "fold": saved["fold"], "training": saved["params"],
              "code": f"{saved.get('code', 'unknown')} (converted from {path.name})"}
    if saved["kind"] == "svm":
        family = "svm_stats"
        meta = {**common, "family": family, "columns": saved["columns"],
                "features": {"family": "stats", "params": saved["features"]}}
        payload = {modelfile.ESTIMATOR: modelfile.estimator_bytes(saved["model"])}
    else:
        family = "cnn_lstm"
        feats = saved["features"] or {}
        names = [n for n in inspect.signature(CNNLSTM).parameters if n not in ("n_classes", "input_shape")]
        network = {n: saved["params"][n] for n in names}
        network["input_shape"] = [feats.get("n_mels", 128), feats.get("win_size", 128)]
        meta = {**common, "family": family, "network": network,
                "features": {"family": "logmel", "params": saved["features"]}}
        payload = {modelfile.WEIGHTS: modelfile.tensors_bytes(saved["state_dict"])}
    target = out / family / f"{saved['run']}{modelfile.SUFFIX}"
    modelfile.write(target, meta, payload)
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path, metavar="FILE", help="old .joblib / .pt files")
    ap.add_argument("--out", type=Path, required=True,
                    help="writes OUT/<family>/<run>.model, for `ser predict --models OUT`")
    ap.add_argument("--trust", action="store_true",
                    help="load the pickles: they run any code they hold, so only your own files")
    a = ap.parse_args()
    if not a.trust:
        raise SerError(f"{a.files[0]}: loading a pickle runs any code it holds, so nothing was "
                       "loaded: pass --trust for files you made yourself (this project's older "
                       "version), never for files from elsewhere")
    for f in a.files:
        log.info("%s -> %s", f, convert(f, a.out))


if __name__ == "__main__":
    run_cli(main)
