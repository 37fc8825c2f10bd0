"""The one reader of params.yaml: typed, validated, one section per stage.

A bad value fails at start with one line naming the key, e.g.
``params.yaml: prepare.test_size: Input should be less than 1, got 1.5``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ser.errors import SerError

PARAMS_FILE = Path("params.yaml")

Prob = Annotated[float, Field(gt=0, lt=1)]
Jobs = Annotated[int, Field(ge=-1)]  # -1: all cores, as joblib counts them


class ParamsError(SerError):
    """A value in params.yaml that the pipeline cannot use."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Download(_Section):
    url: str = Field(pattern=r"^(https?|file)://")
    md5: str = Field(pattern=r"^[0-9a-f]{32}$")
    # sha256 of the lossless FLAC mirror (same samples, .flac names), also accepted as a local source.
    flac_mirror_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # Actors the corpus must hold (and that are extracted): "all" is 1..24.
    actors: Literal["all"] | list[Annotated[int, Field(ge=1, le=24)]] = "all"
    retries: Annotated[int, Field(ge=0, le=20)] = 5
    timeout_s: Annotated[float, Field(gt=0)] = 60.0

    @model_validator(mode="after")
    def _actors_unique(self) -> "Download":
        if self.actors != "all" and (not self.actors or len(set(self.actors)) != len(self.actors)):
            raise ValueError("actors must be 'all' or a non-empty list of distinct actor numbers")
        return self

    def actor_ids(self) -> list[int]:
        return list(range(1, 25)) if self.actors == "all" else sorted(self.actors)


class Prepare(_Section):
    # "seven": calm relabelled neutral, the original neutral clips dropped (the reference protocol).
    classes: Literal["seven", "eight"] = "seven"
    split: Literal["random", "actor"] = "random"
    seed: int = 42
    test_size: Prob = 0.05  # random split: fractions of all clips
    val_size: Prob = 0.15
    actor_fold_size: Annotated[int, Field(ge=2)] = 4  # actor split: consecutive actors per fold
    test_fold: Annotated[int, Field(ge=0)] = 0
    val_fold: Annotated[int, Field(ge=0)] = 1
    n_jobs: Jobs = -1

    @model_validator(mode="after")
    def _parts(self) -> "Prepare":
        if self.test_size + self.val_size >= 1:
            raise ValueError("test_size + val_size must be below 1")
        if self.test_fold == self.val_fold:
            raise ValueError("test_fold and val_fold must differ")
        return self


class FeaturesStats(_Section):
    sample_rate: Annotated[int, Field(ge=8000)] = 48000
    frame_s: Annotated[float, Field(gt=0, le=0.2)] = 0.025
    hop_s: Annotated[float, Field(gt=0, le=0.2)] = 0.010
    n_mfcc: Annotated[int, Field(ge=1, le=40)] = 12
    n_mels: Annotated[int, Field(ge=8)] = 40  # mel bands the MFCCs are taken from
    rolloff: Prob = 0.90
    entropy_blocks: Annotated[int, Field(ge=2)] = 10
    n_jobs: Jobs = -1


class FeaturesLogmel(_Section):
    sample_rate: Annotated[int, Field(ge=8000)] = 16000
    offset_s: Annotated[float, Field(ge=0)] = 0.5
    n_samples: Annotated[int, Field(gt=0)] = 49100
    n_fft: Annotated[int, Field(ge=16)] = 512
    win_length: Annotated[int, Field(ge=16)] = 256
    hop_length: Annotated[int, Field(ge=1)] = 128
    window: str = "hamming"
    n_mels: Annotated[int, Field(ge=8)] = 128
    fmax: Annotated[float, Field(gt=0)] = 4000.0
    win_size: Annotated[int, Field(ge=1)] = 128
    win_step: Annotated[int, Field(ge=1)] = 64
    augment_copies: Annotated[int, Field(ge=0, le=20)] = 2
    snr_db_min: int = 15
    snr_db_max: int = 29  # inclusive, as the reference's randint(15, 30)
    seed: int = 42
    dtype: Literal["float16", "float32"] = "float16"
    n_jobs: Jobs = -1

    @model_validator(mode="after")
    def _consistent(self) -> "FeaturesLogmel":
        if self.win_length > self.n_fft:
            raise ValueError("win_length must not exceed n_fft")
        if self.snr_db_min > self.snr_db_max:
            raise ValueError("snr_db_min must not exceed snr_db_max")
        if self.fmax > self.sample_rate / 2:
            raise ValueError("fmax must not exceed sample_rate / 2")
        frames = 1 + self.n_samples // self.hop_length
        if self.win_size > frames:
            raise ValueError(f"win_size must not exceed the {frames} frames per clip")
        return self


class TrainSvm(_Section):
    p_value: Prob = 0.01
    pca_components: Annotated[int, Field(ge=0)] = 140  # 0: no PCA
    C: list[Annotated[float, Field(gt=0)]] = Field(default=[1, 2, 3, 5, 7, 10, 20, 50], min_length=1)
    gamma: list[Annotated[float, Field(gt=0)]] = Field(default=[0.001, 0.005, 0.01], min_length=1)
    cv_folds: Annotated[int, Field(ge=2)] = 5
    seed: int = 42
    n_jobs: Jobs = -1


class TrainCnnLstm(_Section):
    filters: list[Annotated[int, Field(ge=1)]] = Field(default=[64, 64, 128, 128], min_length=1)
    pools: list[Annotated[int, Field(ge=1)]] = Field(default=[2, 4, 4, 4], min_length=1)
    kernel: Annotated[int, Field(ge=1)] = 3
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.2
    lstm_units: Annotated[int, Field(ge=1)] = 256
    lstm_layers: Annotated[int, Field(ge=1)] = 1
    lstm_dropout: Annotated[float, Field(ge=0, lt=1)] = 0.2
    lstm: Literal["keras", "torch"] = "keras"  # ser.model.KerasLSTM: the reference's gates
    bn_momentum: Prob = 0.01  # PyTorch convention; Keras' momentum 0.99
    bn_eps: Annotated[float, Field(gt=0)] = 1e-3
    bn_recalibration_batches: Annotated[int, Field(ge=0)] = 8
    lr: Annotated[float, Field(gt=0)] = 0.01
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.8
    decay: Annotated[float, Field(ge=0)] = 1e-6  # Keras time decay per iteration
    batch_size: Annotated[int, Field(ge=1)] = 64
    epochs: Annotated[int, Field(ge=1)] = 100
    patience: Annotated[int, Field(ge=1)] = 30
    max_train_clips: Annotated[int, Field(ge=0)] = 0  # 0: all; else a fixed random subset
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    channels_last: bool = True
    bf16: Literal["auto"] | bool = "auto"
    compile: bool = False
    fast_dropout: bool = True  # ser.model.FastDropout: same distribution, cheaper mask
    pool_first: bool = True  # ser.model.BatchNormELUPool: same function, BN + ELU on pooled maps
    reuse_memory: bool = True  # glibc keeps freed memory (ser.cpu): no page faults per step
    threads: Annotated[int, Field(ge=0)] = 0  # 0: torch's default

    @model_validator(mode="after")
    def _blocks(self) -> "TrainCnnLstm":
        if len(self.filters) != len(self.pools):
            raise ValueError("filters and pools must have the same length")
        return self


class Report(_Section):
    bootstrap: Annotated[int, Field(ge=100)] = 2000
    confidence: Prob = 0.95
    seed: int = 42


class Params(_Section):
    download: Download
    prepare: Prepare = Prepare()
    features_stats: FeaturesStats = FeaturesStats()
    features_logmel: FeaturesLogmel = FeaturesLogmel()
    train_svm: TrainSvm = TrainSvm()
    train_cnn_lstm: TrainCnnLstm = TrainCnnLstm()
    report: Report = Report()


def _one_line(err: ValidationError, source: str) -> str:
    e = err.errors()[0]
    key = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
    msg = e["msg"].removeprefix("Value error, ")
    got = "" if e["type"] == "missing" or isinstance(e["input"], dict) else f", got {e['input']!r}"
    return f"{source}: {key}: {msg}{got}"


def parse_params(data: object, source: str = "params.yaml") -> Params:
    if not isinstance(data, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    try:
        return Params.model_validate(data)
    except ValidationError as err:
        raise ParamsError(_one_line(err, source)) from None


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run from the repository root)") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
    return parse_params(data, str(path))
