"""Rewrites that make parts of the graph spike, and the domain labels that say which parts do."""

from __future__ import annotations

from typing import Any

import numpy as np

from snnconvert.calibrate.observe import MOVES
from snnconvert.errors import GraphError
from snnconvert.ir.graph import Graph
from snnconvert.ir.registry import get
from snnconvert.passes import Param, PassContext, register_pass


@register_pass(
    "relu_to_if",
    {
        "v0": Param(
            (int, float), 0.5, "initial membrane potential as a fraction of the threshold", lo=0.0, hi=1.0
        ),
        "max_spikes_per_step": Param(
            int, 1, "events a neuron may emit in one step (multi-threshold)", lo=1, hi=64
        ),
        "levels": Param(int, 0, "count coding: largest spike count (0 = rate coding)", lo=0, hi=4096),
    },
    spikes=("Relu",),
)
def relu_to_if(g: Graph, params: dict[str, Any], ctx: PassContext) -> Graph:
    """Replace every ReLU by an integrate-and-fire neuron (reset by subtraction) with its scale as threshold."""
    g = g.copy()
    scales = g.meta.get("scales", {})
    for r in g.nodes:
        if r.op != "Relu":
            continue
        out = r.outputs[0]
        if out not in scales:
            raise GraphError(f"relu_to_if: node '{r.name}' has no scale; run the normalize pass first")
        lam = float(scales[out]) / (params["levels"] if ctx.coding == "count" and params["levels"] else 1)
        tname = g.unique_name(f"{r.name}_theta")
        g.initializers[tname] = np.asarray(lam, dtype=np.float32)
        attrs = {
            "v0": float(params["v0"]),
            "max_spikes_per_step": int(params["max_spikes_per_step"]),
            "lo": 0.0,
        }
        if ctx.coding == "count":
            attrs.update(coding="count", hi=float(params["levels"] or 1))
        else:
            attrs.update(coding="rate", hi=1.0)
        r.op = "IF"
        r.inputs = [r.inputs[0], tname]
        r.attrs = attrs
    return g


@register_pass("maxpool_to_avgpool")
def maxpool_to_avgpool(g: Graph, params: dict[str, Any], ctx: PassContext) -> Graph:
    """Replace MaxPool by AvgPool of the same window (max of spike trains is not a spike train)."""
    g = g.copy()
    for n in g.nodes:
        if n.op == "MaxPool":
            n.op = "AvgPool"
            n.attrs = {**n.attrs, "count_include_pad": 1}
            ctx.notes.append(f"maxpool_to_avgpool: '{n.name}' now averages (the ANN it approximates changed)")
    return g


def assign_domains(g: Graph, coding: str) -> None:
    """Label every value: 'spike' if it is a neuron's output or a pure data move of spikes, else 'analog'."""
    for name in g.inputs:
        g.values[name].domain = "analog"
        g.values[name].coding = None
    for n in g.nodes:
        op = get(n.op)
        dyn = [i for i in n.inputs if i not in g.initializers]
        spike = op.spiking or (n.op in MOVES and dyn and all(g.values[i].domain == "spike" for i in dyn))
        for o in n.outputs:
            g.values[o].domain = "spike" if spike else "analog"
            g.values[o].coding = coding if spike else None
