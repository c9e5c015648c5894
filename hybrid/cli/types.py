"""click parameter types shared by the commands."""
from __future__ import annotations

import math

import click


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan and inf, which pass every range check
    (``nan <= 0`` is False) and would end in a traceback or a run of NaN losses."""

    name = "finite float"

    def convert(self, value, param, ctx):
        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return v
