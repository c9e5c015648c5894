"""``hybrid doctor`` and ``hybrid demo``."""
from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def doctor(as_json: bool) -> None:
    """Print versions and check that Lava, SLAYER and PyAV work here.

    Exit status 0 only if every check passes.
    """
    import neuro  # noqa: F401  (applies the lava compatibility layer first)
    from hybrid import doctor as doc

    results = []
    for name, target, fix in doc.CHECKS:
        r = doc.run_check(name, target, fix)
        results.append(r)
        if not as_json:
            mark = click.style("PASS", fg="green") if r.ok else click.style("FAIL", fg="red")
            click.echo(f"[{mark}] {r.name:<18} {r.detail} ({r.seconds:.2f}s)")
            if not r.ok:
                click.echo(f"       fix: {r.fix}")
    rep = doc.report(results)
    if as_json:
        click.echo(json.dumps(rep, indent=2))
    else:
        click.echo("versions: " + ", ".join(f"{k} {v}" for k, v in rep["versions"].items()))
        n_ok = sum(r.ok for r in results)
        click.echo(f"{n_ok}/{len(results)} checks passed")
    if not rep["ok"]:
        raise SystemExit(1)


@click.command()
@click.option("-o", "--out", type=click.Path(file_okay=False), default="demo-out",
              show_default=True, help="Folder for the demo's outputs.")
@click.option("--epochs", type=click.IntRange(1), default=None,
              help="Training epochs [default: the demo's].")
@click.option("--smoke", is_flag=True, help="Only the quick PyAV + torch + Lava smoke run.")
def demo(out: str, epochs: int | None, smoke: bool) -> None:
    """The main job on built-in defaults: synthesise an action dataset, train the tiny
    hybrid model on CPU, evaluate it and predict a video (re-running resumes)."""
    import dataclasses

    from hybrid.cli.common import progress_bar
    from hybrid.demo import DemoConfig, run_demo, run_smoke

    if smoke:
        run_smoke(out, echo=click.echo)
        return
    cfg = DemoConfig() if epochs is None else dataclasses.replace(DemoConfig(), epochs=epochs)
    run_demo(out, cfg, echo=click.echo, progress=progress_bar)
