"""Waiting on a Lava runtime without waiting forever for a process that died.

Lava 0.10 runs every ProcessModel in an OS process of its own. When one raises, it
reports the error to its runtime service and ends; the host, blocked in a channel
receive (``CspRecvPort.recv``, ``Runtime.wait``) for data that dead process would have
sent, then waits forever at no CPU (seen with Lava's own Conv model on NumPy 2: issue
27). :class:`Watch` waits instead in slices of ``SLICE_S`` on the channel itself (its
queue or semaphore, so data is taken the moment it arrives) and checks the runtime's
processes between slices: a process that ended mid-run raises :class:`LavaProcessError`
carrying its exception and traceback. Lava 0.10 internals, guarded (a port without them
is polled with ``probe()``; :func:`neuro.shutdown.runtime_actors`). Imports only the
standard library.
"""
from __future__ import annotations

import queue
import signal
import time

from neuro.shutdown import runtime_actors

SLICE_S = 0.2  # longest wait between two checks of the runtime's processes


class LavaProcessError(RuntimeError):
    """A process of the Lava runtime ended while the host waited for it.

    ``str()`` is one line naming the process and its error; ``detail`` holds the
    process's traceback (empty when it was killed by a signal)."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def _exitcode(actor) -> int | None:
    """The actor's exit code, None while it runs (a joined, closed one: 0)."""
    try:
        return actor.exitcode
    except ValueError:  # Lava closes an actor it joined
        return 0


def dead_actor_error(rt) -> LavaProcessError | None:
    """The error of the first process of runtime ``rt`` that has ended, if any: its
    exception when it raised one, else its exit code or signal."""
    ended = [(a, code) for a in runtime_actors(rt) if (code := _exitcode(a)) is not None]
    if not ended:
        return None
    for actor, _ in ended:  # a process that raised reports it; the others followed it
        try:
            exc = actor.exception
        except (OSError, ValueError):  # its pipe is already closed
            exc = None
        if exc:
            err, tb = exc
            return LavaProcessError(f"a Lava process failed: {type(err).__name__}: {err}",
                                    tb)
    actor, code = ended[0]
    how = (f"killed by {signal.Signals(-code).name}" if code < 0
           else f"ended with exit code {code}")
    return LavaProcessError(f"a Lava process (pid {actor.pid}) {how} mid-run")


class Watch:
    """Waits for a Lava runtime's channels while its processes live."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime

    def check(self) -> None:
        """Raise :class:`LavaProcessError` if a process of the runtime has ended."""
        err = dead_actor_error(self.runtime)
        if err is not None:
            raise err

    def _until(self, ready_within) -> None:
        while not ready_within(SLICE_S):
            self.check()

    def recv_ready(self, port) -> None:
        """Return once ``port`` (a Lava ``CspRecvPort``) holds data, so that its
        ``recv()`` does not block; raise :class:`LavaProcessError` once a runtime
        process has ended."""
        q = getattr(port, "_queue", None)

        def ready_within(s: float) -> bool:
            if q is None:
                time.sleep(s / 20)
                return port.probe()
            try:
                q.get(timeout=s, peek=True)  # wakes as the data arrives; takes nothing
            except queue.Empty:
                return False
            return True

        self._until(ready_within)

    def send_ready(self, port) -> None:
        """Return once ``port`` (a Lava ``CspSendPort``) has room, so that its ``send()``
        does not block; raise :class:`LavaProcessError` once a runtime process has
        ended."""
        sem = getattr(port, "_semaphore", None)

        def ready_within(s: float) -> bool:
            if sem is None:
                time.sleep(s / 20)
                return port.probe()
            if not sem.acquire(timeout=s):
                return False
            sem.release()  # room was there; send() takes it
            return True

        self._until(ready_within)

    def run_done(self) -> None:
        """Return once every runtime service has answered the current run (so that
        ``Runtime.wait()`` does not block); raise :class:`LavaProcessError` once a
        runtime process has ended."""
        for port in getattr(self.runtime, "service_to_runtime", []):
            self.recv_ready(port)
