"""The model families, each declared once: what the report, its statistics and figures, the
metrics and `ser predict` / `ser serve` know of a family, they read here.

Adding a family: its training stage module (ser/stages/), its params section, its dvc.yaml entry
(writing models/<family>/<run>.model and runs/<family>/<run>/predictions.csv), an entry below and,
for a new kind of model, its reader in ser.inference; tests/test_registry.py holds the registry,
dvc.yaml and params.yaml in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str          # as in paths and metric keys: models/<name>/, random.<name>.accuracy
    label: str         # as shown in the report, the figures and predict's output
    features: str      # its feature set: params features_<features>, data/features/<features>;
                       #   its code, ser.features.<module> whose PARAMS is that section's type
    stage: str         # its training stage (ser.stages.<stage>; dvc.yaml train_<...>), which
                       #   also says how ser.inference reads its model files
    color: str         # in every figure
    about: str         # one line for the report and the README
    plain: str         # its name for people who are not us (the web page)
    hint: str          # one line for them: what it listens to


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("svm_stats", "SVM", "stats", "train_svm", "#1f77b4",
           "the reference's SVM on 200 global statistics of 20 frame-level features, as published",
           "Acoustic statistics (SVM)",
           "A classic classifier on 200 summary numbers of the voice's spectrum and energy"),
    Family("svm_stats_conditioned", "SVM (conditioned)", "stats_conditioned", "train_svm", "#17becf",
           "the same SVM and statistics of the recording cut to its sound, at one level, over a "
           "noise floor", "Acoustic statistics, levelled (SVM)",
           "A classic classifier on 200 summary numbers of the voice, of the speech alone at one loudness"),
    Family("svm_egemaps", "eGeMAPS SVM", "egemaps", "train_svm", "#2ca02c",
           "the same SVM pipeline on the 88 eGeMAPS v02 functionals (openSMILE), as published",
           "Voice measures (eGeMAPS, SVM)",
           "A classic classifier on 88 standard measures of pitch, loudness and voice quality"),
    Family("svm_egemaps_conditioned", "eGeMAPS SVM (conditioned)", "egemaps_conditioned",
           "train_svm", "#bcbd22", "the eGeMAPS SVM on the conditioned recording",
           "Voice measures, levelled (eGeMAPS, SVM)",
           "A classic classifier on 88 standard voice measures, of the speech alone at one loudness"),
    Family("cnn_lstm", "CNN-LSTM", "logmel", "train_cnn_lstm", "#ff7f0e",
           "the reference's time-distributed CNN + LSTM on log-mel windows",
           "Neural network (CNN-LSTM)",
           "A neural network that reads the sound's spectrogram, 3 seconds at a time"),
)}
# Each emotion's colour wherever an answer is drawn (the page's and `ser predict --plot`'s
# timelines): Okabe and Ito's palette, told apart with any colour vision
EMOTION_COLORS = {"neutral": "#999999", "calm": "#56B4E9", "happy": "#E69F00", "sad": "#0072B2",
                  "angry": "#D55E00", "fearful": "#CC79A7", "disgust": "#009E73", "surprised": "#F0E442"}

# The reference's question: NETWORK minus REFERENCE_SVM, the SVM on the reference's own features
REFERENCE_SVM, NETWORK = "svm_stats", "cnn_lstm"


def get(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"no model family {name!r} (families: {', '.join(FAMILIES)})") from None


def labels() -> dict[str, str]:
    return {f.name: f.label for f in FAMILIES.values()}


def colors() -> dict[str, str]:
    return {f.name: f.color for f in FAMILIES.values()}
