"""The model families, each declared once: what the report, its statistics and figures, the
metrics and `ser predict` / `ser serve` know of a family, they read here.

Adding a family: its training stage module (ser/stages/), its params section, its dvc.yaml entry
(writing data/models/<family>/<run>.model and data/runs/<family>/<run>/predictions.csv) and an
entry below; tests/test_registry.py holds the registry, dvc.yaml and params.yaml in agreement.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Family:
    name: str          # as in paths and metric keys: data/models/<name>/, random.<name>.accuracy
    label: str         # as shown in the report, the figures and predict's output
    features: str      # its feature family (ser.features.<features>; params features_<features>)
    stage: str         # its training stage (ser.stages.<stage>; dvc.yaml train_<...>)
    color: str         # in every figure
    reader: str        # "module:function" that reads its model file: path -> (meta, proba)
    about: str         # one line for the report and the README

    def read_model(self, path: Path) -> tuple[dict, Callable[[np.ndarray], np.ndarray]]:
        """(meta, proba): proba maps this family's feature rows to class probabilities."""
        module, func = self.reader.split(":")
        fn = getattr(importlib.import_module(module), func)
        return fn(path, self.name) if self.stage == "train_svm" else fn(path)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("svm_stats", "SVM", "stats", "train_svm", "#1f77b4", "ser.svm_pipeline:read_model",
           "the reference's SVM on 200 global statistics of 20 frame-level features"),
    Family("svm_egemaps", "eGeMAPS SVM", "egemaps", "train_svm", "#2ca02c",
           "ser.svm_pipeline:read_model",
           "the same SVM pipeline on the 88 eGeMAPS v02 functionals (openSMILE)"),
    Family("cnn_lstm", "CNN-LSTM", "logmel", "train_cnn_lstm", "#ff7f0e",
           "ser.cnn_lstm:read_model",
           "the reference's time-distributed CNN + LSTM on log-mel windows"),
)}
REFERENCE_SVM, NETWORK = "svm_stats", "cnn_lstm"  # the reference's question: NETWORK minus REFERENCE_SVM


def get(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"no model family {name!r} (families: {', '.join(FAMILIES)})") from None


def labels() -> dict[str, str]:
    return {f.name: f.label for f in FAMILIES.values()}


def colors() -> dict[str, str]:
    return {f.name: f.color for f in FAMILIES.values()}
