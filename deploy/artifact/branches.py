"""The STM branches to map or export: from STM HDF5 files, folders of them, or a deploy
artifact folder (the STM files its ``manifest.json`` lists, read once inside the folder
and checked against their sizes and sha256 as the manifest records them,
:mod:`deploy.artifact.manifest`; a ``hybrid deploy`` folder is opened with
:func:`deploy.artifact.folder.load_artifact`, which checks every file it lists)."""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from deploy.artifact.manifest import (
    ArtifactError,
    file_entries,
    open_folder,
    read_at,
    read_json,
    read_verified,
)
from neuro.export import StmNetwork, read_network

BRANCH_NAMES = {2: "mv", 3: "r"}  # STM input channels -> branch name


def resized(net: StmNetwork, size: tuple[int, int]) -> StmNetwork:
    """The same network deployed at another input (H, W): shapes follow the STM's
    ``layer_sizes``; weights, thresholds and decays are unchanged."""
    sizes = net.config.layer_sizes(*size)
    layers = [replace(spec, shape=(spec.shape[0], *hw)) for spec, hw in zip(net.layers, sizes)]
    return replace(net, input_shape=(net.input_shape[0], *size), layers=layers)


class BranchInputError(ValueError):
    """Paths that do not name STM exports (message names the path and the problem)."""


def _manifest_stms(folder: Path) -> list[tuple[Path, bytes]]:
    """(path, verified bytes) of the ``.h5`` files a ``manifest.json`` lists (``files``:
    path, role, bytes, sha256): a ``hybrid deploy`` artifact's STM files as
    :func:`deploy.artifact.folder.load_artifact` verified them; another manifest's read as
    it does (inside the folder, no link followed, size and sha256 checked)."""
    art = _deploy_artifact(folder)
    if art is not None:
        return [(art.stm_path(m), art.blobs[f"stm:{m}"]) for m in art.inputs.stm_modalities]
    mpath = folder / "manifest.json"
    dir_fd = open_folder(folder)
    try:
        manifest = read_json(read_at(dir_fd, folder, mpath.name, "the manifest"), mpath)
        entries = [e for e in file_entries(manifest, mpath) if e.path.endswith(".h5")]
        if not entries:
            raise BranchInputError(f"{mpath}: lists no STM .h5 file")
        data = read_verified(dir_fd, folder, entries, mpath.name)
    except ArtifactError as e:
        raise BranchInputError(str(e)) from e
    finally:
        os.close(dir_fd)
    return [(folder / e.path, data[e.path]) for e in entries]


def _deploy_artifact(folder: Path):
    """The verified artifact if ``folder`` holds a ``hybrid deploy`` manifest, else None."""
    from deploy.artifact.folder import FORMAT, load_artifact

    try:
        fmt = json.loads((folder / "manifest.json").read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return None  # not JSON / not an object: the plain manifest reader reports it
    if fmt != FORMAT:
        return None
    try:
        return load_artifact(folder)
    except ArtifactError as e:
        raise BranchInputError(str(e)) from e


def stored_mapping(paths: list[str | os.PathLike]) -> dict | None:
    """The ``mapping.json`` a single deploy artifact folder holds (verified), else None."""
    if len(paths) != 1 or not Path(paths[0]).is_dir():
        return None
    art = _deploy_artifact(Path(paths[0]))
    return None if art is None else art.mapping


def stm_files(paths: list[str | os.PathLike]) -> list[tuple[Path, bytes | None]]:
    """STM HDF5 files from files and folders, as (path, bytes or None: read the path): a
    deploy artifact's, the files its ``manifest.json`` lists, verified; another
    folder's, its ``*.h5`` files."""
    out: list[tuple[Path, bytes | None]] = []
    for p in map(Path, paths):
        if p.is_dir() and (p / "manifest.json").exists():
            out += _manifest_stms(p)
        elif p.is_dir():
            found = sorted(p.glob("*.h5"))
            if not found:
                raise BranchInputError(f"{p}: no STM .h5 files in this folder")
            out += [(f, None) for f in found]
        elif p.exists():
            out.append((p, None))
        else:
            raise BranchInputError(f"{p}: no such file or folder")
    return out


def read_branches(paths: list[str | os.PathLike]) -> dict[str, StmNetwork]:
    """STM HDF5 files (or folders of them) -> {branch: network}; a branch is named by its
    input channels (2: ``mv``, 3: ``r``), or by its file name when two files share one."""
    nets: dict[str, StmNetwork] = {}
    for p, data in stm_files(paths):
        net = read_network(p, data)  # StmFileError names the file
        name = BRANCH_NAMES.get(net.input_shape[0], p.stem)
        if name in nets:
            name = p.stem
        if name in nets:
            raise BranchInputError(f"{p}: a second STM branch named {name!r}")
        nets[name] = net
    return nets
