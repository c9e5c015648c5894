"""The seeds benchmark (benchmarks/temporal_order.py): its 95 % interval by hand, and its
per-set defaults."""
import importlib.util
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("temporal_order",
                                                  ROOT / "benchmarks" / "temporal_order.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ci95_is_the_student_t_interval():
    t = _module()
    # two seeds: t(0.975, 1) = 12.7062; sd = 0.1 * sqrt(2) (ddof 1)
    lo, hi = t.ci95([0.5, 0.7])
    half = 12.7062 * (0.2 / math.sqrt(2)) / math.sqrt(2)
    assert (lo, hi) == pytest.approx((0.6 - half, 0.6 + half), abs=1e-4)
    # five seeds: t(0.975, 4) = 2.7764
    v = [0.8, 0.9, 1.0, 0.9, 0.85]
    m = sum(v) / 5
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / 4)
    lo, hi = t.ci95(v)
    assert (lo, hi) == pytest.approx((m - 2.7764 * sd / math.sqrt(5),
                                      m + 2.7764 * sd / math.sqrt(5)), abs=1e-4)
    assert t.ci95([0.25]) == (0.25, 0.25)


def test_summary_groups_runs_per_variant_in_table_order():
    t = _module()
    runs = [{"variant": v, "seed": s, "top1": a, "train_loss": 1.0, "train_acc": 0.5,
             "train_wall_s": 10.0}
            for v, s, a in [("W/o STM", 1, 0.5), ("STM", 1, 0.9), ("STM", 0, 0.8),
                            ("W/o STM", 0, 0.4)]]
    out = t.summarise(runs)
    assert [s["variant"] for s in out] == ["STM", "W/o STM"]
    assert out[0]["top1"] == [0.8, 0.9] and out[0]["seeds"] == [0, 1]
    assert out[1]["top1_mean"] == pytest.approx(0.45)
    # paired by seed against no STM: differences 0.4, 0.4
    assert out[0]["vs_none"]["diff"] == pytest.approx([0.4, 0.4])
    assert out[0]["vs_none"]["ci95"] == pytest.approx([0.4, 0.4])
    assert "vs_none" not in out[1]


def test_each_set_defaults_to_its_documented_setting():
    import argparse

    t = _module()
    order = t.fill_defaults(argparse.Namespace(set="order", epochs=None, per_class=None))
    assert (order.epochs, order.per_class) == (60, 24)
    hard = t.fill_defaults(argparse.Namespace(set="hard", epochs=None, per_class=None))
    assert (hard.epochs, hard.per_class) == (36, 12)
    given = t.fill_defaults(argparse.Namespace(set="order", epochs=20, per_class=12))
    assert (given.epochs, given.per_class) == (20, 12)
