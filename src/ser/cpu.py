"""CPU speed settings that change how fast training runs, not what it learns."""

from __future__ import annotations

import os
import sys

# glibc reads these at start-up: never hand big blocks back to the kernel, keep 1 GB spare.
MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(100 * 10**9),
              "MALLOC_TOP_PAD_": str(10**9)}


def reexec_with_reused_memory(module: str) -> None:
    """Restart this process as `python -m module ...` with glibc set to reuse freed memory.

    Every training step allocates activations of hundreds of MB; by default glibc serves each
    from a fresh mmap and unmaps it on free, so every step pays page faults on all of them.
    Measured (benchmarks/bench_train.py, 2 cores): 3.4 -> 1.6 s per batch of the reference
    model with channels-last + bf16. Does nothing off Linux or when already set. The restart
    runs with -P: the current folder is not put on sys.path, so a stray ser.py there cannot run.
    """
    if not sys.platform.startswith("linux") or os.environ.get("MALLOC_MMAP_MAX_") is not None:
        return
    os.environ.update(MALLOC_ENV)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-P", "-m", module, *sys.argv[1:]])
