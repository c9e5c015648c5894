"""Reading a manifest's files so that what is verified is what is used.

A manifest lists files as ``{path, role, bytes, sha256}`` (:class:`FileEntry`). Each
listed file is read once, into memory, through file descriptors that never follow a
symbolic link (the folder is opened once; every path component below it is opened with
``O_NOFOLLOW`` relative to the one above), and checked against its size and sha256.
Loaders then parse those bytes, never the path again: a folder re-deployed or edited
while a run starts cannot mix two models, a symlink cannot lead outside the folder, and
a file the manifest does not list is never opened.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

SHA256_HEX = frozenset("0123456789abcdef")


class ArtifactError(ValueError):
    """An artifact folder that cannot be used; the message names the file and why."""


@dataclass(frozen=True)
class FileEntry:
    """One file a manifest lists."""

    path: str  # relative to the folder, '/'-separated, inside it
    role: str  # what it holds ("spec", "stm:mv", "dense-onnx", ...)
    bytes: int  # its size
    sha256: str  # hex sha256 of its bytes

    def __post_init__(self):
        if not isinstance(self.path, str) or not self.path:
            raise ValueError(f"file path {self.path!r} is not a path")
        pure = PurePosixPath(self.path)
        if pure.is_absolute() or ".." in pure.parts or "\\" in self.path:
            raise ValueError(f"file path {self.path!r} leaves the artifact folder")
        if not pure.parts or pure.parts[0] == "." or str(pure) != self.path:
            raise ValueError(f"file path {self.path!r} is not a plain relative path")
        if not isinstance(self.role, str) or not self.role:
            raise ValueError(f"file {self.path!r}: role {self.role!r} is not a name")
        if type(self.bytes) is not int or self.bytes < 0:
            raise ValueError(f"file {self.path!r}: bytes {self.bytes!r} is not a size")
        if not (isinstance(self.sha256, str) and len(self.sha256) == 64
                and set(self.sha256) <= SHA256_HEX):
            raise ValueError(f"file {self.path!r}: sha256 {self.sha256!r} is not a hex digest")

    @classmethod
    def from_dict(cls, d) -> FileEntry:
        if not isinstance(d, dict) or set(d) != {"path", "role", "bytes", "sha256"}:
            raise ValueError(f"file entry {d!r} is not {{path, role, bytes, sha256}}")
        return cls(**d)


def file_entries(manifest: dict, where: Path) -> list[FileEntry]:
    """The manifest's ``files`` as entries; :class:`ArtifactError` naming ``where``."""
    entries = manifest.get("files")
    if not isinstance(entries, list) or not entries:
        raise ArtifactError(f"{where}: no 'files' list")
    try:
        return [FileEntry.from_dict(e) for e in entries]
    except (TypeError, ValueError) as e:
        raise ArtifactError(f"{where}: {e}") from e


def open_folder(root: Path) -> int:
    """A descriptor of the folder ``root`` (itself may be a link the user made)."""
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise ArtifactError(f"{root}: no such artifact folder ({e.strerror})") from e


def read_at(dir_fd: int, root: Path, rel: str, what: str) -> bytes:
    """The bytes of the regular file ``rel`` under the folder ``dir_fd`` (``root``),
    following no symbolic link on the way (:class:`ArtifactError` naming the file)."""
    parts = PurePosixPath(rel).parts
    path = root / rel
    fds: list[int] = []
    try:
        fd = dir_fd
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | (os.O_NONBLOCK if last else os.O_DIRECTORY)
            try:
                fd = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                raise ArtifactError(f"{path}: missing ({what})") from None
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(
                        root.joinpath(*parts[:i + 1])):
                    raise ArtifactError(f"{path}: {'/'.join(parts[:i + 1])} is a symbolic "
                                        f"link ({what}); an artifact holds its own files, "
                                        "links are not followed") from None
                raise ArtifactError(f"{path}: cannot be read ({what}): {e.strerror}") from None
            fds.append(fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ArtifactError(f"{path}: not a regular file ({what})")
        os.set_blocking(fd, True)
        chunks = []
        while block := os.read(fd, 1 << 20):
            chunks.append(block)
        return b"".join(chunks)
    finally:
        for f in fds:
            os.close(f)


def read_json(data: bytes, path: Path) -> dict:
    try:
        d = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path}: not readable JSON ({e})") from e
    if not isinstance(d, dict):
        raise ArtifactError(f"{path}: expected a JSON object")
    return d


def read_verified(dir_fd: int, root: Path, entries: Iterable[FileEntry],
                  manifest: str) -> dict[str, bytes]:
    """{path: bytes} of each entry, checked against its size and sha256 in memory."""
    out = {}
    for e in entries:
        path = root / e.path
        data = read_at(dir_fd, root, e.path, f"listed in {manifest} as {e.role}")
        if len(data) != e.bytes:
            kind = "truncated" if len(data) < e.bytes else "altered"
            raise ArtifactError(f"{path}: {kind}: {len(data)} bytes, {manifest} says "
                                f"{e.bytes}")
        if hashlib.sha256(data).hexdigest() != e.sha256:
            raise ArtifactError(f"{path}: altered: sha256 differs from {manifest}'s")
        out[e.path] = data
    return out
