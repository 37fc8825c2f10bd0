"""The project's error type and the entry-point wrapper that prints it as one line."""

from __future__ import annotations

import errno
import logging
import sys
from collections.abc import Callable


FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # a disk, quota or file size full: no bug


class SerError(Exception):
    """An error a user can act on: its message is the whole story, no traceback needed."""


def run_cli(main: Callable[[], None]) -> None:
    """Run a stage's main(); a SerError, or a full disk, becomes one line on stderr and exit
    status 1 (writes are atomic: what was written whole stays, a half-written file does not)."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        main()
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except OSError as err:
        if err.errno not in FULL:
            raise
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}cannot write ({err.strerror}): make room and rerun; what was written "
              "whole is kept", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
