"""The ``qeprop`` console script: catch Ctrl-C from the first instant, then run the CLI.

Imported only by the console script. Until :func:`qeprop.cli.main` takes over, an interrupt
(while the command line and numpy/scipy are still being imported) ends the process with the
usual one line and exit status 130 instead of a traceback; nothing has been computed yet.
"""

from __future__ import annotations

import os
import signal
import sys


def _early_interrupt(signum: int, frame: object) -> None:
    sys.stderr.write("qeprop: interrupted\n")
    sys.stderr.flush()
    os._exit(130)


signal.signal(signal.SIGINT, _early_interrupt)


def main() -> int:
    """Import the command line and hand Ctrl-C back to it (it checkpoints runs on interrupt)."""
    from .cli import main as cli_main

    signal.signal(signal.SIGINT, signal.default_int_handler)
    return cli_main()
