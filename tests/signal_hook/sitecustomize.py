"""Test hook (tests/test_signal_every_command.py), loaded only where a test puts this
folder on a child's PYTHONPATH. With ``HYBRID_TEST_HOLD_START=DIR`` set, the first
worker process to start writes its pid to ``DIR/held`` and waits until the command
(its process group's leader) has ended, at most 10 s, before it goes on starting: a
spawned child before it reads its task; a child of multiprocessing's fork server
before it reads its process object, while the fork server waits 1.5 s before it tells
the parent the child's pid (the parent is then inside ``Process.start()``). A test
that signals the process group once ``DIR/held`` exists delivers the signal while a
worker is still starting, the window a faster machine hits by chance; a worker the
command left to go on starting does so after the command is gone."""
import os
import sys
import time

CHILD_S, SERVER_S = 10.0, 1.5
_forked = []


def _hold() -> None:
    try:
        fd = os.open(os.path.join(os.environ["HYBRID_TEST_HOLD_START"], "held"),
                     os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except (OSError, KeyError):
        return  # another worker holds (or held) its start
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    leader, end = os.getpgrp(), time.monotonic() + CHILD_S
    while time.monotonic() < end and _running(leader):
        time.sleep(0.05)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


def _server_holds() -> None:
    if not _forked:
        _forked.append(True)
        time.sleep(SERVER_S)


if os.environ.get("HYBRID_TEST_HOLD_START"):
    argv = " ".join(getattr(sys, "orig_argv", []))
    if "--multiprocessing-fork" in argv:  # a spawned worker, before it reads its task
        _hold()
    elif "multiprocessing.forkserver" in argv:  # the first child the fork server forks
        os.register_at_fork(after_in_child=lambda: None if _forked else _hold(),
                            after_in_parent=_server_holds)
