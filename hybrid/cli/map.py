"""``hybrid map``: the spiking partition's layers onto a neuromorphic chip's cores."""
from __future__ import annotations

import json

import click

from hybrid.cli.types import Size

CHIP_NAMES = ("loihi", "loihi2")  # deploy.presets.CHIPS (kept here so --help stays instant)


@click.command(name="map")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--chip", type=click.Choice(CHIP_NAMES), default=None,
              help="Chip preset (deploy/presets.py names each figure's source) [default: "
                   "a deploy folder's (its mapping.json), else loihi2].")
@click.option("--size", type=Size(order="hw"), default=None,
              help="Map as if deployed at this STM input size, WIDTHxHEIGHT (N: NxN) "
                   "[default: each file's].")
@click.option("--no-weight-sharing", is_flag=True,
              help="Store every synapse (a compiler that expands convolutions) instead of "
                   "one kernel copy per core.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def map_cmd(paths, chip, size, no_weight_sharing, as_json) -> None:
    """Neurons, synapses, fan-in/out, memory and cores per STM layer on a chip.

    PATHS: STM exports (.h5 from neuro.export, one per branch: MV and residual),
    folders holding them, or a deploy artifact folder (the STM files its manifest lists,
    checked: every file it lists; the chip its mapping.json was made for unless --chip).
    Exit status 1 when the partition does not fit one chip.
    """
    from deploy.artifact import branches
    from deploy.hardware.neurocores import mapping, mapping_file
    from deploy.presets import CHIPS
    from neuro.export import StmFileError

    try:
        nets = branches.read_branches(paths)
        stored = branches.stored_mapping(paths)
    except (StmFileError, ValueError) as e:  # BranchInputError, a bad mapping.json
        raise click.ClickException(str(e)) from e
    chip = chip or (stored["chip"] if stored else "loihi2")
    if chip not in CHIPS:
        raise click.ClickException(f"{paths[0]}/mapping.json: chip {chip!r} is not one of "
                                   f"{sorted(CHIPS)}; pass --chip")
    if size is not None:
        nets = {name: branches.resized(net, size) for name, net in nets.items()}
    try:
        mp = mapping.map_network(nets, CHIPS[chip], shared=not no_weight_sharing)
    except ValueError as e:  # a network no chip set could hold
        raise click.ClickException(f"--size {size[1]}x{size[0]}: {e}" if size else str(e)) from e
    if (stored and size is None and (stored["chip"], stored["shared_weights"]) ==
            (mp.chip, mp.shared_weights) and json.loads(json.dumps(mp.to_dict())) != stored):
        click.echo(f"warning: {paths[0]}/mapping.json differs from this toolkit's mapping "
                   "of its STMs (shown here); another version wrote it", err=True)
    if as_json:
        click.echo(json.dumps(mp.to_dict(), indent=2))
    else:
        click.echo(mapping_file.format_table(mp))
    if not mp.fits:
        raise SystemExit(1)


@click.command(name="nir")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the NIR files (stm_<branch>.nir, one per STM branch).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def nir_cmd(paths, out_dir, as_json) -> None:
    """Export STM branches to NIR (Input, Conv2d, LIF, Output per branch) and list what
    a NIR reader runs differently (soft reset, fixed point, delays, readout).

    PATHS: STM exports (.h5), folders holding them or a deploy artifact folder. Needs
    the `nir` extra.
    """
    from deploy.artifact import branches
    from neuro.export import StmFileError

    try:
        from deploy.artifact import nir as dnir
    except ImportError as e:
        raise click.ClickException(f"NIR export needs the 'nir' package "
                                   f"(pip install 'hybrid-snn-video[nir]'): {e}") from e
    try:
        nets = branches.read_branches(paths)
    except (StmFileError, branches.BranchInputError) as e:
        raise click.ClickException(str(e)) from e
    written = dnir.write_nir(nets, out_dir)
    diffs = dnir.differences(next(iter(nets.values())))
    if as_json:
        click.echo(json.dumps({"files": [str(p) for p in written], "differences": diffs},
                              indent=2))
        return
    for p in written:
        click.echo(f"wrote {p}")
    click.echo("A NIR reader runs these differently from the Lava / torch STM:")
    for d in diffs:
        click.echo(f"- {d}")
