"""Export of the dense partition: ONNX (run with onnxruntime) and a pure-torch file.

Both files carry a format version and the DenseConfig, so a loader needs nothing else.
ONNX inputs are the present modalities in the order of ``cfg.modalities`` ('i', 'mv',
'r'), named ``iframe``, ``mv``, ``residual``; the batch axis is dynamic. Files are
written atomically (temporary file, then rename).
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import warnings
from pathlib import Path

import torch
from torch import nn

from ann.config import DenseConfig
from ann.model import DenseModel

FORMAT = "ann.dense"
VERSION = 1
INPUT_NAMES = {"i": "iframe", "mv": "mv", "r": "residual"}


def config_to_dict(cfg: DenseConfig) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(d: dict, source: str = "<dict>") -> DenseConfig:
    fields = {f.name for f in dataclasses.fields(DenseConfig)}
    unknown = set(d) - fields
    if unknown:
        raise ValueError(f"{source}: unknown DenseConfig fields {sorted(unknown)}")
    return DenseConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)
    return path


class _Positional(nn.Module):
    """The model with only the present modalities as positional inputs (for tracing)."""

    def __init__(self, model: DenseModel):
        super().__init__()
        self.model, self.modalities = model, model.cfg.modalities

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        given = dict(zip(self.modalities, xs))
        return self.model(given.get("i"), given.get("mv"), given.get("r"))


def export_onnx(model: DenseModel, path: str | Path, batch: int = 2, opset: int = 17) -> Path:
    """Write `model` (eval mode) as ONNX with a dynamic batch axis; returns the path."""
    import onnx

    cfg = model.cfg
    was_training = model.training
    model.eval()
    example = tuple(torch.randn(batch, cfg.segments, *cfg.in_shape(m)) for m in cfg.modalities)
    names = [INPUT_NAMES[m] for m in cfg.modalities]

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            # shape asserts become constants in the trace (sizes are fixed per config)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Constant folding")
            torch.onnx.export(
                _Positional(model), example, str(tmp), input_names=names,
                output_names=["logits"], dynamic_axes={n: {0: "batch"} for n in [*names, "logits"]},
                opset_version=opset, dynamo=False,
            )
        proto = onnx.load(str(tmp))
        for key, value in (("format", FORMAT), ("version", str(VERSION)),
                           ("config", json.dumps(config_to_dict(cfg)))):
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))

    try:
        return _atomic(path, write)
    finally:
        model.train(was_training)


def _tensors(graph):
    """Every TensorProto of ``graph``: initializers and node attributes, subgraphs too."""
    yield from graph.initializer
    for sp in graph.sparse_initializer:
        yield from (sp.values, sp.indices)
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                yield from _tensors(g)


def external_data(proto) -> list[str]:
    """The files an ONNX model's tensors refer to outside it (``onnx`` external data)."""
    from onnx import TensorProto

    return sorted({next((e.value for e in t.external_data if e.key == "location"), "?")
                   for t in _tensors(proto.graph) if t.data_location == TensorProto.EXTERNAL})


class OnnxDense:
    """An exported dense partition run by onnxruntime; called like ``DenseModel``.

    Built from the file's bytes (``data``, else read once from ``path``): onnxruntime
    runs exactly the bytes given. A model whose tensors live in external data files is
    refused (ValueError naming the file): those files would be read unchecked."""

    def __init__(self, path: str | Path, data: bytes | None = None):
        import onnx
        import onnxruntime as ort
        from google.protobuf.message import DecodeError

        self.path = Path(path)
        if data is None:
            data = self.path.read_bytes()
        try:
            proto = onnx.load_model_from_string(data)
        except (DecodeError, ValueError, RuntimeError) as e:
            raise ValueError(f"{self.path}: not a readable ONNX model (broken or truncated?): "
                             f"{e}") from e
        outside = external_data(proto)
        if outside:
            raise ValueError(f"{self.path}: keeps tensors in external data {outside}; this "
                             "loader reads only self-contained ONNX files")
        meta = {p.key: p.value for p in proto.metadata_props}
        if meta.get("format") != FORMAT or meta.get("version") != str(VERSION):
            raise ValueError(
                f"{self.path}: format {meta.get('format')!r} version {meta.get('version')!r}, "
                f"this loader reads {FORMAT!r} version {VERSION}"
            )
        try:
            self.cfg = config_from_dict(json.loads(meta["config"]), str(self.path))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{self.path}: bad 'config' metadata ({e})") from e
        try:
            self.session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        except RuntimeError as e:  # onnxruntime's Fail, InvalidGraph, InvalidProtobuf, ...
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ValueError(f"{self.path}: onnxruntime cannot load it ({msg})") from e

    def __call__(self, iframe=None, mv=None, residual=None) -> torch.Tensor:
        given = {"i": iframe, "mv": mv, "r": residual}
        feeds = {}
        for m in self.cfg.modalities:
            if given[m] is None:
                raise ValueError(f"{self.path}: needs input {INPUT_NAMES[m]!r}, got None")
            feeds[INPUT_NAMES[m]] = torch.as_tensor(given[m]).detach().float().numpy()
        (logits,) = self.session.run(["logits"], feeds)
        return torch.from_numpy(logits)  # (B, num_classes)


def save_torch(model: DenseModel, path: str | Path) -> Path:
    """The pure-torch path: config + state dict in one versioned file."""
    blob = {"format": FORMAT, "version": VERSION, "config": config_to_dict(model.cfg),
            "state_dict": model.state_dict()}
    return _atomic(path, lambda tmp: torch.save(blob, tmp))


def load_torch(path: str | Path, map_location: str = "cpu",
               data: bytes | None = None) -> DenseModel:
    """The dense partition of a :func:`save_torch` file, or of its bytes ``data`` when
    given (``path`` then only names it); ValueError naming the file when it is not one."""
    path = Path(path)
    try:
        blob = torch.load(path if data is None else io.BytesIO(data),
                          map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{path}: not a readable torch file (broken or truncated?): "
                         f"{msg}") from e
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT!r} file")
    if blob.get("version") != VERSION:
        raise ValueError(f"{path}: version {blob.get('version')}, this loader reads {VERSION}")
    try:
        model = DenseModel(config_from_dict(blob["config"], str(path)))
        model.load_state_dict(blob["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{path}: bad dense partition ({msg})") from e
    return model.eval()
