"""``hybrid summary``: parameters and MACs per component of a variant, like torchinfo."""
from __future__ import annotations

import json

import click

from hybrid.cli.types import Size


def _fmt(n: int) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def render_table(title: str, rep: dict) -> str:
    """A torchinfo-like table of ``ann.counting.totals`` output (any extra rows too)."""
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
           f"Total params: {_fmt(rep['params'])}",
           f"Total mult-adds per video: {_fmt(rep['macs'])}"]
    if show_acs:
        out.append(f"Total accumulates per video: {_fmt(rep['acs'])}")
    return "\n".join(out)


@click.command()
@click.option("--variant", default="base", show_default=True,
              help="Dense-partition variant: tiny, base or large.")
@click.option("--size", type=Size(order="hw"),
              help="I-frame input size WIDTHxHEIGHT, N: NxN [default: the variant's].")
@click.option("--stm-size", type=Size(order="hw"),
              help="STM map size WIDTHxHEIGHT [default: the variant's, scaled with --size].")
@click.option("--stm-channels", type=click.IntRange(min=1),
              help="STM output channels C [default: the variant's].")
@click.option("--segments", type=click.IntRange(min=1),
              help="Segments S per video [default: the variant's].")
@click.option("--classes", type=click.IntRange(min=1), help="Classifier outputs.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def summary(variant, size, stm_size, stm_channels, segments, classes, as_json) -> None:
    """Parameters and MACs per component of the hybrid model, per video: the two STMs
    (spiking partition) and the dense partition.

    MACs are counted analytically (ann/counting.py; cross-checked against torch's
    FlopCounterMode in the tests) for one video of S segments. An STM counts MACs for its
    first layer (analog input); its spiking layers' ACs need measured firing rates.
    """
    import dataclasses

    from ann.config import VARIANTS
    from ann.counting import count, totals

    if variant not in VARIANTS:
        raise click.BadParameter(f"unknown variant {variant!r}; choose from "
                                 f"{', '.join(VARIANTS)}", param_hint="--variant")
    cfg = VARIANTS[variant]
    changes = {}
    hw = size  # (H, W)
    if hw is not None:
        changes["image_size"] = hw
        (H0, W0), (h0, w0) = cfg.image_size, cfg.stm_size
        changes["stm_size"] = (max(1, round(hw[0] * h0 / H0)), max(1, round(hw[1] * w0 / W0)))
    if stm_size is not None:
        changes["stm_size"] = stm_size
    for key, value in (("stm_channels", stm_channels), ("segments", segments),
                       ("num_classes", classes)):
        if value is not None:
            changes[key] = value
    try:
        cfg = dataclasses.replace(cfg, **changes)
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    comps = count(cfg)
    stm_note = ""
    if set(cfg.modalities) & {"mv", "r"}:
        stm_rows, stm_note = _stm_components(cfg)
        comps = stm_rows + comps
    rep = {"variant": variant, "config": dataclasses.asdict(cfg), **totals(comps)}
    if as_json:
        click.echo(json.dumps(rep, indent=2))
        return
    H, W = cfg.image_size
    h, w = cfg.stm_size
    click.echo(render_table(
        f"DenseModel '{variant}': I-frame {H}x{W}, STM {cfg.stm_channels}x{h}x{w}, "
        f"{cfg.segments} segments, width {cfg.width}, depth {cfg.depth}, heads {cfg.heads}, "
        f"filters {cfg.filters}, encoder {cfg.encoder}, modalities {'+'.join(cfg.modalities)}",
        rep,
    ) + stm_note)


def _stm_components(cfg) -> tuple[list, str]:
    """Rows for the two STMs (the spiking partition) as the composed model builds them
    (hybrid.model.HybridConfig's STM settings), sized so their output maps are the dense
    partition's ``stm_size``: parameters, and the MACs of each STM's first layer, which
    sees analog MV/residual values (S segments x 11 timesteps). The two spiking layers'
    ACs depend on firing rates, which only a run on data measures."""
    import dataclasses
    import math

    from ann.counting import Component
    from hybrid.model import HybridConfig
    from neuro.stm import STM

    rows, notes = [], []
    hcfg = HybridConfig(timesteps=11)
    for m, c_in in (("mv", 2), ("r", 3)):
        if m not in cfg.modalities:
            continue
        base = hcfg.stm_config(c_in)
        scfg = dataclasses.replace(base, widths=(*base.widths[:2], cfg.stm_channels))
        stm = STM(scfg)
        stride = math.prod(scfg.strides)
        h, w = cfg.stm_size[0] * stride, cfg.stm_size[1] * stride
        layers = stm.layer_counts(h, w)
        steps = cfg.segments * hcfg.timesteps
        rows.append(Component(f"stm.{m}", sum(x["params"] for x in layers),
                              layers[0]["dense_ops"] * steps))
        spiking = sum(x["dense_ops"] for x in layers[1:]) * steps
        notes.append(f"stm.{m}: input {c_in}x{h}x{w}, {hcfg.timesteps} steps; its spiking "
                     f"layers' ACs = firing rate x {spiking:,} (at rate 1)")
    return rows, "\n" + "\n".join(notes)
