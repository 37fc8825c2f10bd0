"""For the benchmark scripts: run as `ser predict` and training run, with glibc set to reuse freed
memory (ser.cpu: the CNN-LSTM's forward passes ran 4x faster so). ser.cpu's own helper restarts
`python -m MODULE`; a benchmark is a script, so it restarts the script."""

from __future__ import annotations

import os
import sys

from ser.cpu import MALLOC_ENV


def reexec_script() -> None:
    """Restart the running script with MALLOC_ENV set, unless it is set already."""
    if os.environ.get("MALLOC_MMAP_MAX_") is None:
        os.environ.update(MALLOC_ENV)
        os.execv(sys.executable, [sys.executable, *sys.argv])
