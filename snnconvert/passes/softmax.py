"""Softmax -> SpikingSoftmax (SIT 2024), fitted to the range the attention scores really take.

SIT's SI-exp was fitted on [-1, 1] and broke outside it, so its authors retrained the ANN with a
sigmoid before softmax. We change nothing in the ANN: softmax is shift invariant, so the spiking
version subtracts each row's maximum and SI-exp only sees (-inf, 0]; calibration recorded exactly
that shifted score, so the SI-exp table is the one fitted on the smallest [-R, 0] that covers the
calibrated scores; what falls below underflows to 0 (and is reported).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from snnconvert.calibrate.observe import shifted_key
from snnconvert.calibrate.sketch import QuantileSketch
from snnconvert.errors import GraphError
from snnconvert.ir.graph import Graph
from snnconvert.neurons.fewspike import covering_table
from snnconvert.passes.registry import Param, PassContext, register_pass


def fraction_below(s: QuantileSketch, x: float) -> float:
    """Fraction of the sketched values below x (to the sketch's bucket resolution)."""
    if s.count == 0:
        return 0.0
    values, counts = s.histogram()
    return float(counts[np.clip(values, s.min, s.max) < x].sum()) / s.count


def _calibrated_range(g: Graph, n, ctx: PassContext, coverage: float) -> tuple[float, QuantileSketch | None]:
    cal = ctx.calibration
    if cal is None:
        raise GraphError(
            f"softmax_to_spiking: node '{n.name}': a calibration file is required (or set the pass's 'range')"
        )
    key = shifted_key(n.outputs[0])
    if key in cal.sketches:
        s = cal.sketches[key]
        return max(-float(s.percentile(100.0 - coverage)), 1e-6), s
    s = cal.sketch(n.inputs[0])  # an older calibration file: max - min bounds the shifted range
    ctx.notes.append(
        f"softmax_to_spiking: '{n.name}': the calibration file has no row-max-shifted scores "
        "(made before spiking softmax existed); using max - min of the scores, rerun `calibrate` for a tighter range"
    )
    return max(float(s.max) - float(s.min), 1e-6), None


@register_pass(
    "softmax_to_spiking",
    {
        "K": Param(int, 12, "SI-exp steps (a fitted table must exist)", choices=(8, 12, 16)),
        "n_spike": Param(int, 64, "SI-norm input spikes: softmax is quantised to 1/n_spike", lo=1, hi=4096),
        "min_spikes_per_key": Param(
            (int, float),
            0,
            "at least this many SI-norm spikes per key of a row (n_spike raised for long rows: 64 spikes "
            "cannot hold a near-uniform softmax over ViT-Base's 197 keys)",
            lo=0,
            hi=64,
        ),
        "v0": Param(
            (int, float),
            0.5,
            "SI-norm initial membrane as a fraction of its threshold (0: floor, as SIT; 0.5: rounds)",
            lo=0.0,
            hi=1.0,
        ),
        "range": Param(
            (int, float), 0.0, "SI-exp input range R of [-R, 0] (0: from calibration)", lo=0.0, hi=1e6
        ),
        "coverage": Param(
            (int, float),
            99.9,
            "percent of calibrated row-shifted scores the range must cover",
            lo=50.0,
            hi=100.0,
        ),
    },
    spikes=("Softmax",),
)
def softmax_to_spiking(g: Graph, params: dict[str, Any], ctx: PassContext) -> Graph:
    """Replace every Softmax by SI-exp few-spike neurons + SI-norm IF neurons (SIT Spiking-Softmax)."""
    g = g.copy()
    K = int(params["K"])
    info = g.meta.setdefault("spiking_softmax", {})
    for n in g.nodes:
        if n.op != "Softmax":
            continue
        sketch = None
        if float(params["range"]) > 0:
            R = float(params["range"])
        else:
            R, sketch = _calibrated_range(g, n, ctx, float(params["coverage"]))
        entry, covered = covering_table(K, R)
        lo = float(entry["range"][0])
        under = fraction_below(sketch, lo) if sketch is not None else None
        if not covered:
            ctx.notes.append(
                f"softmax_to_spiking: '{n.name}': scores reach -{R:.3g} below the row max, wider than the widest "
                f"fitted SI-exp range [{lo:g}, 0]; {100 * (under or 0):.3g}% of them underflow to 0"
            )
        else:
            ctx.notes.append(
                f"softmax_to_spiking: '{n.name}': SI-exp K={K} fitted on [{lo:g}, 0] (exp RMSE "
                f"{float(entry['rmse']):.4f}) for scores down to -{R:.3g} below the row max"
                + (f", {100 * under:.3g}% underflow" if under is not None else "")
            )
        axis = int(n.attrs.get("axis", -1))
        keys = int(g.values[n.inputs[0]].shape[axis])
        n_spike = max(int(params["n_spike"]), math.ceil(float(params["min_spikes_per_key"]) * keys))
        if n_spike > int(params["n_spike"]):
            ctx.notes.append(
                f"softmax_to_spiking: '{n.name}': rows of {keys} keys: SI-norm gets {n_spike} input spikes "
                f"(min_spikes_per_key {params['min_spikes_per_key']:g}), not n_spike = {params['n_spike']}"
            )
        n.op = "SpikingSoftmax"
        n.attrs = {
            "axis": axis,
            "n_spike": n_spike,
            "v0": float(params["v0"]),
            "lo": lo,
            "T": [float(v) for v in entry["T"]],
            "h": [float(v) for v in entry["h"]],
            "d": [float(v) for v in entry["d"]],
            "table": f"K={K} on [{lo:g}, 0], exp RMSE {float(entry['rmse']):.4g}",
        }
        info[n.name] = {
            "K": K,
            "range_needed": R,
            "table_range": [lo, 0.0],
            "exp_rmse": float(entry["rmse"]),
            "underflow_fraction": under,
            "n_spike": n_spike,
            "v0": float(params["v0"]),
        }
    return g
