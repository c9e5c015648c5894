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
import os
import signal
import threading

from deploy.atomic import remove_scratch
from neuro.shutdown import held_signals


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


def _quiet_exit(signum, frame):
    """A pool worker's SIGTERM (the parent's ``Pool.terminate``, a scheduler's kill of
    the group): unwind as an exit, so the worker's ``with`` blocks run and its temporary
    folders are removed, with its stderr sent to /dev/null first: the exception lands
    anywhere, inside an import too (numpy then printed an ImportError traceback), and
    the parent alone reports. A second SIGTERM is ignored, so it cannot land in the
    exit's own clean-up."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    raise SystemExit(128 + signum)


def _pool_worker_start() -> None:
    """A pool worker's start: SIGINT ignored (the parent handles Ctrl-C; it arrives
    blocked by :func:`neuro.shutdown.held_signals`) and SIGTERM unwinds quietly
    (``_quiet_exit``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _quiet_exit)


def spawn_pool(workers: int):
    """A spawn ``multiprocessing.Pool`` of ``workers`` whose children never see Ctrl-C
    (it reaches the whole foreground process group; the parent alone handles it: its
    ``finally`` terminates the pool) and exit quietly on SIGTERM. The children start
    under :func:`neuro.shutdown.held_signals`: a signal that comes meanwhile is delivered once they
    are all started, after the pool is terminated."""
    pool = None
    try:
        with held_signals(), default_kept():  # a later Lava import here still works
            pool = mp.get_context("spawn").Pool(workers, initializer=_pool_worker_start)
    except BaseException:
        if pool is not None:
            stop_pool(pool)
        raise
    return pool


STOP_GRACE_S = 10.0  # how long a pool worker has to unwind after SIGTERM before SIGKILL
STOP_AFTER_KILL_S = 5.0  # how long the pool's own terminate may take after that


def stop_pool(pool, grace_s: float = STOP_GRACE_S) -> None:
    """Terminate ``pool`` and wait for its workers; one still alive ``grace_s`` seconds
    after its SIGTERM is killed (SIGKILL). Then remove the temporary folders its workers
    left (:func:`deploy.atomic.scratch_dir`).

    Why: a worker's Python-level SIGTERM handler (``_quiet_exit``) runs only when
    its main thread next runs Python code. A multi-threaded worker idle in
    ``SimpleQueue.get`` (a semaphore wait) whose signal was taken by another thread
    never does, and ``Pool.terminate`` then waits for it forever (seen in the test
    suite: `prepare` hung at its end with one worker left). A worker killed while it
    held a lock of the pool's queues (writing a result) leaves that lock taken for
    good, and ``Pool.terminate``, which puts its sentinels on those queues, then waits
    for ever too (a loop of the signal tests: `prepare` hung after SIGTERM): it runs in
    a thread of its own, given ``grace_s`` + ``STOP_AFTER_KILL_S`` seconds, after which
    its workers are dead and the pool's threads are left to the process's exit. What a
    killed worker leaves, the next writer removes (staging folders carry their
    writer's pid)."""
    procs = list(pool._pool)  # Pool keeps its workers here
    timer = threading.Timer(grace_s, _kill_alive, [pool._pool])
    timer.daemon = True
    timer.start()
    ender = threading.Thread(target=_terminate, args=(pool,), name="stop-pool", daemon=True)
    try:
        ender.start()
        ender.join(grace_s + STOP_AFTER_KILL_S)  # the timer has killed what was left
    finally:
        timer.cancel()
        remove_scratch({p.pid for p in [*procs, *pool._pool] if p.pid is not None})


def _terminate(pool) -> None:
    pool.terminate()
    pool.join()


def _kill_alive(procs) -> None:
    for p in list(procs):
        if p.exitcode is None:
            p.kill()


def forkserver_context(preload: list[str]):
    """The forkserver context, its server started now under :func:`neuro.shutdown.held_signals` (so
    it and every worker it forks never see Ctrl-C: a server still importing ``preload``
    printed its own KeyboardInterrupt traceback, and its workers theirs; the parent
    alone handles it). Leaves the default start method unset."""
    from multiprocessing import forkserver

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(preload)
    with held_signals(), default_kept():
        forkserver.ensure_running()  # once per process; later calls return at once
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
