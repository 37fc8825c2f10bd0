"""The one reader of params.yaml: typed, validated, one section per stage.

A bad value fails at start with one line naming the key, e.g.
``params.yaml: prepare.test_size: Input should be less than 1, got 1.5``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from ser.errors import SerError

PARAMS_FILE = Path("params.yaml")

Prob = Annotated[float, Field(gt=0, lt=1)]
Jobs = Annotated[int, Field(ge=-1)]  # -1: all cores, as joblib counts them


class ParamsError(SerError):
    """A value in params.yaml that the pipeline cannot use."""


class _Section(BaseModel):
    # every float finite: .inf or .nan is never a usable setting (null says "none" where allowed)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    @classmethod
    def first_error(cls, values: dict) -> str | None:
        """'key: message' for the first of `values` (some of this section's keys, e.g. read back
        from a file) that the section's schema refuses; None when every one passes."""
        from pydantic import TypeAdapter
        for k, v in values.items():
            f = cls.model_fields.get(k)
            if f is None:
                return f"{k}: not a key of {cls.__name__}"
            kind = Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation
            try:
                TypeAdapter(kind, config=ConfigDict(strict=True, allow_inf_nan=False)).validate_python(v)
            except ValidationError as err:
                return f"{k}: {err.errors()[0]['msg']}, got {v!r}"[:200]
        return None


class Download(_Section):
    url: str = Field(pattern=r"^(https?|file)://")
    md5: str = Field(pattern=r"^[0-9a-f]{32}$")
    # sha256 of the lossless FLAC mirror (same samples, .flac names), also accepted as a local source.
    flac_mirror_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # Actors the corpus must hold (and that are extracted): "all" is 1..24.
    actors: Literal["all"] | list[int]
    retries: Annotated[int, Field(ge=0, le=20)]
    timeout_s: Annotated[float, Field(gt=0)]  # for one connection or read
    stall_limit_s: Annotated[float, Field(gt=0)]  # give up after this long without a byte
    total_limit_s: Annotated[float, Field(gt=0)]  # and after this long in all

    @field_validator("actors", mode="before")
    @classmethod
    def _actors(cls, v: object) -> object:
        ok = v == "all" or (isinstance(v, list) and v and len(set(map(repr, v))) == len(v)
                            and all(type(a) is int and 1 <= a <= 24 for a in v))
        if not ok:
            raise ValueError("must be 'all' or a list of distinct actor numbers (actors run 1-24)")
        return v

    def actor_ids(self) -> list[int]:
        return list(range(1, 25)) if self.actors == "all" else sorted(self.actors)


class Prepare(_Section):
    # "seven": calm relabelled neutral, the original neutral clips dropped (the reference protocol).
    classes: Literal["seven", "eight"]


PROTOCOLS = ("random", "actor", "holdout")
RUN_NAME = re.compile(r"^(random|actor|holdout)-(0|[1-9][0-9]*)$")


def parse_run(name: str) -> tuple[str, int]:
    """'random-3' -> ('random', 3)."""
    m = RUN_NAME.match(name)
    if not m:
        raise ParamsError(f"not a run name: {name!r} (expected random-K, actor-K or holdout-0)")
    return m.group(1), int(m.group(2))


class Folds(_Section):
    # The runs to train, each "<protocol>-<fold>": one DVC stage per model and run (dvc.yaml
    # foreach). A protocol is listed whole, since the report pools every fold of it.
    runs: list[Annotated[str, Field(pattern=RUN_NAME.pattern)]] = Field(min_length=1)
    seed: int
    test_size: Prob  # holdout: fractions of all clips; random folds keep its train : val ratio
    val_size: Prob
    actor_fold_size: Annotated[int, Field(ge=1)]  # actor folds: consecutive actors per fold

    @model_validator(mode="after")
    def _parts(self) -> "Folds":
        if self.test_size + self.val_size >= 1:
            raise ValueError("test_size + val_size must be below 1")
        if len(set(self.runs)) != len(self.runs):
            raise ValueError("runs must not repeat a run")
        return self

    def folds_of(self, protocol: str) -> list[int]:
        """The listed folds of one protocol, sorted (empty when it is not listed)."""
        return sorted(k for prot, k in map(parse_run, self.runs) if prot == protocol)

    def protocols(self) -> list[str]:
        """The listed protocols, in PROTOCOLS' order."""
        return [prot for prot in PROTOCOLS if self.folds_of(prot)]

    def val_share(self) -> float:
        """Validation clips as a share of the clips left once the test clips are out."""
        return self.val_size / (1 - self.test_size)


class _FeatureSection(_Section):
    """A feature family's params. Each decides the features' values: they are saved beside the
    features and in every model file, and `ser predict` rebuilds the section from them."""

    def saved(self) -> dict:
        return self.model_dump()

    @classmethod
    def from_saved(cls, saved: dict):
        return cls(**saved)


Level = Annotated[float, Field(ge=-80, le=0, allow_inf_nan=False)] | None  # dBFS
Floor = Annotated[float, Field(ge=10, le=120, allow_inf_nan=False)] | None  # dB below the level
Trim = Annotated[float, Field(ge=10, le=120, allow_inf_nan=False)] | None  # dB below the loudest frame


class FeaturesStats(_FeatureSection):
    sample_rate: Annotated[int, Field(ge=8000)]
    frame_s: Annotated[float, Field(gt=0, le=0.2)]
    hop_s: Annotated[float, Field(gt=0, le=0.2)]
    n_mfcc: Annotated[int, Field(ge=1, le=40)]
    n_mels: Annotated[int, Field(ge=8)]  # mel bands the MFCCs are taken from
    rolloff: Prob
    entropy_blocks: Annotated[int, Field(ge=2)]
    level_dbfs: Level    # the recording scaled to this level first (ser.features.level; null: as is)
    floor_db: Floor      # white noise this far below that level added (null: none)
    trim_db: Trim        # silence before and after the sound cut first (null: kept)


class FeaturesLogmel(_FeatureSection):
    sample_rate: Annotated[int, Field(ge=8000)]
    offset_s: Annotated[float, Field(ge=0)]
    n_samples: Annotated[int, Field(gt=0)]
    n_fft: Annotated[int, Field(ge=16)]
    win_length: Annotated[int, Field(ge=16)]
    hop_length: Annotated[int, Field(ge=1)]
    window: str
    n_mels: Annotated[int, Field(ge=8)]
    fmax: Annotated[float, Field(gt=0)]
    win_size: Annotated[int, Field(ge=1)]
    win_step: Annotated[int, Field(ge=1)]
    augment_copies: Annotated[int, Field(ge=0, le=20)]
    snr_db_min: int
    snr_db_max: int  # inclusive, as the reference's randint(15, 30)
    seed: int
    dtype: Literal["float16", "float32"]

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


class FeaturesEgemaps(_FeatureSection):
    sample_rate: Annotated[int, Field(ge=8000)]
    feature_set: Literal["eGeMAPSv02"]  # openSMILE's name; 88 functionals per recording
    level_dbfs: Level
    floor_db: Floor
    trim_db: Trim


class TrainSvm(_Section):
    p_value: Prob
    pca_components: Annotated[int, Field(ge=0)]  # 0: no PCA
    C: list[Annotated[float, Field(gt=0)]] = Field(min_length=1)
    gamma: list[Annotated[float, Field(gt=0)]] = Field(min_length=1)
    cv_folds: Annotated[int, Field(ge=2)]
    seed: int


class TrainCnnLstm(_Section):
    filters: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)
    pools: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)
    kernel: Annotated[int, Field(ge=1)]
    dropout: Annotated[float, Field(ge=0, lt=1)]
    lstm_units: Annotated[int, Field(ge=1)]
    lstm_layers: Annotated[int, Field(ge=1)]
    lstm_dropout: Annotated[float, Field(ge=0, lt=1)]
    lstm: Literal["keras", "torch"]  # ser.cnn_lstm.KerasLSTM: the reference's gates
    bn_momentum: Prob  # PyTorch convention; Keras' momentum 0.99
    bn_eps: Annotated[float, Field(gt=0)]
    bn_recalibration_batches: Annotated[int, Field(ge=0)]
    lr: Annotated[float, Field(gt=0)]
    momentum: Annotated[float, Field(ge=0, lt=1)]
    decay: Annotated[float, Field(ge=0)]  # Keras time decay per iteration
    batch_size: Annotated[int, Field(ge=1)]
    epochs: Annotated[int, Field(ge=1)]
    patience: Annotated[int, Field(ge=1)]
    max_train_clips: Annotated[int, Field(ge=0)]  # 0: all; else a fixed random subset
    seed: int
    channels_last: bool
    bf16: Literal["auto"] | bool
    fast_dropout: bool  # ser.cnn_lstm.FastDropout: same distribution, cheaper mask
    pool_first: bool  # ser.cnn_lstm.BatchNormELUPool: same function, BN + ELU on pooled maps

    @model_validator(mode="after")
    def _blocks(self) -> "TrainCnnLstm":
        if len(self.filters) != len(self.pools):
            raise ValueError("filters and pools must have the same length")
        return self


class PredictParams(_Section):
    # the families `ser predict` and `ser serve` use unless told: for each table family the
    # variant (as published or conditioned) the README's rule chose on RAVDESS (stage params
    # checks the names; tests/test_report.py the choice against the committed report)
    families: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]] = Field(min_length=1)
    # seconds between the starts of a recording's segments: at most 10 segments a second
    # (memory and time grow with their count), at most an hour
    hop_s: Annotated[float, Field(ge=0.1, le=3600, allow_inf_nan=False)]
    reliable_min_s: Annotated[float, Field(ge=0)]  # a segment with less audio is flagged short
    # the CNN-LSTM reads a recording with less audio than this looped to fill its window, not
    # zero-padded (0: never)
    loop_below_s: Annotated[float, Field(ge=0)]
    # a recording up to this long is read whole; a longer one in a stream of segments, in memory
    # independent of its length, its whole answer the mean of its segments' for every family
    whole_max_s: Annotated[float, Field(ge=5, le=3600, allow_inf_nan=False)]


FamilyName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class Corpus(_Section):
    """An external corpus every speaker-independent model is tested on (stages corpus@<name>,
    evaluate_corpus@<name>): where its archive comes from, how a file name gives speaker and
    emotion, how its emotions map onto the project's classes."""
    about: str                          # what it is and where to get it (citation, licence)
    url: str | None = Field(pattern=r"^(https?|file)://")  # an official archive, if a stable one exists
    archive_env: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")  # a local archive, overriding url
    sha256: str | None = Field(pattern=r"^[0-9a-f]{64}$")   # of the archive; null: not checked
    pattern: str                        # regex on each audio file's stem: groups speaker, emotion
    example: str                        # a file stem of the corpus: the pattern must match it
    emotions: dict[str, str | None]     # the corpus's emotion -> a project class (null: dropped)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        try:
            rx = re.compile(v)
        except re.error as err:
            raise ValueError(f"not a regular expression ({err})") from None
        if not {"speaker", "emotion"} <= set(rx.groupindex):
            raise ValueError("needs the named groups (?P<speaker>...) and (?P<emotion>...)")
        return v

    @model_validator(mode="after")
    def _example(self) -> "Corpus":
        m = re.fullmatch(self.pattern, self.example)
        if m is None:
            raise ValueError(f"pattern does not match the example {self.example!r}")
        if m.group("emotion") not in self.emotions:
            raise ValueError(f"the example's emotion {m.group('emotion')!r} is not in emotions")
        return self


class Runtime(_Section):
    """How fast and where the stages run: no stage declares these, so changing one reruns nothing.
    n_jobs and reuse_memory change no output bit (tests compare them); threads, device and compile
    move a network's last bits as another host does, and each run's metrics record them."""
    n_jobs: Jobs     # worker processes: prepare, features, the SVMs' grid search, corpus evaluation
    threads: Annotated[int, Field(ge=0)]  # torch threads while training (0: torch's default)
    device: Literal["auto", "cpu", "cuda"]  # where the CNN-LSTM trains (auto: cuda when available)
    compile: bool    # torch.compile the training step
    reuse_memory: bool  # glibc keeps freed memory (ser.cpu): no page faults per step


class Serve(_Section):
    host: str                                   # 127.0.0.1: this machine only
    port: Annotated[int, Field(ge=0, le=65535)]
    max_upload_mb: Annotated[float, Field(gt=0)]  # a larger upload is refused (413) as it arrives
    max_seconds: Annotated[float, Field(gt=0)]    # so is longer audio, uploaded or recorded
    body_timeout_s: Annotated[float, Field(gt=0)]  # an upload must arrive within this (408)
    live_sessions: Annotated[int, Field(ge=1)]     # microphone recordings at once
    live_idle_s: Annotated[float, Field(gt=0)]     # a recording that sends nothing this long ends
    live_max_rate: Annotated[int, Field(ge=8000, le=384000)]  # Hz, the highest a recording may send


class Report(_Section):
    bootstrap: Annotated[int, Field(ge=100)]
    confidence: Prob
    seed: int
    # the differences the report computes, each [a, b]: a minus b; the first is the headline.
    # Names are the registry's families (checked by the params stage).
    compare: list[Annotated[list[FamilyName], Field(min_length=2, max_length=2)]] = Field(min_length=1)

    @field_validator("compare")
    @classmethod
    def _pairs(cls, v: list[list[str]]) -> list[list[str]]:
        if any(a == b for a, b in v):
            raise ValueError("each pair compares two different families")
        if len({tuple(x) for x in v}) != len(v):
            raise ValueError("a pair is listed twice")
        return v


class Params(_Section):
    download: Download
    prepare: Prepare
    features_stats: FeaturesStats                  # as published
    features_stats_conditioned: FeaturesStats      # the same, on the conditioned recording
    features_logmel: FeaturesLogmel
    features_egemaps: FeaturesEgemaps
    features_egemaps_conditioned: FeaturesEgemaps
    folds: Folds
    train_svm: TrainSvm
    train_cnn_lstm: TrainCnnLstm
    report: Report
    predict: PredictParams
    serve: Serve
    corpora: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], Corpus]
    runtime: Runtime

    @model_validator(mode="after")
    def _runs(self) -> "Params":
        f = self.folds
        n_actor_folds = len(self.download.actor_ids()) // f.actor_fold_size
        expected = {"random": None, "actor": n_actor_folds, "holdout": 1}
        for prot in f.protocols():
            folds, n = f.folds_of(prot), expected[prot]
            n = len(folds) if n is None else n
            want = [f"{prot}-{k}" for k in range(n)]
            if prot == "random" and n < 2:
                raise ValueError("folds.runs: the random protocol needs at least random-0 and random-1")
            if prot == "actor" and n < 3:
                raise ValueError(f"folds.runs: the actor protocol needs at least 3 folds (test, validation, "
                                 f"training) but {len(self.download.actor_ids())} actors in folds of "
                                 f"{f.actor_fold_size} make {n}")
            if folds != list(range(n)):
                raise ValueError(f"folds.runs: list the {prot} protocol whole: {', '.join(want)}")
        return self


def _one_line(err: ValidationError, source: str) -> str:
    e = err.errors()[0]
    key = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
    msg = e["msg"].removeprefix("Value error, ")
    got = "" if e["type"] == "missing" or isinstance(e["input"], dict) else f", got {e['input']!r}"
    return f"{source}: {key}: {msg}{got}" if key else f"{source}: {msg}"


def parse_params(data: object, source: str = "params.yaml") -> Params:
    if not isinstance(data, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    try:
        return Params.model_validate(data)
    except ValidationError as err:
        raise ParamsError(_one_line(err, source)) from None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader read as DVC reads params.yaml (YAML 1.2): 1e-2 is a float, only
    true/false are booleans (`no` stays a string), and a key given twice is an error (a key that
    overrides one merged in with `<<: *anchor` is not given twice)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (line {key_node.start_mark.line + 1})",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


_Loader.yaml_implicit_resolvers = {k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
                                   for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    try:
        data = yaml.load(path.read_bytes().decode("utf-8"), Loader=_Loader)
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run from the repository root)") from None
    except IsADirectoryError:
        raise ParamsError(f"{path}: is a directory, not a params file") from None
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ParamsError(f"{path}: cannot read ({err.strerror})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        msg = getattr(err, "problem", None) or str(err).splitlines()[0]
        where = f" (line {mark.line + 1})" if mark is not None and "line" not in msg else ""
        raise ParamsError(f"{path}: not valid YAML: {msg}{where}") from None
    return parse_params(data, str(path))
