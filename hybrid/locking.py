"""One writer at a time for a run folder or a cache: an advisory ``flock`` on a lock file.

The operating system releases the lock when its process ends, however it ends (SIGKILL
included), so a lock is never stale and nothing needs cleaning up. The lock file holds
the pid of its holder (for the message). A run folder's lock file stays; a cache's
(``remove=True``) is deleted by its holder just before it lets go, so a finished
``prepare`` leaves only the cache. Deleting a lock file is safe only with the check
:func:`hold` makes after each lock: that the path still names the file it locked (another
process may have opened the file just before its holder deleted it, and then locked the
deleted file); if not, it opens the path afresh. A SIGKILLed holder leaves its file,
which the next holder takes over.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class LockedError(Exception):
    """Another process holds the lock; the message names the thing and that process."""


def _still_named(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


@contextlib.contextmanager
def hold(lock_file: str | Path, what: str, remove: bool = False):
    """Hold an exclusive lock on ``lock_file`` (created, with its folder) or raise
    :class:`LockedError` at once, naming ``what`` (e.g. "run folder runs/a"). With
    ``remove``, the lock file is deleted when the lock is released (while still held)."""
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(f"{what} is in use by another process (pid {pid}, lock "
                              f"{lock_file}); wait for it to end or choose another") from None
        if _still_named(fd, lock_file):
            break
        os.close(fd)  # we locked a file its last holder had just deleted: again
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock_file)  # still ours: nobody else can hold it now
        os.close(fd)
