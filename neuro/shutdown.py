"""Clean shutdown of Lava on SIGTERM as on Ctrl-C.

Python turns SIGINT into ``KeyboardInterrupt``, so ``finally`` blocks run, a
:class:`neuro.runner.LavaRunner` ends its Lava processes and temporary folders are
removed. SIGTERM (``kill``, a batch scheduler, a container stop) kills the process
outright: Lava's actor processes (about 480 MB each), its shared-memory manager and
resource tracker stay behind for good. :func:`sigterm_as_exit` makes SIGTERM raise
:class:`Terminated` (a ``SystemExit`` with status 143 = 128 + SIGTERM, as a shell
reports a terminated process) in the main thread instead, so the same clean-up runs.
A SIGTERM or Ctrl-C whose exception Python drops (it lands in an at-fork hook while
Lava forks its actors, in a ``__del__`` or a weakref callback) is delivered again from
normal code.

``LavaRunner`` holds it from the moment it starts compiling until it is closed, so
every user of the runner gets it; the ``hybrid`` CLI holds it for the whole command.
:func:`end_runtime` ends the OS processes of a Lava runtime at once (what an
interrupted run needs, as its processes block in their channels and cannot take a stop
command). :func:`lava_forks` guards the moment Lava forks its actors: the heap
(:func:`forkable_heap`) and the signals (SIGINT and SIGTERM held until the forks are
done; the actors ignore SIGINT, see there). :func:`held_signals` holds both while
worker processes start (the CLI's pools and loaders, ``run --workers``). Imports only
the standard library.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import sys
import threading

log = logging.getLogger(__name__)

EXIT_CODE = 128 + signal.SIGTERM  # 143


@contextlib.contextmanager
def forkable_heap():
    """Hold while Lava forks its actor processes (``create_runtime``, a first ``run``).

    A forked child has only the forking thread. When its garbage collector frees an
    object left in a reference cycle in the parent whose destructor joins threads of
    the parent (a PyAV decoder with frame threads: seen in CI, where Lava's runtime then
    waited forever for an actor that never answered), the child blocks for good. Collect
    here, where those threads exist, and freeze what is left, so a child never collects
    an object of the parent; the parent collects normally again afterwards.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


# the signals held while Lava forks (lava_forks); "on" is copied into the forked children
_forks = {"on": False, "pending": [], "previous": {}}
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _hold(signum, frame) -> None:
    if signum not in _forks["pending"]:
        _forks["pending"].append(signum)


def _die_with_parent() -> None:
    """Linux: this process gets SIGKILL when the process that forked it ends (however
    it ends, SIGKILL included), so that it never outlives its runtime."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent ended before prctl took effect
            os._exit(1)


def _in_forked_child() -> None:
    """A process Lava forks ignores SIGINT and SIGTERM, as multiprocessing's resource
    tracker does: both reach the whole process group (Ctrl-C, a scheduler's kill), and
    the parent alone handles them. It ends the actors (SIGKILL: :func:`end_runtime`)
    and shuts the shared-memory manager down by message, so that it unlinks its blocks
    and removes its ``pymp-*`` folder (killed by the signal itself, it left both, and
    each actor printed its own traceback). The child dies with the parent."""
    if not _forks["on"]:
        return
    _forks.update(on=False, pending=[], previous={})
    with contextlib.suppress(ValueError, OSError):  # not the main thread: leave them
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()


os.register_at_fork(after_in_child=_in_forked_child)


@contextlib.contextmanager
def lava_forks():
    """Hold while Lava forks its actor processes (``create_runtime``, a blocking ``run``).

    A Ctrl-C or SIGTERM that lands while Lava forks raised its exception inside an
    at-fork hook (logging's ``_releaseLock``), where Python prints "Exception ignored"
    and drops it: the command went on, or waited forever on a Lava semaphore (issue 27).
    Here both signals are held and delivered again once the forks are done, to the
    handlers in place before; the forked actors ignore SIGINT. Also freezes the heap
    (:func:`forkable_heap`). Holds the signals only in the main thread."""
    main = threading.current_thread() is threading.main_thread()
    with forkable_heap():
        if main:
            _forks.update(on=True, pending=[], previous={
                s: signal.signal(s, _hold) for s in HELD_SIGNALS})
        try:
            yield
        finally:
            if main:
                _forks["on"] = False
                for s, handler in _forks["previous"].items():
                    signal.signal(s, handler if handler is not None else signal.SIG_DFL)
                pending, _forks["pending"] = _forks["pending"], []
                for s in pending:  # to the handlers in place before (KeyboardInterrupt...)
                    signal.raise_signal(s)


@contextlib.contextmanager
def held_signals():
    """Hold while worker processes start (``prepare``'s pools, the loader's workers and
    fork server, ``run --workers``' workers). Within: Ctrl-C (SIGINT) and SIGTERM are
    held, then delivered when the block ends (to the handlers in place before:
    KeyboardInterrupt, :class:`Terminated`);
    SIGINT is also blocked in this thread, a mask that processes started within keep
    across spawn's exec and the fork server's forks, so that a Ctrl-C to the whole
    process group never interrupts a worker still starting (it printed "Fatal Python
    error: init_sys_streams" or a KeyboardInterrupt traceback). Hold it while workers
    start: a signal raised inside ``Process.start()`` after the fork left a worker the
    parent did not know; the parent then ended without stopping it, and the worker,
    reading its process object, printed a FileNotFoundError traceback for a lock the
    parent had already removed (a fresh-clone CI run). Main thread only (elsewhere a
    no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum, frame):
        if signum not in held:
            held.append(signum)

    before = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
    # the resource tracker, once started, unblocks SIGINT in this thread: start it first
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending one is held here
        for s, handler in before.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        for s in held:
            signal.raise_signal(s)


class Terminated(SystemExit):
    """Raised in the main thread by SIGTERM while :func:`sigterm_as_exit` is held."""

    def __init__(self) -> None:
        super().__init__(EXIT_CODE)


# one installation per process, shared by nested holders (a CLI command and its runners)
_state = {"pid": None, "depth": 0, "previous": signal.SIG_DFL, "terminating": False,
          "unraisable": None, "dropped": False, "said": False}
# a Ctrl-C Python dropped (_on_unraisable): None, "dropped" (not sent again yet) or
# "resent" (sent again to the main thread); the lock orders the re-send and the holder's end
_sigint = {"state": None, "timer": None, "lock": threading.Lock()}
os.register_at_fork(  # a child forked while the timer thread held the lock: a fresh one
    after_in_child=lambda: _sigint.update(state=None, timer=None, lock=threading.Lock()))


def _on_sigterm(signum, frame) -> None:
    if os.getpid() != _state["pid"]:
        # a forked child (a Lava actor, a pool or DataLoader worker) inherited this
        # handler: end the way SIGTERM's default would
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _state["terminating"]:  # a repeated SIGTERM must not interrupt the clean-up
        log.warning("SIGTERM again: already shutting down")
        return
    _state.update(terminating=True, dropped=False)
    if not _state["said"]:  # once: a re-delivered one (see _on_unraisable) says nothing
        _state["said"] = True
        log.warning("SIGTERM: shutting down cleanly")
    raise Terminated()


def _on_unraisable(info) -> None:
    """A signal handler's exception is dropped where Python ignores exceptions (an
    at-fork hook such as logging's while Lava forks its actors, a ``__del__``): deliver
    the SIGTERM again a moment later, from normal code, instead of losing it."""
    if isinstance(info.exc_value, Terminated) and _state["pid"] == os.getpid():
        # and if that one is lost too, the outermost holder raises it as it ends
        _state.update(terminating=False, dropped=True)
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()
        return
    if isinstance(info.exc_value, KeyboardInterrupt) and _state["pid"] == os.getpid():
        # a Ctrl-C: the same, sent to the main thread (so that it also interrupts a wait
        # there), and raised as the outermost holder ends if it was not sent again by then
        with _sigint["lock"]:
            if _sigint["timer"] is not None:
                _sigint["timer"].cancel()
            _sigint.update(state="dropped", timer=threading.Timer(0.05, _resend_sigint))
            _sigint["timer"].daemon = True
            _sigint["timer"].start()
        return
    (_state["unraisable"] or sys.__unraisablehook__)(info)


def _resend_sigint() -> None:
    with _sigint["lock"]:
        if _sigint["state"] != "dropped" or not callable(signal.getsignal(signal.SIGINT)):
            return  # the holder has ended (and raised it), or Ctrl-C is not Python's now
        _sigint["state"] = "resent"
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def _dropped_sigint() -> bool:
    """At the outermost holder's end, once its block ended without an exception: whether
    a dropped Ctrl-C is still to be raised (never sent again, or sent again and still
    pending: a main thread that blocks SIGINT, or one the kernel has not interrupted
    yet; taken here, so that it cannot land after the command)."""
    with _sigint["lock"]:
        state, _sigint["state"] = _sigint["state"], None
        if _sigint["timer"] is not None:
            _sigint["timer"].cancel()
            _sigint["timer"] = None
    if state != "resent":
        return state == "dropped"
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:  # delivered already: its KeyboardInterrupt was raised (or is, at the next line)
        return signal.sigtimedwait({signal.SIGINT}, 0) is not None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


@contextlib.contextmanager
def sigterm_as_exit():
    """While held (nestable), SIGTERM raises :class:`Terminated` in the main thread; a
    second SIGTERM during the clean-up is ignored (SIGKILL still ends the process). One
    that Python dropped (``_on_unraisable``) and that was not delivered again is
    raised as the outermost holder ends; so is a dropped Ctrl-C (KeyboardInterrupt),
    where the block ended without an exception.
    A no-op outside the main thread, and where the program set its own SIGTERM handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _state["pid"] != os.getpid():  # first use in this process (or a forked child)
        _state.update(pid=os.getpid(), depth=0, terminating=False, dropped=False,
                      said=False)
    if _state["depth"] == 0:
        current = signal.getsignal(signal.SIGTERM)
        if current not in (signal.SIG_DFL, None):  # the program's own choice: keep it
            yield
            return
        _state.update(previous=current, terminating=False, dropped=False, said=False,
                      unraisable=sys.unraisablehook)
        _sigint["state"] = None
        signal.signal(signal.SIGTERM, _on_sigterm)
        sys.unraisablehook = _on_unraisable
    _state["depth"] += 1
    ended = False
    try:
        yield
        ended = True
    finally:
        _state["depth"] -= 1
        if (_state["depth"] == 0 and threading.current_thread() is threading.main_thread()
                and _state["pid"] == os.getpid()):
            signal.signal(signal.SIGTERM, _state["previous"])
            sys.unraisablehook = _state["unraisable"] or sys.__unraisablehook__
            if _state["dropped"]:  # a SIGTERM Python dropped and never delivered again:
                _state["dropped"] = False  # the command must not end as if not signalled
                raise Terminated()
            if _dropped_sigint() and ended:  # the same for a Ctrl-C
                raise KeyboardInterrupt


def runtime_actors(rt) -> list:
    """The OS processes (multiprocessing.Process subclasses) of a Lava runtime; Lava 0.10
    internals, guarded: a missing attribute means none."""
    mi = getattr(rt, "_messaging_infrastructure", None)
    return list(getattr(mi, "actors", []))


def end_runtime(process) -> None:
    """End the OS processes of the Lava runtime that ``process`` (any Lava Process of
    the network) runs in, now, and release its shared memory, so nothing is left
    behind after an interrupted run. Uses Lava 0.10 runtime internals, guarded: a
    missing attribute means there is nothing to end."""
    rt = getattr(process, "_runtime", None)
    mi = getattr(rt, "_messaging_infrastructure", None)
    for actor in runtime_actors(rt):  # they ignore SIGTERM (lava_forks): SIGKILL
        try:
            if actor.is_alive():
                actor.kill()
                multiprocessing.Process.join(actor, 5)
        except ValueError:  # "process object is closed": Lava joined it already
            continue
        _record_lost_exit(actor)
    smm = getattr(mi, "_smm", None)
    if smm is not None:
        manager = getattr(smm, "_manager", None)
        try:
            smm.shutdown()
        finally:
            end_manager(manager)
    wd = getattr(rt, "_watchdog_manager", None)
    if wd is not None:
        wd.stop()
    if rt is not None:  # so that Runtime.__del__ does not try a stop() that would hang
        rt._is_started = False
        rt._is_running = False
        # nothing is left to stop: no Process.__del__ tries again (its stop joined and
        # closed every actor once more, per Lava process, as the command exited)
        for proc in getattr(getattr(rt, "_executable", None), "process_list", []):
            proc.runtime = None


def _record_lost_exit(actor) -> None:
    """Record the end of an actor that was reaped without its status being recorded (a
    Ctrl-C raised between the stdlib's ``waitpid`` and its store of the status), as
    killed. Without a status it reads as running for good: Lava's stop and
    multiprocessing's exit handler then fail to close it, a traceback per Lava process
    as the command exited (a CI run of `profile`). Stdlib internals, guarded."""
    popen = getattr(actor, "_popen", None)
    if popen is None or popen.poll() is not None:
        return
    try:
        pid, status = os.waitpid(actor.pid, os.WNOHANG)
    except ChildProcessError:  # reaped already: its status is lost
        popen.returncode = -signal.SIGKILL
        return
    if pid == actor.pid:
        popen.returncode = os.waitstatus_to_exitcode(status)


def runtime_shm_names(process) -> list[str]:
    """The names of the shared-memory blocks (``/dev/shm``) of the Lava runtime that
    ``process`` runs in: its channels' buffers, made when the runtime was created. A
    worker reports them so that its parent can unlink them should the worker be killed
    outright (:func:`unlink_shm`). Lava 0.10 internals, guarded: none found, none."""
    mi = getattr(getattr(process, "_runtime", None), "_messaging_infrastructure", None)
    handles = getattr(getattr(mi, "_smm", None), "_shared_memory_handles", [])
    return [h.name for h in handles]


def unlink_shm(names) -> None:
    """Unlink the shared-memory blocks ``names`` that still exist (a process killed by
    SIGKILL leaves its blocks; multiprocessing's resource tracker would unlink them
    only once the whole command had ended, with a warning), and take them off the
    tracker's list."""
    from multiprocessing import shared_memory

    for name in names:
        try:
            block = shared_memory.SharedMemory(name)
        except (FileNotFoundError, ValueError):  # unlinked already
            continue
        block.close()
        with contextlib.suppress(FileNotFoundError):
            block.unlink()


def end_manager(manager) -> None:
    """Shut ``manager`` (a started ``multiprocessing`` manager, e.g. Lava's shared-memory
    manager) down if its process still runs: the stdlib's shutdown runs only once, so
    one that a signal interrupted (a Ctrl-C inside Lava's stop) left the manager
    running, ignoring SIGINT and SIGTERM, and the process's exit then waited for it for
    good. It is asked to shut down (it unlinks its shared memory), then killed if it
    has not within 2 s. Stdlib internals, guarded."""
    proc = getattr(manager, "_process", None)
    if proc is None or not proc.is_alive():
        return
    from multiprocessing import managers

    with contextlib.suppress(Exception):
        conn = manager._Client(manager._address, authkey=manager._authkey)
        try:
            managers.dispatch(conn, None, "shutdown")
        finally:
            conn.close()
    proc.join(2)
    if proc.is_alive():
        proc.kill()
        proc.join(5)
