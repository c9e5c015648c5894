"""Versioned HDF5 export of a trained STM, loadable by lava-dl netx.

Layout (netx's layer schema, ``lava.lib.dl.netx.hdf5.Network``, plus extras):

- root attrs: ``format = "neuro-stm"``, ``version`` (:data:`VERSION`), ``config``
  (STMConfig as JSON), ``inputSize`` [H, W];
- ``layer/0``: ``type = input``, ``shape`` [C_in, H, W];
- ``layer/1..3``: ``type = conv``, ``shape`` [C, H', W'], ``weight`` (C_out, C_in, kH, kW)
  integer 8-bit mantissas, ``stride``, ``padding``, ``dilation`` [y, x], ``groups``,
  ``inFeatures``, ``outFeatures``, ``neuron/{type=CUBA, iDecay, vDecay, vThMant,
  refDelay, gradedSpike}`` (netx's names);
- extras netx ignores: ``layer/i/weightExp`` (float weight = weight * 2**weightExp),
  ``layer/i/neuron/resetMode`` (``soft``: v -= vThMant << 6 on a spike) and
  ``layer/i/neuron/vScale`` (float v = Lava integer v / vScale);
  ``stm/inFracBits``, ``stm/inBits`` (graded input messages: round(x * 2**inFracBits),
  signed inBits); ``stm/float/<name>``: the float parameters (for :func:`load_stm`).

Files are written atomically (temporary file, then rename).
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from neuro import quant
from neuro.stm import STM, STMConfig

#: Format name of an STM export (root attribute ``format``).
FORMAT = "neuro-stm"
#: The export version this code writes and reads (root attribute ``version``).
VERSION = 1


class StmFileError(ValueError):
    """A file that is not a readable STM export of this version."""


@dataclass
class LayerSpec:
    weight: np.ndarray  # (C_out, C_in, k, k) int32 mantissas
    weight_exp: int  # float weight = weight * 2**weight_exp
    stride: int
    padding: int
    shape: tuple[int, int, int]  # output (C, H, W)
    vth: int  # threshold mantissa (effective vth << 6)
    dv: int  # 12-bit voltage decay
    du: int  # 12-bit current decay (netx iDecay - 1)
    v_scale: float  # float v = integer v / v_scale


@dataclass
class StmNetwork:
    input_shape: tuple[int, int, int]  # (C_in, H, W)
    in_frac_bits: int
    in_bits: int
    layers: list[LayerSpec]
    config: STMConfig


def _str(handle, key: str, value: str) -> None:
    handle.create_dataset(key, (1,), "S10", [value.encode("ascii")])


def _layer_integers(stm: STM):
    """Per block, its fixed-point form: (weight exponent, voltage scale, (C_out, C_in, k,
    k) weight mantissas, netx neuron params); the input scale is the STM's for layer 1
    and 1 for spike-fed layers."""
    in_scale = stm.in_scale
    for blk in stm.blocks:
        exp = blk.weight_exp()
        v_scale = quant.voltage_scale(exp, in_scale)
        with torch.no_grad():
            m = quant.weight_mantissa(blk.synapse.weight, exp)[..., 0].numpy()
        yield exp, v_scale, m, blk.neuron.device_params(v_scale)
        in_scale = 1.0


def export_stm(stm: STM, path: str | os.PathLike, input_size: tuple[int, int]) -> Path:
    """Write ``stm`` (its quantised parameters) for inputs of ``input_size`` (H, W)."""
    path = Path(path)
    cfg = stm.cfg
    h, w = input_size
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        f.attrs["config"] = json.dumps(dataclasses.asdict(cfg))
        f.attrs["inputSize"] = np.array([h, w])
        lay = f.create_group("layer")
        g0 = lay.create_group("0")
        _str(g0, "type", "input")
        g0.create_dataset("shape", data=np.array([cfg.in_channels, h, w]))
        layers = zip(cfg.layer_sizes(h, w), _layer_integers(stm))
        for i, ((ho, wo), (exp, _, m, params)) in enumerate(layers):
            k, s = cfg.kernels[i], cfg.strides[i]
            g = lay.create_group(str(i + 1))
            _str(g, "type", "conv")
            g.create_dataset("shape", data=np.array([cfg.widths[i], ho, wo]))
            g.create_dataset("weight", data=m.astype(np.int16))
            g.create_dataset("weightExp", data=exp)
            g.create_dataset("stride", data=np.array([s, s]))
            g.create_dataset("padding", data=np.array([k // 2, k // 2]))
            g.create_dataset("dilation", data=np.array([1, 1]))
            g.create_dataset("groups", data=1)
            g.create_dataset("inFeatures", data=m.shape[1])
            g.create_dataset("outFeatures", data=m.shape[0])
            for key, val in params.items():
                if isinstance(val, str):
                    _str(g, f"neuron/{key}", val)
                else:
                    g.create_dataset(f"neuron/{key}", data=val)
        st = f.create_group("stm")
        st.create_dataset("inFracBits", data=cfg.input_frac_bits)
        st.create_dataset("inBits", data=cfg.input_bits)
        for name, t in stm.state_dict().items():
            st.create_dataset(f"float/{name}", data=t.detach().cpu().numpy())
    os.replace(tmp, path)
    return path


def _open(path: Path, data: bytes | None = None) -> h5py.File:
    """The export at ``path``, or, given ``data``, those bytes (``path`` names them in
    messages; a caller that verified the bytes reads exactly what it verified)."""
    if data is None and not path.exists():
        raise StmFileError(f"{path}: no such file")
    try:
        f = h5py.File(path if data is None else io.BytesIO(data), "r")
    except OSError as e:
        raise StmFileError(f"{path}: not a readable HDF5 file (broken or truncated?): {e}") from e
    fmt = f.attrs.get("format")
    ver = f.attrs.get("version")
    if fmt != FORMAT:
        f.close()
        raise StmFileError(f"{path}: format {fmt!r}, expected {FORMAT!r} (not an STM export)")
    if ver != VERSION:
        f.close()
        raise StmFileError(f"{path}: STM file version {ver}, this neuro reads version {VERSION}")
    return f


def _get(f: h5py.File, path: Path, key: str):
    if key not in f:
        raise StmFileError(f"{path}: missing '{key}' (broken or incomplete STM export)")
    return f[key][()]


def read_network(path: str | os.PathLike, data: bytes | None = None) -> StmNetwork:
    """The integer network of an export (what the Lava runner builds); from ``data``, the
    file's bytes, when given (``path`` then only names it)."""
    path = Path(path)
    with _open(path, data) as f:
        try:
            cfg = STMConfig(**json.loads(f.attrs["config"]))
        except (KeyError, TypeError, ValueError) as e:
            raise StmFileError(f"{path}: bad 'config' attribute: {e}") from e
        c, h, w = (int(v) for v in _get(f, path, "layer/0/shape"))
        layers = []
        for i in range(1, 4):
            p = f"layer/{i}"
            weight = np.asarray(_get(f, path, f"{p}/weight"), dtype=np.int32)
            layers.append(LayerSpec(
                weight=weight,
                weight_exp=int(_get(f, path, f"{p}/weightExp")),
                stride=int(_get(f, path, f"{p}/stride")[0]),
                padding=int(_get(f, path, f"{p}/padding")[0]),
                shape=tuple(int(v) for v in _get(f, path, f"{p}/shape")),
                vth=int(_get(f, path, f"{p}/neuron/vThMant")),
                dv=int(_get(f, path, f"{p}/neuron/vDecay")),
                du=int(_get(f, path, f"{p}/neuron/iDecay")) - 1,
                v_scale=float(_get(f, path, f"{p}/neuron/vScale")),
            ))
            mode = _get(f, path, f"{p}/neuron/resetMode")[0].decode()
            if mode != "soft":
                raise StmFileError(f"{path}: {p} resetMode {mode!r}, the runner needs 'soft'")
        return StmNetwork((c, h, w), int(_get(f, path, "stm/inFracBits")),
                          int(_get(f, path, "stm/inBits")), layers, cfg)


def load_stm(path: str | os.PathLike, data: bytes | None = None) -> STM:
    """Rebuild the torch STM of an export; checks its integers match the stored ones.
    From ``data``, the file's bytes, when given (``path`` then only names it)."""
    path = Path(path)
    net = read_network(path, data)
    stm = STM(net.config)
    with _open(path, data) as f:
        state = {}
        for name in stm.state_dict():
            state[name] = torch.from_numpy(np.asarray(_get(f, path, f"stm/float/{name}")))
    stm.load_state_dict(state)
    for i, ((exp, _, m, dp), spec) in enumerate(zip(_layer_integers(stm), net.layers)):
        ours = (exp, dp["vThMant"], dp["vDecay"])
        theirs = (spec.weight_exp, spec.vth, spec.dv)
        if ours != theirs or not np.array_equal(m.astype(np.int32), spec.weight):
            raise StmFileError(
                f"{path}: layer {i + 1} integers (exp, vth, dv) = {theirs} in the file, "
                f"{ours} from its float parameters (file edited or broken)")
    return stm



