"""Elementwise work (charged by default under the measured convention, --charge-other): charged in the ANN and the SNN alike, at the stated per-op
energies, on a hand-built graph whose counts are known by hand (a LayerNorm and an IF neuron)."""

from __future__ import annotations

import numpy as np
import pytest

from snnconvert.energy.report import OTHER_PJ, build_report
from snnconvert.errors import InputError
from snnconvert.ir.build import GraphBuilder
from snnconvert.passes.spikify import assign_domains

T, N, D = 10, 3, 4  # steps; a LayerNorm over [N, D]; then D -> D IF neurons


def _graph():
    b = GraphBuilder()
    x = b.input("x", (N, D))
    ln = b.node(
        "LayerNorm",
        [x, b.const("g", np.ones(D, np.float32)), b.const("b", np.zeros(D, np.float32))],
        name="ln",
    )
    s = b.node("IF", [ln, b.const("th", np.float32(1.0))], name="s")
    g = b.output(s)
    g.meta["coding"] = "rate"
    assign_domains(g, "rate")
    return g


def _report(**kw):
    g = _graph()
    sim = {
        "timesteps": T,
        "samples": 1,
        "layers": [{"name": "ln", "static": False}, {"name": "s", "static": False}],
    }
    return build_report(g, sim, {"s": np.ones((N, D))}, **kw)


def test_elementwise_work_is_charged_in_both_networks():
    n = N * D
    # by hand: LayerNorm 3n adds, 3n multiplies, n divisions, one square root per row (N); the ANN
    # runs it once, the SNN at every step (its input moves); the IF neurons integrate and compare
    # once per neuron per step in the SNN, where the ANN has the ReLU they stand for (a compare each)
    layernorm = 3 * n * 0.9 + 3 * n * 3.7 + n * 14.8 + N * 14.8
    ann = layernorm + n * 0.9
    snn = T * layernorm + T * n * (0.9 + 0.9)
    free, paid = _report(charge_other=False), _report(charge_other=True)
    assert paid["constants"]["charge_other"] and paid["constants"]["other_pj"] == OTHER_PJ
    assert paid["total"]["energy_other_ann_pj"] == pytest.approx(ann)
    assert paid["total"]["energy_other_snn_pj"] == pytest.approx(snn)
    assert paid["total"]["energy_ann_pj"] == pytest.approx(free["total"]["energy_ann_pj"] + ann)
    assert paid["total"]["energy_snn_pj"] == pytest.approx(free["total"]["energy_snn_pj"] + snn)
    assert free["total"]["energy_other_snn_pj"] == pytest.approx(snn)  # listed even when not charged


def test_an_energy_can_be_overridden():
    paid = _report(charge_other=True, op_pj={"sqrt": 0.0, "div": 0.0})
    n = N * D
    assert paid["total"]["energy_other_ann_pj"] == pytest.approx(3 * n * 0.9 + 3 * n * 3.7 + n * 0.9)


@pytest.mark.parametrize("bad,msg", [({"log": 1.0}, "unknown operation"), ({"exp": -1.0}, "non-negative")])
def test_bad_energies_are_one_line_errors(bad, msg):
    with pytest.raises(InputError, match=msg):
        _report(charge_other=True, op_pj=bad)


@pytest.mark.parametrize(
    "convention,flag,charged",
    [("measured", None, True), ("sit", None, False), ("spikformer", None, False), ("measured", False, False),
     ("sit", True, True)],
)  # fmt: skip
def test_charged_by_default_under_the_measured_convention_only(convention, flag, charged):
    """Every operation is charged by default (measured); the papers' conventions leave elementwise
    work out, as the papers do, unless asked."""
    rep = _report(convention=convention, charge_other=flag)
    assert rep["constants"]["charge_other"] is charged
    extra = _report(convention=convention, charge_other=True)["total"]["energy_other_snn_pj"]
    assert extra > 0
    free = _report(convention=convention, charge_other=False)["total"]["energy_snn_pj"]
    assert rep["total"]["energy_snn_pj"] == pytest.approx(free + (extra if charged else 0.0))
