"""The reader's two helpers for speed: a tracing thread that runs a GOP's P-frames in
order while the next frames decode (optional: it lowers wall time on an idle machine
and costs CPU time, 5-25 % of an extraction measured on 2 loaded cores, so by default
the calls run inline), and a recycler that hands a dropped GOP's output arrays to the
next GOP instead of fresh ones."""
from __future__ import annotations

import sys
import threading
import weakref
from queue import Empty, SimpleQueue

import numpy as np


class TraceWorker:
    """One thread running submitted calls in order. ``wait`` returns once every call
    submitted so far has finished *and dropped its arguments* (so a recycled array is
    not still referenced by a finished call), re-raising the first error. The decoder
    waits only when a GOP closes, not per frame: on a loaded machine each wait is a
    wake-up the scheduler may take milliseconds over. ``with`` stops the thread.
    ``thread=False``: no thread, each call runs when submitted (its error raised
    there), the least CPU time."""

    def __init__(self, thread: bool = True) -> None:
        self.queue: SimpleQueue = SimpleQueue()
        self.done = threading.Semaphore(0)
        self.pending = 0
        self.state = _State()
        self.inline = not thread
        if self.inline:
            return
        # the thread holds no reference to this object: when it is dropped unclosed (a
        # Ctrl-C between construction and ``with``, or inside ``__exit__``), the
        # finalizer stops the thread instead of leaving it waiting on the queue. Made
        # before the thread starts: a Ctrl-C inside ``start()`` left a thread running
        # with no finalizer to stop it
        self._finalizer = weakref.finalize(self, self.state.stop.set)
        self.thread = threading.Thread(target=_serve, args=(self.queue, self.done, self.state),
                                       name="hybrid-trace", daemon=True)
        self.thread.start()

    @property
    def error(self) -> BaseException | None:
        return self.state.error

    @error.setter
    def error(self, value: BaseException | None) -> None:
        self.state.error = value

    def submit(self, fn, *args) -> None:
        if self.inline:
            fn(*args)
            return
        self.pending += 1
        self.queue.put((fn, *args))

    def wait(self) -> None:
        for _ in range(self.pending):
            self.done.acquire()
        self.pending = 0
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def __enter__(self) -> TraceWorker:
        return self

    def __exit__(self, *exc) -> None:
        if self.inline:
            return
        try:
            self.queue.put(None)
            self.thread.join()
        finally:  # a Ctrl-C landing here still ends the thread
            self.state.stop.set()


class _State:
    """What the tracing thread shares with its owner: the first error, and the stop."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.stop = threading.Event()


def _serve(queue: SimpleQueue, done: threading.Semaphore, state: _State) -> None:
    """The tracing thread: run each call in order until ``None`` or ``state.stop``."""
    while True:
        try:
            item = queue.get(timeout=0.2)
        except Empty:
            if state.stop.is_set():
                return
            continue
        if item is None:
            return
        try:
            if state.error is None:  # after an error the rest of the GOP is moot
                item[0](*item[1:])
        except BaseException as e:  # handed to the decoding thread by wait()
            state.error = e
        finally:
            del item  # drop the arguments before saying done
            done.release()


def _refs(a: np.ndarray) -> int:
    return sys.getrefcount(a)


_t = (np.empty(1),)
_UNSHARED = _refs(_t[0])  # references to an array only a Recycler's tuple holds
del _t


class Recycler:
    """Output arrays for the GOPs of one video. A set nothing outside references any
    more (its GOP, every view of it and every wrapper of its buffer dropped by the
    consumer) is handed out again instead of a fresh one: fresh pages for a 19 MB GOP
    (340x256) cost ~0.1 ms a frame in page faults. A set still referenced is never
    reused; a consumer that keeps its GOPs just gets fresh arrays. A consumer that drops
    each GOP before asking for the next (``hybrid extract``) is served by one set."""

    KEEP = 3  # the GOP being filled, the one the consumer holds, one spare

    def __init__(self) -> None:
        self.sets: list[tuple[np.ndarray, np.ndarray]] = []

    def take(self, slots: int, h: int, w: int,
             dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
        """(mv (slots, H, W, 2), residual (slots, H, W, 3)) of ``dtype``, uninitialised."""
        shape = (slots, h, w, 2)
        for s in self.sets:
            if (s[0].shape == shape and s[0].dtype == dtype and _refs(s[0]) <= _UNSHARED
                    and _refs(s[1]) <= _UNSHARED):
                return s
        s = (np.empty(shape, dtype), np.empty((slots, h, w, 3), dtype))
        self.sets = [s] + self.sets[:self.KEEP - 1]
        return s
