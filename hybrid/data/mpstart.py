"""Starting worker processes without fixing the process's default start method.

Starting a spawn or forkserver child makes multiprocessing record the default start
method ("fork" on Linux) as chosen: its preparation data include
``multiprocessing.get_start_method()``, which fixes it. A later ``import`` of Lava's
runtime then fails with "context has already been set" (it calls
``multiprocessing.set_start_method('fork')`` at import). :func:`default_kept` undoes that
record when it was not made before, as ``deploy.runtime.worker`` does in its processes."""
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


def _raise_exit(signum, frame):
    """Once: unwind as an exit; a second SIGTERM (the group's and then the pool's) is
    ignored, so it cannot land in the exit's own clean-up."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def _ignore_sigint() -> None:
    """A pool worker's start: SIGINT ignored (the parent handles Ctrl-C), and SIGTERM
    (the parent's ``Pool.terminate``) unwinds like an exit, so the worker's ``with``
    blocks run: its temporary folders are removed, not left in TMPDIR."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_exit)


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


def forkserver_context(preload: list[str]):
    """The forkserver context, its server started now with SIGINT ignored (and so in
    every worker it forks). Ctrl-C reaches the whole process group: a server still
    importing ``preload`` printed its own KeyboardInterrupt traceback, and its workers
    theirs; the parent alone handles it. Leaves the default start method unset."""
    from multiprocessing import forkserver

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(preload)
    main = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        with default_kept():
            forkserver.ensure_running()  # once per process; later calls return at once
    finally:
        if main:
            signal.signal(signal.SIGINT, before)
    return ctx


class HeldInterrupt:
    """``with HeldInterrupt() as held:`` Ctrl-C (SIGINT) raises KeyboardInterrupt at
    once, except inside ``with held.critical():``, where it is held until the block ends
    and raised there. h5py's C code calls Python weakref callbacks while it writes; a
    KeyboardInterrupt raised inside one is printed as "Exception ignored" and dropped,
    so a Ctrl-C during a cache write was lost and `hybrid prepare` went on to exit 0.
    Only in the main thread, and only where SIGINT is not ignored (a background job)."""

    def __init__(self) -> None:
        self.depth, self.pending, self.before = 0, False, None

    def __enter__(self) -> HeldInterrupt:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN):
            self.before = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc) -> None:
        if self.before is not None:
            signal.signal(signal.SIGINT, self.before)

    def _on_sigint(self, signum, frame) -> None:
        if self.depth:
            self.pending = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def critical(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.pending:
                self.pending = False
                raise KeyboardInterrupt

    def waiting(self, items):
        """Iterate ``items`` inside a critical block with Ctrl-C live while each next
        item is awaited (a worker's result: seconds to minutes), held while it is used."""
        it = iter(items)
        while True:
            self.depth -= 1
            try:
                if self.pending:
                    self.pending = False
                    raise KeyboardInterrupt
                item = next(it, _END)
            finally:
                self.depth += 1
            if item is _END:
                return
            yield item


_END = object()
