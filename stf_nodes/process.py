"""How every stf executable ends: without interpreter finalization.

Zenoh delivers samples on its own (Rust) threads. When one of them reaches for the Python
interpreter while it is being torn down, CPython ends that thread with a forced unwind that the
Rust side cannot pass on, and the process aborts ("FATAL: exception not rethrown", SIGABRT)
after a clean stop. So the console scripts do what a normal exit does up to finalization (the
threading module's shutdown hooks, which close the Zenoh session, then joining every
non-daemon thread), flush the logs and standard streams, and leave with the exit status.

The console scripts are attributes of this module: ``hbw_node = stf_nodes.process:hbw_node``
runs ``stf_nodes.hbw_node.main`` this way (see :func:`main_module`), and ``stf`` runs
``stf_nodes.cli.main.main``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn


def exit_process(code: int | None) -> NoReturn:
    """Stop threads as a normal exit would, flush, and end the process with ``code``."""
    threading._shutdown()  # the hooks and joins of a normal exit
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing left to say
            stream.flush()
    os._exit(code or 0)


def main_module(script: str) -> str:
    """The module whose ``main`` the console script ``script`` runs."""
    return 'stf_nodes.cli.main' if script == 'stf' else f'stf_nodes.{script}'


def __getattr__(name: str) -> Callable[[], NoReturn]:
    if name != 'stf' and not name.endswith('_node'):
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

    def run() -> NoReturn:
        exit_process(importlib.import_module(main_module(name)).main())

    run.__name__ = name
    return run
