"""Parameters and MACs of the dense partition per component, computed analytically.

MACs follow ``shared/notes/energy.md``: conv = H_out*W_out*C_out*C_in/groups*k_h*k_w;
linear = tokens*in*out; attention = the two matmuls Q K^T and A V (2*L_q*L_k*D); bias,
norms, softmax and activations are left out. Counts are per video (batch 1, all S
segments). ``flop_counter_macs`` cross-checks them with torch's own FlopCounterMode on
the meta device (where attention runs the math path, which the counter sees).

Dense counts only: the spiking partition's operations (ACs from recorded spikes) are the
profiler's (``deploy/energy/profiler.py``), which takes these rows for the dense partition.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ann.config import DenseConfig
from ann.layers.patch_embed import patch_geometry


@dataclass(frozen=True)
class Component:
    name: str  # e.g. 'embed.i', 'encoder', 'mixer', 'rrdb', 'head'
    params: int  # learnable parameters
    macs: int  # multiply-accumulates per video (batch 1, all segments)

    def as_dict(self) -> dict:
        return asdict(self)


def _linear(tokens: int, n_in: int, n_out: int) -> tuple[int, int]:
    """(params, MACs) of a biased Linear applied to `tokens` tokens."""
    return n_in * n_out + n_out, tokens * n_in * n_out


def _conv(n_in: int, n_out: int, kh: int, kw: int, out_pixels: int) -> tuple[int, int]:
    """(params, MACs) of a biased conv with `out_pixels` output positions."""
    return n_in * n_out * kh * kw + n_out, out_pixels * n_in * n_out * kh * kw


def _add(*pairs: tuple[int, int]) -> tuple[int, int]:
    return sum(p for p, _ in pairs), sum(m for _, m in pairs)


def _norm(dim: int) -> tuple[int, int]:
    return 2 * dim, 0


def block_counts(L: int, Lc: int | None, D: int, mlp_ratio: float) -> tuple[int, int]:
    """(params, MACs) of one pre-norm block over L query tokens; a cross block when Lc
    (context tokens) is given, else self-attention (Lc = L)."""
    hidden = int(D * mlp_ratio)
    mlp = _add(_linear(L, D, hidden), _linear(L, hidden, D))
    if Lc is None:
        attn = _add(_linear(L, D, 3 * D), _linear(L, D, D), (0, 2 * L * L * D))
        return _add(_norm(D), attn, _norm(D), mlp)
    attn = _add(_linear(L, D, D), _linear(Lc, D, 2 * D), _linear(L, D, D), (0, 2 * L * Lc * D))
    return _add(_norm(D), _norm(D), attn, _norm(D), mlp)


def _encoder(cfg: DenseConfig) -> tuple[int, int]:
    M, D, L = len(cfg.modalities), cfg.width, cfg.segments * cfg.tokens
    if cfg.encoder == "unified":
        blk = block_counts(M * L, None, D, cfg.mlp_ratio)
        return _add(*[blk] * cfg.depth, _norm(D))
    if cfg.encoder == "separate":
        blk = block_counts(L, None, D, cfg.mlp_ratio)
        one = _add(*[blk] * cfg.depth, _norm(D))
        return _add(*[one] * M)
    # cross: weights shared over modalities, applied once per modality
    p, m = block_counts(L, (M - 1) * L, D, cfg.mlp_ratio)
    return p * cfg.depth + 2 * D, m * M * cfg.depth


def _mixer(cfg: DenseConfig) -> tuple[int, int]:
    D, F, px = cfg.width, cfg.filters, cfg.segments * cfg.tokens  # positions per video
    if not cfg.mixer:
        one = _conv(D, F, 1, 1, px)
    else:
        parts = [_conv(D, F, 3, 3, px), _conv(F, F, 3, 3, px), _conv(F, F, 3, 3, px)]
        if cfg.skips:
            parts.append(_conv(D, F, 1, 1, px))
        one = _add(*parts)
    return _add(*[one] * len(cfg.modalities))


def _rrdb(cfg: DenseConfig) -> tuple[int, int]:
    if not cfg.rrdb:
        return 0, 0
    nf, gc, px = cfg.filters, cfg.rrdb_growth, cfg.segments * cfg.tokens
    rdb = _add(*[_conv(nf + i * gc, gc if i < 4 else nf, 3, 3, px) for i in range(5)])
    return _add(*[rdb] * 3)


def _pool(cfg: DenseConfig) -> tuple[int, int]:
    if cfg.pooling == "gap":
        return 0, 0
    F, L = cfg.filters, cfg.segments * cfg.tokens
    return _add((F, 0), _norm(F), _linear(1, F, F), _linear(L, F, 2 * F),
                _linear(1, F, F), (0, 2 * L * F))


def count(cfg: DenseConfig) -> list[Component]:
    """Parameters and MACs per component of ``DenseModel(cfg)``, per video."""
    D, S, N, M = cfg.width, cfg.segments, cfg.tokens, len(cfg.modalities)
    rows = []
    for m in cfg.modalities:
        c, h, w = cfg.in_shape(m)
        (kh, _), (kw, _) = patch_geometry(h, cfg.grid), patch_geometry(w, cfg.grid)
        rows.append((f"embed.{m}", *_conv(c, D, kh, kw, S * N)))
    rows.append(("pos_embed", N * D + S * D + M * D, 0))
    rows.append((f"encoder.{cfg.encoder}", *_encoder(cfg)))
    rows.append(("mixer" if cfg.mixer else "mixer.off(1x1)", *_mixer(cfg)))
    rows.append(("rrdb", *_rrdb(cfg)))
    rows.append((f"pool.{cfg.pooling}", *_pool(cfg)))
    rows.append(("head", *_add(_norm(cfg.filters), _linear(1, cfg.filters, cfg.num_classes))))
    return [Component(n, int(p), int(m)) for n, p, m in rows]


def totals(components: list[Component]) -> dict:
    """{'params', 'macs', 'components'}: the JSON shape of ``hybrid summary``."""
    return {
        "params": sum(c.params for c in components),
        "macs": sum(c.macs for c in components),
        "components": [c.as_dict() for c in components],
    }


# component name prefix -> DenseModel submodule (for FlopCounterMode's per-module counts)
_MODULE_OF = {"embed": "embed", "pos_embed": None, "encoder": "encoder", "mixer": "mixer",
              "rrdb": "decoder", "pool": "pool", "head": "head"}


def flop_counter_macs(cfg: DenseConfig, per_component: bool = False) -> int | dict[str, int]:
    """MACs of one video's forward pass as torch's FlopCounterMode sees them (FLOPs / 2),
    built and run on the meta device so nothing is allocated or computed. With
    `per_component`, a dict keyed like ``count(cfg)``'s names."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ann.model import DenseModel

    with torch.device("meta"):
        model = DenseModel(cfg)
        args = {m: torch.empty(1, cfg.segments, *cfg.in_shape(m)) for m in cfg.modalities}
    with FlopCounterMode(display=False) as fc:
        model(args.get("i"), args.get("mv"), args.get("r"))
    if not per_component:
        return fc.get_total_flops() // 2
    by_module = {k: sum(v.values()) // 2 for k, v in fc.get_flop_counts().items()}
    out = {}
    for c in count(cfg):
        prefix, _, rest = c.name.partition(".")
        module = _MODULE_OF[prefix]
        # ModuleDicts (embed, mixer) are never called themselves: read their entries
        names = {"embed": [f"embed.{rest}"], "mixer": [f"mixer.{m}" for m in cfg.modalities],
                 None: []}.get(module, [module])
        out[c.name] = sum(by_module.get(f"DenseModel.{n}", 0) for n in names)
    return out


def _short(n: int) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def render_table(title: str, rep: dict) -> str:
    """A torchinfo-like table of :func:`totals`' output (any extra rows too)."""
    rows = [(c["name"], c["params"], c["macs"], c.get("acs", 0)) for c in rep["components"]]
    show_acs = any(r[3] for r in rows)
    head = ["Component", "Params", "MACs"] + (["ACs"] if show_acs else [])
    cells = [[n, f"{p:,}", f"{m:,}"] + ([f"{a:,}"] if show_acs else []) for n, p, m, a in rows]
    total = ["Total", f"{rep['params']:,}", f"{rep['macs']:,}"]
    total += [f"{rep['acs']:,}"] if show_acs else []
    widths = [max(len(r[i]) for r in [head, total, *cells]) for i in range(len(head))]
    line = "=" * (sum(widths) + 3 * (len(widths) - 1))

    def fmt(r):
        return "   ".join(c.ljust(w) if i == 0 else c.rjust(w)
                          for i, (c, w) in enumerate(zip(r, widths)))

    out = [title, line, fmt(head), line, *map(fmt, cells), line, fmt(total), line,
           f"Total params: {_short(rep['params'])}",
           f"Total mult-adds per video: {_short(rep['macs'])}"]
    if show_acs:
        out.append(f"Total accumulates per video: {_short(rep['acs'])}")
    return "\n".join(out)
