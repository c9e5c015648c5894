"""The deployed-model folder: one self-describing artifact per trained hybrid model.

Layout (``hybrid deploy CHECKPOINT -o DIR``)::

    DIR/manifest.json  format "hybrid-deploy", version, toolkit version, source checkpoint
                       sha256, files: [{path, role, bytes, sha256}]
    DIR/spec.json      classes, input spec (deploy.artifact.inputs), bridge specs
                       (deploy.artifact.bridge),
                       which file holds which partition, the source model config
    DIR/stm_mv.h5      spiking partition: one Lava-ready HDF5 per STM branch (netx layer
    DIR/stm_r.h5         schema + soft-reset extras, neuro.export), at the STM input size
    DIR/dense.onnx     dense partition for onnxruntime (ann.onnx_export)
    DIR/dense.pt       the same dense partition as a versioned torch file
    DIR/mapping.json   the STMs on a chip preset's neurocores
                       (deploy.hardware.neurocores.mapping; role mapping)
    DIR/stm_mv.nir     with ``nir=True``: each STM branch as a NIR graph (deploy.artifact.nir; roles
    DIR/stm_r.nir        nir:mv, nir:r)

The folder is staged beside DIR and renamed into place when complete
(:func:`deploy.atomic.staged_dir`); ``manifest.json`` is its last file. Loading checks the
format and version, reads every listed file once into memory (no symbolic link followed,
:mod:`deploy.artifact.manifest`) and checks its size and sha256, refuses any file the
manifest does not list, then the partitions' own versions and that they fit the spec: any
failure is an :class:`.ArtifactError` whose one-line message names the file and the
problem. The :class:`Artifact` keeps the verified bytes; every loader (the Lava networks,
onnxruntime, torch, the mapping) reads those, never the folder again.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ann.model import DenseModel
from ann.onnx_export import OnnxDense, export_onnx, load_torch, save_torch
from deploy.artifact.bridge import DENSE_INPUTS, BridgeSpec
from deploy.artifact.inputs import InputSpec
from deploy.artifact.manifest import (
    ArtifactError,
    file_entries,
    open_folder,
    read_at,
    read_json,
    read_verified,
)
from deploy.atomic import staged_dir
from deploy.hardware.neurocores.mapping import map_network
from deploy.hardware.neurocores.mapping_file import read_mapping, write_mapping
from deploy.presets import LOIHI2, ChipPreset
from neuro.export import StmFileError, StmNetwork, export_stm, load_stm, read_network
from neuro.stm import STM

FORMAT = "hybrid-deploy"
VERSION = 2  # 2: spec.json's inputs record the training videos' size (video_size)
READS = (1, 2)  # versions this toolkit loads (a version-1 artifact has no video_size)
MANIFEST = "manifest.json"
SPEC = "spec.json"
STM_FILES = {"mv": "stm_mv.h5", "r": "stm_r.h5"}
ONNX_FILE = "dense.onnx"
TORCH_FILE = "dense.pt"
MAPPING_FILE = "mapping.json"
DIST_NAME = "hybrid-snn-video"  # the toolkit's distribution (pyproject.toml)
ROLES = ("spec", "stm:mv", "stm:r", "dense-onnx", "dense-torch", "mapping", "nir:mv", "nir:r")


def toolkit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DIST_NAME)
    except PackageNotFoundError:
        return "unknown"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class Artifact:
    path: Path  # the folder
    manifest: dict  # manifest.json as read
    classes: list[str]  # class names, in logit order
    inputs: InputSpec  # what the host feeds
    bridges: dict[str, BridgeSpec]  # per STM modality ("mv", "r")
    model_config: dict  # the source model's configuration (informative)
    blobs: dict[str, bytes] = field(repr=False)  # per role: the verified bytes of its file
    networks: dict[str, StmNetwork] = field(repr=False)  # per STM modality, from its blob
    mapping: dict | None = None  # mapping.json as read (None if unlisted)
    _onnx: OnnxDense | None = field(default=None, repr=False, compare=False)  # built once

    def role_path(self, role: str) -> Path | None:
        """The listed file of ``role`` (``mapping``, ``nir:mv``, ...), None if unlisted
        (for messages: loaders read ``blobs``)."""
        rel = next((f["path"] for f in self.manifest["files"] if f["role"] == role), None)
        return None if rel is None else self.path / rel

    def stm_path(self, modality: str) -> Path:
        return self.role_path(f"stm:{modality}")

    @property
    def mapping_path(self) -> Path | None:
        return self.role_path("mapping")

    @property
    def nir_paths(self) -> dict[str, Path]:
        """Per STM modality, its NIR file (empty unless deployed with ``nir``)."""
        return {f["role"][4:]: self.path / f["path"] for f in self.manifest["files"]
                if f["role"].startswith("nir:")}

    @property
    def onnx_path(self) -> Path:
        return self.role_path("dense-onnx")

    @property
    def torch_path(self) -> Path:
        return self.role_path("dense-torch")

    def stm(self, modality: str) -> STM:
        """The torch STM of ``modality``, from the verified bytes."""
        return load_stm(self.stm_path(modality), self.blobs[f"stm:{modality}"])

    def dense_onnx(self) -> OnnxDense:
        """The dense partition in onnxruntime, from the verified bytes: one session per
        artifact (building one takes most of a load; ``load_artifact`` builds it to check
        the file, and the runtime then uses that one)."""
        if self._onnx is None:
            self._onnx = OnnxDense(self.onnx_path, self.blobs["dense-onnx"])
        return self._onnx

    def __getstate__(self) -> dict:
        """Pickled (to `run --workers`' spawned workers) without the session, which each
        process builds for itself."""
        return {**self.__dict__, "_onnx": None}

    def dense_torch(self) -> DenseModel:
        """The dense partition in torch, from the verified bytes."""
        return load_torch(self.torch_path, data=self.blobs["dense-torch"])

    @property
    def bridge_bytes_per_video(self) -> int:
        return sum(b.bytes_per_video for b in self.bridges.values())


def write_artifact(out: str | os.PathLike, stms: dict[str, STM], dense: DenseModel,
                   inputs: InputSpec, classes: list[str], model_config: dict | None = None,
                   source_sha256: str | None = None, overwrite: bool = False,
                   chip: ChipPreset = LOIHI2, nir: bool = False) -> Artifact:
    """Write the artifact folder ``out`` from the built partitions: ``stms`` per STM
    modality of ``inputs`` (exported at ``inputs.stm_size``), the ``dense`` partition and
    the class names; the exported STMs' mapping onto ``chip`` and, with ``nir``, their
    NIR graphs (needs the ``nir`` package). ``FileExistsError`` if ``out`` exists and not
    ``overwrite``; with ``overwrite``, :class:`.ArtifactError` unless it is an earlier
    artifact (:func:`check_replaceable`)."""
    out = Path(out)
    if out.name in ("", ".", ".."):  # `-o .`: staged beside the folder, not inside it
        out = out.resolve()
    if overwrite:
        check_replaceable(out)
    mods = inputs.stm_modalities
    if set(stms) != set(mods):
        raise ValueError(f"{out}: STMs given for {sorted(stms)}, the input spec has {mods}")
    dcfg = dense.cfg
    if dcfg.modalities != inputs.modalities or dcfg.segments != inputs.segments:
        raise ValueError(f"{out}: dense partition takes {dcfg.modalities} x {dcfg.segments} "
                         f"segments, the input spec {inputs.modalities} x {inputs.segments}")
    if len(classes) != dcfg.num_classes:
        raise ValueError(f"{out}: {len(classes)} class names for {dcfg.num_classes} outputs")
    with staged_dir(out, overwrite=overwrite) as tmp:
        files, bridges, nets = [], {}, {}
        for m in mods:
            path = export_stm(stms[m], tmp / STM_FILES[m], inputs.stm_size)
            nets[m] = read_network(path)  # what the runtime, `hybrid map` and NIR read
            last = nets[m].layers[-1]
            c, h, w = last.shape
            if dcfg.in_shape(m) != (c, h, w):
                raise ValueError(f"{out}: STM {m} gives (C, H, W) {(c, h, w)}, the dense "
                                 f"partition takes {dcfg.in_shape(m)}")
            bridges[m] = BridgeSpec(modality=m, source=f"{STM_FILES[m]}:layer/3/v",
                                    target=DENSE_INPUTS[m], segments=inputs.segments,
                                    channels=c, height=h, width=w, v_scale=last.v_scale)
            files.append((STM_FILES[m], f"stm:{m}"))
        export_onnx(dense, tmp / ONNX_FILE)
        save_torch(dense, tmp / TORCH_FILE)
        files += [(ONNX_FILE, "dense-onnx"), (TORCH_FILE, "dense-torch")]
        write_mapping(map_network(nets, chip), tmp / MAPPING_FILE)
        files.append((MAPPING_FILE, "mapping"))
        if nir:
            from deploy.artifact.nir import write_nir  # the optional `nir` package

            files += [(p.name, f"nir:{m}") for m, p in zip(nets, write_nir(nets, tmp))]
        spec = {"classes": list(classes), "inputs": inputs.to_dict(),
                "bridges": {m: b.to_dict() for m, b in bridges.items()},
                "spiking": {m: STM_FILES[m] for m in mods},
                "dense": {"onnx": ONNX_FILE, "torch": TORCH_FILE},
                "model_config": model_config or {}}
        (tmp / SPEC).write_text(json.dumps(spec, indent=2))
        files.append((SPEC, "spec"))
        manifest = {
            "format": FORMAT, "version": VERSION, "toolkit_version": toolkit_version(),
            "source_checkpoint_sha256": source_sha256,
            "files": [{"path": p, "role": role, "bytes": (tmp / p).stat().st_size,
                       "sha256": sha256_file(tmp / p)} for p, role in files],
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return load_artifact(out)


def check_replaceable(out: str | os.PathLike) -> None:
    """Refuse (:class:`.ArtifactError`) to replace ``out`` unless it is absent or an
    earlier artifact: a folder whose ``manifest.json`` is a ``hybrid deploy`` manifest
    and which holds nothing that manifest does not list. ``deploy --force`` would
    otherwise delete a run folder, a dataset or the working directory."""
    out = Path(out)
    if not os.path.lexists(out):
        return
    why = "not a `hybrid deploy` artifact folder (no hybrid-deploy manifest.json)"
    if out.is_symlink() or not out.is_dir():
        raise ArtifactError(f"{out}: {why}; --force replaces only an earlier artifact")
    try:
        manifest = json.loads((out / MANIFEST).read_text())
        listed = {str(e["path"]) for e in manifest["files"]} | {MANIFEST}
        ok = manifest.get("format") == FORMAT
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise ArtifactError(f"{out}: {why}; --force replaces only an earlier artifact")
    unlisted = sorted(str(p.relative_to(out)) for p in out.rglob("*")
                      if str(p.relative_to(out)) not in listed and not p.is_dir())
    if unlisted:
        raise ArtifactError(f"{out}: holds files its {MANIFEST} does not list "
                            f"({', '.join(unlisted[:3])}); --force replaces only an earlier "
                            "artifact, not files beside it")


def _read_listed(root: Path) -> tuple[dict, dict[str, str], dict[str, bytes]]:
    """(manifest, role -> relative path, role -> verified bytes) of the folder ``root``:
    the manifest and every file it lists read once, no link followed; nothing else may
    sit in the folder."""
    mpath = root / MANIFEST
    dir_fd = open_folder(root)
    try:
        manifest = read_json(read_at(dir_fd, root, MANIFEST, "the manifest; not a complete "
                                                             "artifact folder"), mpath)
        fmt, ver = manifest.get("format"), manifest.get("version")
        if fmt != FORMAT:
            raise ArtifactError(f"{mpath}: format {fmt!r}, expected {FORMAT!r} "
                                "(not a hybrid deploy artifact)")
        if ver not in READS:
            raise ArtifactError(f"{mpath}: artifact version {ver}, this toolkit "
                                f"({toolkit_version()}) reads versions "
                                f"{', '.join(map(str, READS))}")
        entries = file_entries(manifest, mpath)
        roles: dict[str, str] = {}
        for e in entries:
            if "/" in e.path or e.path == MANIFEST:
                raise ArtifactError(f"{mpath}: file path {e.path!r} is not a file name of "
                                    "its own in the artifact folder")
            if e.role not in ROLES:
                raise ArtifactError(f"{mpath}: file {e.path!r} has role {e.role!r}, not one "
                                    f"of {', '.join(ROLES)}")
            if e.role in roles:
                raise ArtifactError(f"{mpath}: role {e.role!r} listed twice ({roles[e.role]}, "
                                    f"{e.path})")
            if e.path in roles.values():
                raise ArtifactError(f"{mpath}: file {e.path!r} listed twice")
            roles[e.role] = e.path
        data = read_verified(dir_fd, root, entries, MANIFEST)
        unlisted = sorted(set(os.listdir(dir_fd)) - set(roles.values()) - {MANIFEST})
        if unlisted:
            raise ArtifactError(f"{root / unlisted[0]}: not listed in {MANIFEST}; an artifact "
                                "holds only the files its manifest lists and verifies")
    finally:
        os.close(dir_fd)
    return manifest, roles, {role: data[rel] for role, rel in roles.items()}


def load_artifact(path: str | os.PathLike) -> Artifact:
    """Open and verify an artifact folder; :class:`.ArtifactError` naming the file."""
    root = Path(path)
    if not root.is_dir():
        raise ArtifactError(f"{root}: no such artifact folder")
    manifest, roles, blobs = _read_listed(root)
    if "spec" not in roles:
        raise ArtifactError(f"{root / MANIFEST}: lists no spec file")
    spec_path = root / roles["spec"]
    spec = read_json(blobs["spec"], spec_path)
    try:
        inputs = InputSpec.from_dict(spec["inputs"])
        bridges = {m: BridgeSpec.from_dict(b) for m, b in spec["bridges"].items()}
        classes = spec["classes"]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ArtifactError(f"{spec_path}: bad spec ({e})") from e
    if not (isinstance(classes, list) and classes and len(set(map(str, classes))) == len(
            classes) and all(isinstance(c, str) and c for c in classes)):
        raise ArtifactError(f"{spec_path}: classes {str(classes)[:60]} is not a list of "
                            "distinct class names")
    for b in bridges.values():
        if b.segments != inputs.segments:
            raise ArtifactError(f"{spec_path}: bridge {b.modality} segments {b.segments}, "
                                f"inputs.segments {inputs.segments}")
    model_config = spec.get("model_config", {})
    for name in ("segments", "timesteps"):
        if isinstance(model_config, dict) and name in model_config and (
                model_config[name] != getattr(inputs, name)):
            raise ArtifactError(f"{spec_path}: inputs.{name} {getattr(inputs, name)}, the "
                                f"model's {model_config[name]} (model_config.{name})")
    need = {f"stm:{m}" for m in inputs.stm_modalities} | {"dense-onnx", "dense-torch"}
    if need - set(roles):
        raise ArtifactError(f"{root / MANIFEST}: lists no {sorted(need - set(roles))} file")
    if set(bridges) != set(inputs.stm_modalities):
        raise ArtifactError(f"{spec_path}: bridges for {sorted(bridges)}, STMs "
                            f"{list(inputs.stm_modalities)}")
    art = Artifact(root, manifest, classes, inputs, bridges, model_config, blobs, {})
    for m, b in bridges.items():
        try:
            net = read_network(art.stm_path(m), blobs[f"stm:{m}"])
        except StmFileError as e:
            raise ArtifactError(str(e)) from e
        last = net.layers[-1]
        if (tuple(last.shape), last.v_scale) != (b.layout[1:], b.v_scale):
            raise ArtifactError(f"{art.stm_path(m)}: last layer {last.shape} v_scale "
                                f"{last.v_scale}, {SPEC} says {b.layout[1:]} {b.v_scale}")
        if net.input_shape[1:] != inputs.stm_size:
            raise ArtifactError(f"{art.stm_path(m)}: input {net.input_shape}, {SPEC} says "
                                f"STM input size {inputs.stm_size}")
        fp = inputs.fixed_point[m]
        if (net.in_frac_bits, net.in_bits) != (fp["frac_bits"], fp["bits"]):
            raise ArtifactError(f"{art.stm_path(m)}: input fixed point (frac_bits, bits) "
                                f"{(net.in_frac_bits, net.in_bits)}, {SPEC} says "
                                f"{(fp['frac_bits'], fp['bits'])} (inputs.fixed_point.{m})")
        art.networks[m] = net
    _check_dense(art, spec_path)
    if "mapping" in roles:
        art.mapping = _check_mapping(root / roles["mapping"], blobs["mapping"], art.networks)
    return art


def _check_dense(art: Artifact, spec_path: Path) -> None:
    """Both dense files load (onnxruntime, torch), hold one configuration, and it takes
    the spec's inputs and gives one logit per class."""
    try:
        cfg = art.dense_onnx().cfg
        tcfg = art.dense_torch().cfg
    except ValueError as e:
        raise ArtifactError(str(e)) from e
    if tcfg != cfg:
        raise ArtifactError(f"{art.torch_path}: dense configuration differs from "
                            f"{art.onnx_path.name}'s")
    spec = art.inputs
    if (cfg.modalities, cfg.segments) != (spec.modalities, spec.segments):
        raise ArtifactError(f"{spec_path}: inputs {spec.modalities} x {spec.segments} "
                            f"segments, {art.onnx_path.name} takes {cfg.modalities} x "
                            f"{cfg.segments}")
    if "i" in spec.modalities and cfg.in_shape("i")[1:] != spec.crop:
        raise ArtifactError(f"{spec_path}: inputs.crop {spec.crop}, {art.onnx_path.name} "
                            f"takes I-frames of {cfg.in_shape('i')[1:]}")
    if len(art.classes) != cfg.num_classes:
        raise ArtifactError(f"{spec_path}: classes lists {len(art.classes)} names, "
                            f"{art.onnx_path.name} gives {cfg.num_classes} outputs")
    for m, b in art.bridges.items():
        if cfg.in_shape(m) != b.layout[1:]:
            raise ArtifactError(f"{spec_path}: bridge {m} carries {b.layout[1:]}, "
                                f"{art.onnx_path.name} takes {cfg.in_shape(m)}")


def _check_mapping(path: Path, data: bytes, nets: dict) -> dict:
    """The listed mapping is this format and maps the artifact's STMs as deployed."""
    try:
        mp = read_mapping(path, data.decode("utf-8", "replace"))
    except ValueError as e:
        raise ArtifactError(str(e)) from e
    want = {m: list(net.input_shape) for m, net in nets.items()}
    got = mp.get("branches")
    if got != want:
        raise ArtifactError(f"{path}: maps branches {got}, the STM files take {want}")
    return mp
