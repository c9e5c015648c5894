"""Atomic writes: a file or a whole folder appears complete or not at all.

- :func:`write_file` writes through a temporary file beside the target, fsyncs it and
  renames it over the target, so a kill at any moment leaves the old file or the new
  one, never half of one.
- :func:`staged_dir` stages a folder beside its target (a hidden ``.NAME.partial-PID-*``
  folder; one a killed process left is removed by the next writer: :func:`remove_orphans`),
  fsyncs what was written and renames the folder into place only when the ``with``
  block ends without error; on an error the staging folder is removed. A
  reader therefore never finds a half-written folder under the target name.
- :func:`write_path` is :func:`write_file` for writers that want a path (h5py, nir).
- :func:`ensure_free` refuses a write the disk cannot hold (:class:`DiskFullError`, one
  line naming the path and the free space) before it starts: HDF5 that meets a full
  disk mid-write cannot close its file, and the process then segfaults at exit.
  :func:`disk_full_message` words any other out-of-space error the same way.

Files and folders get the mode a plain ``open`` / ``mkdir`` would give them (0666 / 0777
less the umask, so usually 0644 / 0755), not ``mkstemp``'s private 0600 / 0700. This is
the project's one atomic-write helper (``ann`` and ``neuro``, which may not import
``deploy``, write through plain ``open`` under a temporary name, which honours the umask).
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
HEADROOM = 256 << 10  # bytes kept free beyond a write's estimate (HDF5 metadata, a flush)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # unreachable


def free_bytes(path: str | os.PathLike) -> int:
    """Free bytes (for this user) on the filesystem that holds ``path`` (or would: its
    nearest existing folder)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


class DiskFullError(OSError):
    """No room for a write on the disk of ``filename``; ``str()`` is one line naming it
    and the free space."""

    def __init__(self, path: str | os.PathLike, free: int, need: int | None = None) -> None:
        what = f"{_size(free)} free" + (f", {_size(need)} needed" if need else "")
        super().__init__(errno.ENOSPC, f"no space left on device ({what})", str(path))

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def ensure_free(path: str | os.PathLike, need: int) -> None:
    """Raise :class:`DiskFullError` unless ``need`` bytes plus ``HEADROOM`` fit on the
    disk of ``path``."""
    free = free_bytes(path)
    if free < need + HEADROOM:
        raise DiskFullError(path, free, need + HEADROOM)


def _out_of_space(e: BaseException) -> BaseException | None:
    """The out-of-space error in ``e`` or in what it was raised from or during (torch's
    zip writer raises a RuntimeError while handling the OSError of a full disk), or
    None."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if (isinstance(e, OSError) and e.errno in FULL_ERRNOS) or (
                "errno = 28" in str(e) or "No space left on device" in str(e)):
            return e
        e = e.__cause__ or e.__context__
    return None


def disk_full_message(e: BaseException, path: str | os.PathLike | None = None) -> str | None:
    """One line for an out-of-space error (``OSError`` ENOSPC/EDQUOT, or an h5py error
    whose text carries errno 28, also as the cause or context of ``e``): the path
    (``path``, else the error's file name) and the free space there; None for any other
    error."""
    if isinstance(e, DiskFullError):
        return str(e)
    full = _out_of_space(e)
    if full is None:
        return None
    path = path or getattr(full, "filename", None)
    if path is None:
        return f"no space left on device ({full})"
    try:
        return str(DiskFullError(path, free_bytes(path)))
    except OSError:
        return f"{path}: no space left on device"


def _as_disk_full(e: BaseException, path: Path) -> None:
    """Raise :class:`DiskFullError` naming ``path`` when ``e`` is (or came from) an
    out-of-space error that names no file of its own (a writer's bare ENOSPC)."""
    if isinstance(e, DiskFullError) or _out_of_space(e) is None:
        return
    try:
        free = free_bytes(path)
    except OSError:
        return
    raise DiskFullError(path, free) from None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems do not open folders
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def umask() -> int:
    """The process's umask (read by setting and restoring it; Python 3.11 has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_file(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """``write(f)`` into a temporary binary file beside ``path``, fsync, rename; the file
    gets mode 0666 less the umask, as a plain ``open`` would give it."""
    def to(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write(f)

    return write_path(path, to)


def write_path(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """As :func:`write_file` for a writer that takes a path: ``write(tmp)`` writes the
    file ``tmp`` (beside ``path``; it may replace it), then fsync, mode, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fchmod(f.fileno(), 0o666 & ~umask())
            os.fsync(f.fileno())
        if _together:  # as_one(): renamed with the others when the block ends
            _together[-1].append((Path(tmp), path))
            return path
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        _as_disk_full(e, path)
        raise
    _fsync_dir(path.parent)
    return path


_together: list[list[tuple[Path, Path]]] = []  # open as_one() blocks, innermost last


@contextlib.contextmanager
def as_one() -> Iterator[None]:
    """Files written by :func:`write_file` / :func:`write_path` inside the block appear
    together: each is written and fsynced under its temporary name, and all are renamed
    into place only when the block ends without error; on an error (a full disk at the
    second file) every temporary file is removed and the old files stay as they were
    (``explain -o`` over an earlier output left a new maps.npz beside the old figure)."""
    _together.append([])
    try:
        yield
    except BaseException:
        for tmp, _ in _together.pop():
            tmp.unlink(missing_ok=True)
        raise
    pending = _together.pop()
    for tmp, path in pending:
        os.replace(tmp, path)
    for parent in {path.parent for _, path in pending}:
        _fsync_dir(parent)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_orphans(path: str | os.PathLike) -> list[Path]:
    """Remove the staging folders (``.NAME.partial-PID-*``, ``.NAME.old-PID-*``) that a
    killed writer of ``path`` left beside it: those whose process PID no longer runs
    (SIGKILL runs no clean-up; they stayed for good). A live writer's are kept."""
    path, gone = Path(path), []
    for kind in ("partial", "old"):
        for d in path.parent.glob(f".{path.name}.{kind}-*"):
            pid = d.name[len(f".{path.name}.{kind}-"):].split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)) and d.is_dir():
                shutil.rmtree(d, ignore_errors=True)
                gone.append(d)
    return gone


def scratch_dir(kind: str) -> tempfile.TemporaryDirectory:
    """A temporary folder (in ``TMPDIR``) named after this process,
    ``hybrid-KIND-PID-*``: a worker process killed outright (SIGKILL) cannot remove
    its own, and the process that ran the worker removes it (:func:`remove_scratch`)."""
    return tempfile.TemporaryDirectory(prefix=f"hybrid-{kind}-{os.getpid()}-")


def remove_scratch(pids) -> list[Path]:
    """Remove what :func:`scratch_dir` left of the processes ``pids`` (ended ones)."""
    gone = []
    for pid in pids:
        for d in Path(tempfile.gettempdir()).glob(f"hybrid-*-{pid}-*"):
            if d.is_dir() and d.name.split("-")[2] == str(pid):
                shutil.rmtree(d, ignore_errors=True)
                gone.append(d)
    return gone


@contextlib.contextmanager
def staged_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """``with staged_dir(out) as tmp:`` write the folder's files under ``tmp``; on a
    clean exit the folder is renamed to ``out`` (mode 0777 less the umask, as ``mkdir``
    gives). An existing ``out`` is an error (``FileExistsError``) unless ``overwrite``;
    then it is replaced only after the new folder is complete."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (choose another folder, or overwrite it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-{os.getpid()}-",
                                dir=path.parent))
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb+") as h:
                    os.fsync(h.fileno())
        os.chmod(tmp, 0o777 & ~umask())
        _fsync_dir(tmp)
        _swap_in(tmp, path)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _as_disk_full(e, path)
        raise


def _swap_in(tmp: Path, path: Path) -> None:
    """Rename the folder ``tmp`` to ``path``; an existing ``path`` is moved aside first
    and removed after, or put back if the rename fails (nothing left beside it)."""
    if not path.exists():
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-{os.getpid()}-", dir=path.parent))
    try:
        os.replace(path, old / path.name)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.replace(old / path.name, path)
            raise
    except BaseException:
        shutil.rmtree(old, ignore_errors=True)  # empty unless putting back failed too
        raise
    _fsync_dir(path.parent)
    shutil.rmtree(old, ignore_errors=True)
