"""The project's error type and the entry-point wrapper that prints it as one line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable


class SerError(Exception):
    """An error a user can act on: its message is the whole story, no traceback needed."""


def run_cli(main: Callable[[], None]) -> None:
    """Run a stage's main(); a SerError becomes one line on stderr and exit status 1."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        main()
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
