"""``hybrid summary``: parameters and MACs per component of a variant, like torchinfo."""
from __future__ import annotations

import json

import click

from hybrid.cli.options import apply_preset, model_config, model_options, preset_option


@click.command()
@preset_option
@model_options
@click.option("--classes", type=click.IntRange(min=1), default=101, show_default=True,
              help="Classifier outputs (train takes them from the data; UCF-101: 101).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.pass_context
def summary(ctx, classes, as_json, **opts) -> None:
    """Parameters and MACs per component of the hybrid model `hybrid train` builds with
    the same options, per video: the two STMs (spiking partition) and the dense partition.

    MACs are counted analytically (ann/counting.py; equal to torch's FlopCounterMode on
    the built model, tests/test_summary.py) for one video of S segments, one view. An STM
    counts MACs for its first layer (analog input); its spiking layers' ACs need measured
    firing rates (their dense operations at rate 1 are listed).
    """
    import dataclasses

    from ann.counting import render_table, totals
    from hybrid.model import count

    p = apply_preset(ctx, opts)
    hcfg = model_config(p, classes)
    comps, spiking = count(hcfg)
    cfg = hcfg.dense_config()
    rep = {"variant": hcfg.variant, "preset": p["preset"], "model_config": hcfg.to_dict(),
           "config": dataclasses.asdict(cfg), **totals(comps),
           "stm_spiking_ops_at_rate_1": spiking}
    if as_json:
        click.echo(json.dumps(rep, indent=2))
        return
    H, W = cfg.image_size
    h, w = cfg.stm_size
    sh, sw = hcfg.stm_input_size()
    notes = [f"stm.{m}: input {c}x{sh}x{sw}, strides {hcfg.stm_config(c).strides}, "
             f"{hcfg.timesteps} steps; its spiking layers' ACs = firing rate x "
             f"{spiking[m]:,} (at rate 1)" for m, c in (("mv", 2), ("r", 3)) if m in spiking]
    if hcfg.temporal == "common" and len(spiking) == 2:
        notes.append("common STM: stm.r holds its own first layer; its spiking layers are "
                     "stm.mv's (parameters counted once, operations per modality)")
    if hcfg.temporal == "lstm":
        notes += [f"lstm.{m}: a dense ConvLSTM in place of the STM, hidden "
                  f"{hcfg.lstm_geometry(c).hidden}, stride {hcfg.lstm_geometry(c).stride}, "
                  f"{hcfg.timesteps} steps (all MACs)"
                  for m, c in (("mv", 2), ("r", 3)) if m in hcfg.modalities]
    if hcfg.temporal == "none":
        notes.append("no STM: each segment's last accumulated P-frame goes to embed.mv / "
                     "embed.r directly")
    if not hcfg.stm.get("learn_neuron", True):
        notes.append("STM thresholds and leaks fixed (counted as parameters, not trained)")
    click.echo(render_table(
        f"HybridModel '{hcfg.variant}'{' (preset ' + p['preset'] + ')' if p['preset'] else ''}"
        f": I-frame {H}x{W}, STM maps {cfg.stm_channels}x{h}x{w}, {cfg.segments} segments, "
        f"width {cfg.width}, depth {cfg.depth}, heads {cfg.heads}, filters {cfg.filters}, "
        f"encoder {cfg.encoder}, modalities {'+'.join(cfg.modalities)}"
        f"{'' if hcfg.temporal == 'stm' else ', temporal ' + hcfg.temporal}",
        rep,
    ) + "".join("\n" + n for n in notes))
