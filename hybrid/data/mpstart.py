"""Starting worker processes without fixing the process's default start method.

Starting a spawn or forkserver child makes multiprocessing record the default start
method ("fork" on Linux) as chosen: its preparation data include
``multiprocessing.get_start_method()``, which fixes it. A later ``import`` of Lava's
runtime then fails with "context has already been set" (it calls
``multiprocessing.set_start_method('fork')`` at import). :func:`default_kept` undoes that
record when it was not made before, as ``deploy.worker`` does in its processes."""
from __future__ import annotations

import contextlib
import multiprocessing as mp


@contextlib.contextmanager
def default_kept():
    """Within: start processes from explicit contexts; after: the default start method
    is as unset as it was before."""
    before = mp.get_start_method(allow_none=True)
    try:
        yield
    finally:
        if before is None:
            mp.set_start_method(None, force=True)
