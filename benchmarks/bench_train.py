"""Seconds per training batch (and per augmented epoch) of the CNN-LSTM for each CPU option.

Runs on generated tensors of the reference shapes, so it needs no corpus:

    .venv/bin/python benchmarks/bench_train.py --batches 3 --options fp32 cl+bf16 cl+bf16+compile

An option is '+'-joined flags: cl (channels-last), bf16 (autocast), compile (torch.compile),
fastdrop (ser.model.FastDropout instead of nn.Dropout), poolfirst (ser.model.BatchNormELUPool:
BN + ELU on the pooled maps), reuse (glibc keeps freed memory: see ser.cpu). Each option runs in
a process of its own. The epoch figure adds what train.py does around the training batches:
the forward passes of BN recalibration and of the validation clips.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time

import torch

from ser.cnn_lstm import CNNLSTM, prepare
from ser.cpu import MALLOC_ENV
from ser.params import load_params
from ser.stages.train_cnn_lstm import make_step, network_args


def seconds(fn, calls: int, device: str) -> float:
    """Mean wall time of one call of fn (0 when calls is 0)."""
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / max(calls, 1)


def bench(option: str, batches: int, batch_size: int, windows: int, warmup: int,
          epoch_clips: int, eval_batches: int, device: str) -> None:
    flags = set(option.split("+"))
    torch.manual_seed(0)
    params = load_params()  # the reference network as params.yaml defines it
    net = {**network_args(params.train_cnn_lstm, params.features_logmel.saved()),
           "fast_dropout": "fastdrop" in flags, "pool_first": "poolfirst" in flags}
    model = CNNLSTM(7, **net).to(device)
    model, autocast = prepare(model, device=device, channels_last="cl" in flags,
                              bf16="bf16" in flags, compile="compile" in flags)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.8)
    step = make_step(model, opt, autocast)
    x = torch.randn(batch_size, windows, 128, 128, device=device) * 20 - 40
    y = torch.randint(0, 7, (batch_size,), device=device)
    t_warm = seconds(lambda: step(x, y), warmup, device) * warmup
    per_batch = seconds(lambda: step(x, y), batches, device)
    model.eval()
    with torch.no_grad(), autocast():
        per_eval = seconds(lambda: model(x), eval_batches, device)
    per_epoch = per_batch * math.ceil(epoch_clips / batch_size) + per_eval * eval_batches
    print(f"{option:36s} {per_batch:6.3f} s/batch  {per_eval:6.3f} s/eval batch  "
          f"{per_epoch:6.1f} s/epoch (warm-up {t_warm:.1f} s, threads {torch.get_num_threads()}, "
          f"device {device})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--options", nargs="+",
                    default=["fp32", "cl+bf16", "cl+bf16+reuse", "cl+bf16+reuse+fastdrop",
                             "cl+bf16+reuse+fastdrop+poolfirst",
                             "cl+bf16+reuse+fastdrop+poolfirst+compile"])
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--windows", type=int, default=5)
    ap.add_argument("--epoch-clips", type=int, default=2688,
                    help="augmented training clips per epoch (an actor fold: 896 x 3)")
    ap.add_argument("--eval-batches", type=int, default=12,
                    help="forward-only batches per epoch (8 BN recalibration + 4 for 224 val clips)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single:
        bench(args.options[0], args.batches, args.batch_size, args.windows, args.warmup,
              args.epoch_clips, args.eval_batches, args.device)
        return
    for option in args.options:
        env = dict(os.environ)
        if "reuse" in option.split("+"):
            env.update(MALLOC_ENV)
        else:
            for k in MALLOC_ENV:
                env.pop(k, None)
        argv = [a for a in sys.argv[1:]]
        i = argv.index("--options") if "--options" in argv else None
        if i is not None:  # drop the option list, pass this one option
            j = i + 1
            while j < len(argv) and not argv[j].startswith("--"):
                j += 1
            argv = argv[:i] + argv[j:]
        subprocess.run([sys.executable, __file__, *argv, "--single", "--options", option],
                       env=env, check=True)


if __name__ == "__main__":
    main()
