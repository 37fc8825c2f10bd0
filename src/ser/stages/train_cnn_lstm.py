"""Stage train_cnn_lstm: train the CNN-LSTM of one run (protocol and fold), early-stop on validation.

    bin/stage train_cnn_lstm --run random-0 --folds data/folds/random-0.csv \
        --features data/features/logmel --model models/cnn_lstm/random-0.model \
        --out runs/cnn_lstm/random-0 --checkpoint checkpoints/cnn_lstm/random-0.ckpt

A checkpoint after every epoch lets an interrupted run resume where it stopped and end with
the same model as an uninterrupted one (per-epoch shuffles come from (seed, epoch); the torch
RNG, optimiser and scheduler states travel in the checkpoint). A checkpoint is resumed only
when it was written from what DVC keys this stage on: the same params, features, fold and
training code (the modules dvc.yaml lists for it: ser.deps); runtime settings (params.yaml
`runtime`: device, threads, compile, memory reuse) are not part of it. It holds tensors and
plain values only and is read with weights_only, so reading one runs no code. It is kept when training ends: a rerun of a finished run (e.g. after
`dvc repro` was killed while its trainer went on) writes the same outputs without training. A
lock keeps a second trainer off the same run. The outputs are written once, at the end, each
atomically: the model file (ser.modelfile) and the run folder (predictions, metrics, the
per-epoch log).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import fcntl
import hashlib
import json
import logging
import os
import pickle
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ser import deps, modelfile
from ser.cnn_lstm import CNNLSTM, prepare, recalibrate_batchnorm, resolve_device
from ser.cpu import reexec_with_reused_memory
from ser.errors import SerError, run_cli
from ser.io import atomic_dir, atomic_path, write_json
from ser.labels import class_names
from ser.params import PARAMS_FILE, Runtime, TrainCnnLstm, load_params, parse_run
from ser.predictions import predictions_frame, split_summaries
from ser.store import FEATURE_PARAMS, LOGMEL_ARRAY, LOGMEL_INDEX, load_logmel, read_fold

log = logging.getLogger("train_cnn_lstm")
FAMILY = "cnn_lstm"
MODULE = "ser.stages.train_cnn_lstm"


def make_step(model: nn.Module, opt: torch.optim.Optimizer, autocast,
              scheduler: torch.optim.lr_scheduler.LRScheduler | None = None):
    """One SGD step; returns (summed loss, correct count) as tensors (no sync per batch)."""
    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model.train()
        opt.zero_grad(set_to_none=True)
        with autocast():
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()
        return loss.detach() * len(y), (logits.argmax(1) == y).sum()
    return step


def batches(x: np.ndarray, rows: np.ndarray, batch_size: int, device: str) -> Iterator[torch.Tensor]:
    for i in range(0, len(rows), batch_size):
        yield torch.from_numpy(np.asarray(x[rows[i:i + batch_size]], dtype=np.float32)).to(device)


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, rows: np.ndarray, batch_size: int,
                   autocast, device: str) -> torch.Tensor:
    model.eval()
    out = []
    for xb in batches(x, rows, batch_size, device):
        with autocast():
            out.append(model(xb).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


def code_version() -> str:
    """A hash of the training code, the modules this stage runs that can change its model (those
    dvc.yaml lists: ser.deps): in every model file and checkpoint."""
    return f"training code {deps.code_hash(MODULE)[:12]}"


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(p: TrainCnnLstm, classes: list[str], features: Path, fold: Path) -> str:
    """What a checkpoint must match to be resumed, as DVC keys the stage: the training params and
    classes, the content of every input (features, their index, the fold's table) and the
    training code."""
    h = hashlib.sha256(json.dumps({"train_cnn_lstm": p.model_dump(), "classes": classes},
                                  sort_keys=True).encode())
    for f in (features / LOGMEL_ARRAY, features / LOGMEL_INDEX, fold):
        h.update(_file_hash(f).encode())
    h.update(code_version().encode())
    return h.hexdigest()


@contextlib.contextmanager
def exclusive(checkpoint: Path) -> Iterator[None]:
    """Hold `<checkpoint>.lock` while training: a second trainer on the same run stops at once.

    The lock is the kernel's (flock), so it goes with its process, however that ends.
    """
    lock = checkpoint.with_name(checkpoint.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SerError(f"{checkpoint}: another trainer is running this run (it holds {lock}); "
                           "stop it or wait for it") from None
        yield
    finally:
        os.close(fd)


def read_checkpoint(path: Path) -> dict | None:
    """The checkpoint, or None when there is none; an unreadable one is set aside, said in one line.

    weights_only: tensors and plain values only, so a planted file cannot run code here."""
    if not path.exists():
        return None
    try:
        # on the CPU: RNG states must stay ByteTensors there; load_state_dict moves the rest
        ck = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ck, dict) or "fingerprint" not in ck:
            raise ValueError("not a checkpoint of this stage")
        return ck
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same thing here
        bad = path.with_name(path.name + ".bad")
        os.replace(path, bad)
        why = ("it holds objects other than tensors and plain values" if isinstance(
            err, pickle.UnpicklingError) else str(err).splitlines()[0] if str(err) else type(err).__name__)
        log.warning("%s: unreadable checkpoint (%s), moved to %s; starting fresh", path, why, bad)
        return None


def save_torch(obj: object, path: Path) -> None:
    """torch.save, atomically, with the same bytes for the same object.

    Saved under a path, torch names the archive's folder after the file, here a random temporary
    name; saved to an open file it uses a fixed name.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def network_args(p: TrainCnnLstm, features: dict) -> dict:
    """The network's constructor arguments (saved in the model file): the train_cnn_lstm params
    that shape it, and one window's (mels, frames) from the feature params."""
    return {"filters": list(p.filters), "pools": list(p.pools), "kernel": p.kernel,
            "dropout": p.dropout, "lstm_units": p.lstm_units, "lstm_layers": p.lstm_layers,
            "lstm_dropout": p.lstm_dropout, "bn_momentum": p.bn_momentum, "bn_eps": p.bn_eps,
            "input_shape": [features["n_mels"], features["win_size"]],
            "fast_dropout": p.fast_dropout, "pool_first": p.pool_first, "lstm": p.lstm}


def select_rows(index: pd.DataFrame, p: TrainCnnLstm) -> dict[str, np.ndarray]:
    """Rows of the feature array: every training copy (augmented too); originals for val/test."""
    train = index[index["split"] == "train"]
    if p.max_train_clips:
        clips = np.sort(train["clip_id"].unique())
        keep = np.random.default_rng(p.seed).permutation(clips)[:p.max_train_clips]
        train = train[train["clip_id"].isin(keep)]
    originals = index[index["copy"] == 0]
    # copies: pandas hands out read-only views, which torch warns about when indexing with them
    return {"train": train["row"].to_numpy(copy=True),
            "val": originals.loc[originals["split"] == "val", "row"].to_numpy(copy=True),
            "test": originals.loc[originals["split"] == "test", "row"].to_numpy(copy=True)}


class Trainer(NamedTuple):
    """What training runs on: the network (raw and as prepared), its optimiser, schedule, step."""
    raw: CNNLSTM
    model: nn.Module
    autocast: Callable[[], contextlib.AbstractContextManager]
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    step: Callable
    device: str


def make_trainer(p: TrainCnnLstm, network: dict, n_classes: int, device: str,
                 compile: bool = False) -> Trainer:
    raw = CNNLSTM(n_classes, **network)
    model, autocast = prepare(raw, device=device, channels_last=p.channels_last, bf16=p.bf16,
                              compile=compile)
    opt = torch.optim.SGD(raw.parameters(), lr=p.lr, momentum=p.momentum)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: 1.0 / (1.0 + p.decay * it))
    return Trainer(raw, model, autocast, opt, sched, make_step(model, opt, autocast, sched), device)


def fresh_state() -> dict:
    return {"epoch": 0, "best_acc": -1.0, "best_epoch": 0, "wait": 0, "best_state": None,
            "history": []}


def restore(checkpoint: Path, fp: str, t: Trainer) -> dict:
    """The training state to go on from: the checkpoint's when it matches `fp` (the trainer's
    weights, optimiser, schedule and RNG are set from it), else a fresh one."""
    ck = read_checkpoint(checkpoint)
    if ck is None:
        return fresh_state()
    if ck.get("fingerprint") != fp:
        log.info("starting fresh: %s was written from other params, features, fold or "
                 "training code", checkpoint)
        return fresh_state()
    t.raw.load_state_dict(ck["model"])
    t.opt.load_state_dict(ck["opt"])
    t.sched.load_state_dict(ck["sched"])
    torch.set_rng_state(ck["rng"])
    if t.device == "cuda" and ck.get("cuda_rng") is not None:  # the GPU's dropout masks
        torch.cuda.set_rng_state(ck["cuda_rng"])
    log.info("resuming from %s after epoch %d", checkpoint, ck["state"]["epoch"])
    return ck["state"]


def save_checkpoint(checkpoint: Path, fp: str, t: Trainer, st: dict) -> None:
    save_torch({"fingerprint": fp, "model": t.raw.state_dict(), "opt": t.opt.state_dict(),
                "sched": t.sched.state_dict(), "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state() if t.device == "cuda" else None,
                "state": st}, checkpoint)


def train_epoch(t: Trainer, p: TrainCnnLstm, x: np.ndarray, y_all: torch.Tensor,
                rows: dict[str, np.ndarray], epoch: int) -> dict:
    """One epoch: the training batches in this epoch's order, BN recalibration, validation."""
    n_train = len(rows["train"])
    t0 = time.perf_counter()
    order = rows["train"][np.random.default_rng([p.seed, epoch]).permutation(n_train)]
    loss_sum = torch.zeros(()); correct = torch.zeros((), dtype=torch.long)
    bar = tqdm(total=n_train, desc=f"epoch {epoch + 1}/{p.epochs}", unit="clip",
               leave=False, dynamic_ncols=True)
    for i, xb in enumerate(batches(x, order, p.batch_size, t.device)):
        yb = y_all[order[i * p.batch_size:(i + 1) * p.batch_size]].to(t.device)
        l, c = t.step(xb, yb)
        loss_sum += l.cpu(); correct += c.cpu()
        bar.update(len(yb))
        if i % 5 == 0:
            bar.set_postfix(loss=f"{loss_sum.item() / bar.n:.3f}", acc=f"{correct.item() / bar.n:.3f}")
    bar.close()
    t_train = time.perf_counter() - t0
    with t.autocast():
        recalibrate_batchnorm(t.raw, batches(x, order, p.batch_size, t.device),
                              p.bn_recalibration_batches)
    val_logits = predict_logits(t.raw, x, rows["val"], p.batch_size, t.autocast, t.device)
    y_val = y_all[rows["val"]]
    return {"epoch": epoch + 1,
            "train_loss": loss_sum.item() / n_train, "train_acc": correct.item() / n_train,
            "val_loss": F.cross_entropy(val_logits, y_val).item(),
            "val_acc": (val_logits.argmax(1) == y_val).float().mean().item(),
            "val_classes_predicted": int(val_logits.argmax(1).unique().numel()),
            "lr": t.sched.get_last_lr()[0], "train_seconds": t_train,
            "seconds": time.perf_counter() - t0}


def fit(p: TrainCnnLstm, x: np.ndarray, index: pd.DataFrame, classes: list[str], network: dict, *,
        checkpoint: Path, fp: str, rt: Runtime) -> tuple[Trainer, dict, dict[str, np.ndarray]]:
    """Train with early stopping, resuming from the checkpoint; return the trainer with the
    weights of its best validation epoch, the training state and the rows of each split.
    `rt` says where and how fast (device, threads, compile), not what is learnt."""
    device = resolve_device(rt.device)
    if rt.threads:
        torch.set_num_threads(rt.threads)
    torch.manual_seed(p.seed)
    rows = select_rows(index, p)
    if len(rows["train"]) == 0 or len(rows["val"]) == 0:
        raise SerError("train_cnn_lstm: the training or validation split is empty")
    label_of = {c: i for i, c in enumerate(classes)}
    y_all = torch.tensor(index["label"].map(label_of).fillna(-1).to_numpy(dtype=np.int64))
    t = make_trainer(p, network, len(classes), device, rt.compile)
    st = restore(checkpoint, fp, t)
    log.info("training on %d clips (%d val) for up to %d epochs, device %s, bf16 %s",
             len(rows["train"]), len(rows["val"]), p.epochs, device,
             t.autocast.keywords["enabled"])
    for epoch in range(st["epoch"], p.epochs):
        if st["wait"] >= p.patience:
            break
        h = train_epoch(t, p, x, y_all, rows, epoch)
        st["history"].append(h)
        if h["val_acc"] > st["best_acc"]:
            st.update(best_acc=h["val_acc"], best_epoch=epoch + 1, wait=0,
                      best_state=copy.deepcopy(t.raw.state_dict()))
        else:
            st["wait"] += 1
        st["epoch"] = epoch + 1
        log.info("epoch %d: train loss %.3f acc %.3f | val loss %.3f acc %.3f (%d classes) | "
                 "%.0f s (%.0f s training)", epoch + 1, h["train_loss"], h["train_acc"],
                 h["val_loss"], h["val_acc"], h["val_classes_predicted"], h["seconds"],
                 h["train_seconds"])
        save_checkpoint(checkpoint, fp, t, st)
    t.raw.load_state_dict(st["best_state"])
    return t, st, rows


def summary_info(t: Trainer, p: TrainCnnLstm, st: dict, n_train: int, rt: Runtime) -> dict:
    """How training went: best epoch, epochs run, timings and the speed settings used."""
    total = sum(h["seconds"] for h in st["history"])
    return {"best_epoch": st["best_epoch"], "epochs_run": st["epoch"],
            "train_time_s": round(total, 1),
            "seconds_per_epoch": round(total / max(len(st["history"]), 1), 1),
            # the training batches alone, without BN recalibration and validation
            "train_seconds_per_epoch": round(float(np.mean(
                [h["train_seconds"] for h in st["history"]])), 1),
            "train_clips": n_train, "device": t.device,
            "bf16": t.autocast.keywords["enabled"], "channels_last": p.channels_last,
            "compile": rt.compile, "threads": torch.get_num_threads()}


def evaluate(t: Trainer, p: TrainCnnLstm, x: np.ndarray, index: pd.DataFrame,
             rows: dict[str, np.ndarray], classes: list[str]) -> pd.DataFrame:
    """The predictions table of the validation and test clips."""
    parts = []
    for split in ("val", "test"):
        r = rows[split]
        logits = predict_logits(t.raw, x, r, p.batch_size, t.autocast, t.device)
        proba = torch.softmax(logits, 1).numpy()
        sub = index.set_index("row").loc[r]
        parts.append(predictions_frame(sub["clip_id"], [split] * len(r), sub["label"], proba,
                                       classes))
    return pd.concat(parts, ignore_index=True)


def write_run(out: Path, pred: pd.DataFrame, metrics: dict, history: list[dict]) -> None:
    """The run folder, whole and atomically: predictions, metrics and the per-epoch log (dvclive)."""
    from dvclive import Live
    with atomic_dir(out) as tmp:
        pred.to_csv(tmp / "predictions.csv", index=False)
        write_json(tmp / "metrics.json", metrics)
        live = Live(str(tmp / "live"), dvcyaml=None, save_dvc_exp=False, report=None)
        for h in history:
            for k in ("train_loss", "train_acc", "val_loss", "val_acc"):
                part, name = k.split("_")
                live.log_metric(f"{part}/{name}", h[k])
            live.next_step()
        live.end()


def fold_index(index: pd.DataFrame, fold: pd.DataFrame) -> pd.DataFrame:
    """The feature index with each row's label and split in this fold."""
    return index.merge(fold[["clip_id", "label", "split"]], on="clip_id", how="left",
                       validate="many_to_one")


def run(params_path: Path, run_name: str, fold_path: Path, features: Path, model_path: Path,
        out: Path, checkpoint: Path) -> dict:
    params = load_params(params_path)
    p = params.train_cnn_lstm
    protocol, k = parse_run(run_name)
    x, index = load_logmel(features)
    fold = read_fold(fold_path, class_names(params.prepare.classes))
    missing = set(fold["clip_id"]) - set(index["clip_id"])
    if missing:
        raise SerError(f"{features}: no log-mel features for clip {sorted(missing)[0]} of {fold_path}")
    try:
        features_meta = json.loads((features / FEATURE_PARAMS).read_text())
    except (FileNotFoundError, json.JSONDecodeError) as err:
        raise SerError(f"{features / FEATURE_PARAMS}: unreadable feature params ({err})") from None
    index = fold_index(index, fold)
    classes = [c for c in class_names(params.prepare.classes) if c in set(fold["label"])]
    network = network_args(p, features_meta)
    with exclusive(checkpoint):
        fp = fingerprint(p, classes, features, fold_path)
        t, st, rows = fit(p, x, index, classes, network, checkpoint=checkpoint, fp=fp,
                          rt=params.runtime)
        pred = evaluate(t, p, x, index, rows, classes)
        info = summary_info(t, p, st, len(rows["train"]), params.runtime)
        modelfile.write(model_path, {
            "family": FAMILY, "classes": classes,
            "features": {"family": "logmel", "params": features_meta},
            "network": network, "training": p.model_dump(), "run": run_name,
            "protocol": protocol, "fold": k, "code": code_version(), "torch": torch.__version__,
        }, {modelfile.WEIGHTS: modelfile.tensors_bytes(t.raw.state_dict())})
        metrics = {**split_summaries(pred), **info}
        write_run(out, pred, metrics, st["history"])
    log.info("%s: wrote %s, val acc %.3f, test acc %.3f (best epoch %d of %d)", run_name,
             out / "metrics.json", metrics["val"]["accuracy"], metrics["test"]["accuracy"],
             info["best_epoch"], info["epochs_run"])
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--run", required=True, help="the run, e.g. random-0 (protocol-fold)")
    ap.add_argument("--folds", type=Path, required=True, help="the run's table of the folds stage")
    ap.add_argument("--features", type=Path, required=True, help="folder of the logmel stage")
    ap.add_argument("--model", type=Path, required=True, help="where to write the model file")
    ap.add_argument("--out", type=Path, required=True, help="folder for predictions, metrics, log")
    ap.add_argument("--checkpoint", type=Path, required=True, help="per-epoch checkpoint (resume)")
    a = ap.parse_args()
    if load_params(a.params).runtime.reuse_memory:
        reexec_with_reused_memory(MODULE)
    run(a.params, a.run, a.folds, a.features, a.model, a.out, a.checkpoint)


if __name__ == "__main__":
    run_cli(main)
