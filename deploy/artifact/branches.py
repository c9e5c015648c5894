"""The STM branches to map or export: from STM HDF5 files, folders of them, or a deploy
artifact folder (the STM files its ``manifest.json`` lists, checked against their sizes
and sha256 as the manifest records them; a ``hybrid deploy`` folder is opened with
:func:`deploy.artifact.folder.load_artifact`, which checks every file it lists)."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest_stms(folder: Path) -> list[Path]:
    """The ``.h5`` files a deploy artifact's ``manifest.json`` lists (``files``: path,
    role, bytes, sha256), each checked against its size and sha256."""
    mpath = folder / "manifest.json"
    art = _deploy_artifact(folder)
    if art is not None:
        return [art.stm_path(m) for m in art.inputs.stm_modalities]
    try:
        entries = json.loads(mpath.read_text())["files"]
        listed = [(folder / e["path"], int(e["bytes"]), str(e["sha256"])) for e in entries
                  if str(e["path"]).endswith(".h5")]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BranchInputError(f"{mpath}: not a readable artifact manifest ({e})") from e
    for path, size, digest in listed:
        if not path.is_file() or path.stat().st_size != size:
            raise BranchInputError(f"{path}: missing or not the {size} bytes {mpath} lists")
        if _sha256(path) != digest:
            raise BranchInputError(f"{path}: altered (sha256 differs from {mpath}'s)")
    if not listed:
        raise BranchInputError(f"{mpath}: lists no STM .h5 file")
    return [p for p, _, _ in listed]


def _deploy_artifact(folder: Path):
    """The verified artifact if ``folder`` holds a ``hybrid deploy`` manifest, else None."""
    from deploy.artifact.folder import FORMAT, ArtifactError, load_artifact

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
    from deploy.hardware.mapping import read_mapping

    if len(paths) != 1 or not Path(paths[0]).is_dir():
        return None
    art = _deploy_artifact(Path(paths[0]))
    return None if art is None or art.mapping_path is None else read_mapping(art.mapping_path)


def stm_paths(paths: list[str | os.PathLike]) -> list[Path]:
    """STM HDF5 files from files and folders (a deploy artifact: the files its
    ``manifest.json`` lists; another folder: its ``*.h5`` files)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and (p / "manifest.json").exists():
            out += _manifest_stms(p)
        elif p.is_dir():
            found = sorted(p.glob("*.h5"))
            if not found:
                raise BranchInputError(f"{p}: no STM .h5 files in this folder")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise BranchInputError(f"{p}: no such file or folder")
    return out


def read_branches(paths: list[str | os.PathLike]) -> dict[str, StmNetwork]:
    """STM HDF5 files (or folders of them) -> {branch: network}; a branch is named by its
    input channels (2: ``mv``, 3: ``r``), or by its file name when two files share one."""
    nets: dict[str, StmNetwork] = {}
    for p in stm_paths(paths):
        net = read_network(p)  # StmFileError names the file
        name = BRANCH_NAMES.get(net.input_shape[0], p.stem)
        if name in nets:
            name = p.stem
        if name in nets:
            raise BranchInputError(f"{p}: a second STM branch named {name!r}")
        nets[name] = net
    return nets
