"""Speech emotion recognition on RAVDESS: an SVM on global statistics vs a CNN-LSTM on log-mels."""

__version__ = "0.1.0"
