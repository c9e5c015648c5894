"""One writer at a time for a run folder or a cache: an advisory ``flock`` on a lock file.

The operating system releases the lock when its process ends, however it ends (SIGKILL
included), so a lock is never stale and nothing needs cleaning up; the lock file itself
stays (it holds the pid of the last holder, for the message).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class LockedError(Exception):
    """Another process holds the lock; the message names the thing and that process."""


@contextlib.contextmanager
def hold(lock_file: str | Path, what: str):
    """Hold an exclusive lock on ``lock_file`` (created, with its folder) or raise
    :class:`LockedError` at once, naming ``what`` (e.g. "run folder runs/a")."""
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise LockedError(f"{what} is in use by another process (pid {pid}, lock "
                              f"{lock_file}); wait for it to end or choose another") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
