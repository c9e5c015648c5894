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
import signal
import threading


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


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def spawn_pool(workers: int):
    """A spawn ``multiprocessing.Pool`` of ``workers`` whose children ignore SIGINT from
    their first instruction: Ctrl-C reaches the whole foreground process group, and a
    child interrupted while it imports would print its own KeyboardInterrupt traceback.
    The parent alone handles it (its ``finally`` terminates the pool). SIGINT is ignored
    in the parent only while the children are started (an ignored signal stays ignored
    across the spawn's exec, and Python then installs no handler of its own); the
    initializer ignores it again in case the disposition was not inherited."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        with default_kept():  # a later Lava import in this process still works
            return mp.get_context("spawn").Pool(workers, initializer=_ignore_sigint)
    finally:
        if main:
            signal.signal(signal.SIGINT, before)
