"""Robust normalisation (Rueckauer et al. 2017): each spiking layer's scale is the p-th percentile
lambda of its calibrated activations. Threshold balancing sets theta = lambda; weight scaling moves
lambda into the neighbouring weights (W_l <- W_l * lambda_{l-1} / lambda_l) so theta = 1. Both give
the same spikes; weight scaling needs linear neighbours, and falls back to a threshold otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np

from snnconvert.calibrate.observe import nonzero_percentile
from snnconvert.errors import InputError
from snnconvert.ir.graph import Graph, Node
from snnconvert.ir.registry import has_flag
from snnconvert.passes.registry import Param, PassContext, register_pass


def scale_of(ctx: PassContext, value: str, p: float, exclude_zeros: bool) -> float:
    if ctx.calibration is None:
        raise InputError("normalize: a calibration file is required (--calibration)")
    s = ctx.calibration.sketch(value)
    lam = nonzero_percentile(s, p) if exclude_zeros else float(s.percentile(p))
    if not np.isfinite(lam) or lam <= 0:
        lam = float(s.max) if s.max and s.max > 0 else 1.0
        ctx.notes.append(
            f"normalize: '{value}' has no positive activity on the calibration data; scale {lam:g}"
        )
    return lam


@register_pass(
    "normalize",
    {
        "percentile": Param(
            (int, float), 99.0, "percentile of the activations used as scale", lo=50.0, hi=100.0
        ),
        "mode": Param(
            str, "threshold", "threshold balancing or weight scaling", choices=("threshold", "weights")
        ),
        "exclude_zeros": Param(bool, False, "take the percentile over non-zero activations only"),
    },
)
def normalize(g: Graph, params: dict[str, Any], ctx: PassContext) -> Graph:
    """Record each ReLU output's scale lambda (threshold mode) or fold it into the weights."""
    g = g.copy()
    scales = g.meta.setdefault("scales", {})
    folded = g.meta.setdefault("value_scale", {})
    for r in [n for n in g.nodes if has_flag(n.op, "spike_source", n.attrs)]:
        out = r.outputs[0]
        lam = scale_of(ctx, out, float(params["percentile"]), bool(params["exclude_zeros"]))
        if params["mode"] == "weights" and _fold_into_weights(g, r, lam):
            scales[out] = 1.0
            folded[out] = lam
        else:
            if params["mode"] == "weights":
                ctx.notes.append(
                    f"normalize: '{r.name}' has non-linear neighbours; threshold balancing used instead"
                )
            scales[out] = lam
    g.meta["normalize"] = dict(params)
    return g


def _fold_into_weights(g: Graph, r: Node, lam: float) -> bool:
    """Weight scaling between layers (flag layer: weight at input 1, bias at 2) on both sides."""
    src = g.producer(r.inputs[0])
    cons = g.consumers(r.outputs[0])
    if src is None or not has_flag(src.op, "layer", src.attrs) or len(g.consumers(r.inputs[0])) != 1:
        return False
    if (
        not cons
        or r.outputs[0] in g.outputs
        or any(not has_flag(c.op, "layer", c.attrs) or c.inputs[0] != r.outputs[0] for c in cons)
    ):
        return False
    _scale_initializer(g, src, 1, 1.0 / lam)
    if len(src.inputs) > 2:
        _scale_initializer(g, src, 2, 1.0 / lam)
    for c in cons:
        _scale_initializer(g, c, 1, lam)
    return True


def _scale_initializer(g: Graph, node: Node, idx: int, factor: float) -> None:
    """Give the node its own scaled copy of a weight (weights may be shared between nodes)."""
    name = g.unique_name(f"{node.name}_in{idx}_scaled")
    g.initializers[name] = (g.initializers[node.inputs[idx]].astype(np.float64) * factor).astype(np.float32)
    node.inputs[idx] = name
