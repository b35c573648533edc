"""Rewrites that make parts of the graph spike, and the domain labels that say which parts do."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from snnconvert.calibrate.observe import channel_axis
from snnconvert.errors import GraphError
from snnconvert.ir.graph import Graph, Node, Value
from snnconvert.ir.registry import get, has_flag, run_op, torch_dtype
from snnconvert.ir.validate import check_coding
from snnconvert.passes.registry import Param, PassContext, register_pass


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
        hi = float(params["levels"] or 1) if ctx.coding == "count" else 1.0
        r.op, r.inputs, r.attrs = "IF", [r.inputs[0], _theta(g, r.name, lam)], if_attrs(ctx, params, 0.0, hi)
    return g


def if_attrs(ctx: PassContext, params: dict[str, Any], lo: float, hi: float) -> dict[str, Any]:
    """An IF neuron's attributes: the recipe's coding, the pass's v0 and events per step."""
    return {
        "coding": ctx.coding,
        "lo": float(lo),
        "hi": float(hi),
        "v0": float(params["v0"]),
        "max_spikes_per_step": int(params["max_spikes_per_step"]),
    }


def _theta(g: Graph, node: str, theta: float) -> str:
    """A neuron's threshold as a new scalar initializer."""
    name = g.unique_name(f"{node}_theta")
    g.initializers[name] = np.asarray(theta, dtype=np.float32)
    return name


@register_pass("maxpool_to_avgpool")
def maxpool_to_avgpool(g: Graph, params: dict[str, Any], ctx: PassContext) -> Graph:
    """Replace MaxPool by AvgPool of the same window (max of spike trains is not a spike train)."""
    g = g.copy()
    for n in g.nodes:
        if n.op == "MaxPool":
            n.op = "AvgPool"
            n.attrs = {**n.attrs, "count_include_pad": 1}
            ctx.notes.append(
                f"maxpool_to_avgpool: '{n.name}' now averages, so the SNN approximates a different ANN; if the "
                "model was trained with MaxPool, drop this pass (MaxPool then runs analog on running means)"
            )
    return g


def _keeps_spikes(g: Graph, n: Node, is_spike) -> bool:
    """Is the node's output still a spike train, its run-time inputs being spikes? For data moves and
    sums of spike trains (events from several sources, averages included: flag keeps_spikes), and
    a spike train scaled by a constant (events of another weight: flag scaling, with the one run-time
    input where the op is affine in it, x * c, c * x, x / c)."""
    dyn = [i for i in n.inputs if i not in g.initializers]
    if not dyn or not all(is_spike(i) for i in dyn):
        return False
    if has_flag(n.op, "keeps_spikes", n.attrs):
        return True
    if not has_flag(n.op, "scaling", n.attrs) or len(dyn) != 1:
        return False
    return get(n.op).affine_in(frozenset(k for k, i in enumerate(n.inputs) if i == dyn[0]))


def assign_domains(g: Graph, coding: str) -> None:
    """The final pass: label every value 'spike' (a neuron's output or a spike-preserving function
    of spikes: data moves, sums, constant scaling) with the graph's coding, or 'analog'; a neuron
    made for another coding is refused, naming it."""
    g.meta["coding"] = coding
    for name in g.inputs:
        g.values[name].domain = "analog"
        g.values[name].coding = None
    for n in g.nodes:
        spike = get(n.op).spiking or _keeps_spikes(g, n, lambda v: g.values[v].domain == "spike")
        for o in n.outputs:
            g.values[o].domain = "spike" if spike else "analog"
            g.values[o].coding = coding if spike else None
    check_coding(g)


def quantisation_error(values, counts, theta, lo: float, hi: float) -> np.ndarray:
    """Squared error sum_j counts_j * (v_j - theta*clip(round(v_j/theta), lo, hi))^2 for each theta."""
    th = np.asarray(theta, dtype=np.float64).reshape(-1, 1)
    q = th * np.clip(np.round(values / th), lo, hi)
    return ((values - q) ** 2 * counts).sum(axis=1)


def mse_threshold(sk, lo: float, hi: float, fallback: float, candidates: int = 256) -> float:
    """The theta (searched on a log grid up to max|x|/hi) whose count quantiser clip(round(x/theta),
    lo, hi) has the least squared error over the calibration histogram; `fallback` if x is all 0."""
    amax = max(abs(float(sk.min)), abs(float(sk.max)))
    if sk.count == 0 or not amax > 0:
        return fallback
    values, counts = sk.histogram()
    values, counts = np.clip(values, sk.min, sk.max), counts.astype(np.float64)
    grid = amax / hi * np.geomspace(1.0 / 64, 1.0, candidates)
    return float(grid[int(np.argmin(quantisation_error(values, counts, grid, lo, hi)))])


def level_doublings(levels: int, max_levels: int, tolerance: float) -> int:
    """How many times `tolerance` may double L from `levels` without passing max_levels."""
    k = 0
    while tolerance and levels << (k + 1) <= max_levels:
        k += 1
    return k


def _threshold(sk, relu: bool, lo: float, L: int, params: dict[str, Any], shape, axis) -> np.ndarray:
    """A neuron's theta, a scalar or (per_channel) one per channel broadcast along `axis`."""
    if params["per_channel"]:
        theta = channel_thresholds(sk, L, shape, axis)
        if theta is not None:
            return theta
    p = float(params["percentile"])
    lam = float(sk.percentile(p)) if relu else float(sk.percentile_abs(p))
    theta = (lam if lam > 0 else max(abs(sk.max), abs(sk.min), 1e-6)) / L
    if params["threshold"] == "mse":
        theta = mse_threshold(sk, lo, float(L), fallback=theta)
    return np.asarray(theta, dtype=np.float32)


def channel_thresholds(sk, L: int, shape, axis: int | None) -> np.ndarray | None:
    """theta_c = the channel's calibrated max |x| / L, shaped to broadcast along `axis`; None where
    calibration recorded no per-channel maxima for this shape, or the tensor was all zero (a dead
    channel gets a millionth of the largest channel's theta: it never fires)."""
    cm = sk.channel_max_abs
    if cm is None or axis is None or shape[axis] != len(cm) or not float(cm.max()) > 0:
        return None
    theta = np.maximum(cm, 1e-6 * float(cm.max())) / L
    return theta.reshape([len(cm) if a == axis else 1 for a in range(len(shape))]).astype(np.float32)


def relative_error(sk, theta: np.ndarray, lo: float, hi: float) -> float:
    """The RMS quantisation error of clip(round(x/theta), lo, hi) relative to RMS(x), over the
    calibration histogram: exact for one theta; per channel (where the histogram does not say which
    channel a value is in, and theta_c * hi is the channel's max, so nothing clips) each value's
    error is taken as min(x^2, mean(theta_c^2)/12), rounded to zero or uniform rounding noise."""
    values, counts = sk.histogram()
    if sk.count == 0 or not len(values):
        return 0.0
    values, counts = np.clip(values, sk.min, sk.max), counts.astype(np.float64)
    power = float((values**2 * counts).sum())
    if not power > 0:
        return 0.0
    theta = np.asarray(theta, dtype=np.float64)
    if theta.size == 1:
        err = float(quantisation_error(values, counts, theta.reshape(1), lo, hi)[0])
    else:
        err = float((np.minimum(values**2, float((theta**2).mean()) / 12.0) * counts).sum())
    return float(np.sqrt(err / power))


@register_pass(
    "spike_all",
    {
        "levels": Param(
            int, 16, "largest spike count L of a signed neuron (quantisation levels)", lo=1, hi=4096
        ),
        "percentile": Param(
            (int, float), 99.9, "percentile of |x| that L events must reach", lo=50.0, hi=100.0
        ),
        "max_spikes_per_step": Param(int, 1, "events a neuron may emit in one step", lo=1, hi=64),
        "v0": Param((int, float), 0.5, "initial membrane as a fraction of the threshold", lo=0.0, hi=1.0),
        "threshold": Param(
            str,
            "percentile",
            "how theta is chosen: 'percentile' (p-th percentile of |x| / L) or 'mse' (the theta that "
            "minimises the calibration data's squared quantisation error theta*clip(round(x/theta))",
            choices=("percentile", "mse"),
        ),
        "per_channel": Param(
            bool,
            False,
            "one theta per channel (calibrate.observe.channel_axis: a conv's or pool's channel axis, "
            "followed through elementwise ops; else attention's axis 1 or the features' last axis): "
            "the channel's calibrated max |x| / L, so outlier channels keep their range and the rest "
            "their resolution; tensors without per-channel maxima keep one theta",
        ),
        "tolerance": Param(
            (int, float),
            0.0,
            "L per tensor: doubled from `levels` (and events per step with it) until the estimated RMS "
            "quantisation error is at most this fraction of the tensor's RMS, or L reaches "
            "max_levels; 0 keeps L = levels everywhere",
            lo=0.0,
            hi=1.0,
        ),
        "max_levels": Param(int, 256, "the largest L `tolerance` may choose", lo=1, hi=4096),
    },
    spikes=("*",),
    codings=("count",),
)
def spike_all(g: Graph, params: dict[str, Any], ctx: PassContext) -> Graph:
    """Fully spiking (count coding): a signed IF neuron after every op whose output would be analog,
    ReLUs become unsigned neurons; sums, moves and constant scalings of spikes stay spikes.
    Threshold theta = p-th percentile of |x| / L, so L events cover the calibrated range, or (threshold
    'mse') the theta whose quantiser has the least squared error on the calibration histogram."""
    if ctx.calibration is None:
        raise GraphError("spike_all: a calibration file is required")
    g = g.copy()
    L = int(params["levels"])
    spike: set[str] = set()
    nodes: list[Node] = []
    masked = [o for o in ctx.calibration.masked if o in g.values]
    if masked:
        ctx.notes.append(
            f"spike_all: {len(masked)} masked tensor(s) (attention scores plus -inf or finfo.min) stay "
            "analog: a mask holds no data to spike, and the softmax that reads them makes masked "
            "positions exact zeros"
        )
    one_theta: list[str] = []  # per_channel asked, but the calibration has no per-channel maxima
    fragile = {o for n in g.nodes for o in n.outputs if _breaks_at_zero(g, o)}
    # channel axes read off the graph before the loop below renames outputs to insert neurons (the
    # walk back through producers must see the graph calibrate saw)
    axes = {o: channel_axis(g, o) for n in g.nodes for o in n.outputs if o in g.values}
    structural = structural_values(g)
    if structural:
        ctx.notes.append(
            f"spike_all: {len(structural)} value(s) computed from integer inputs alone (masks, ids) stay "
            "analog, and so does what they are applied to: a mask acts exactly on a running total"
        )
    for n in g.nodes:
        nodes.append(n)
        if _keeps_spikes(g, n, lambda v: v in spike):
            spike.update(n.outputs)
            continue
        if any(has_flag(n.op, f, n.attrs) for f in ("moves_data", "converts", "selects")):
            continue  # moving, converting or selecting analog values: the consumer's neuron quantises them
        for o in n.outputs:
            v = g.values[o]
            if (
                not v.dtype.startswith("float")
                or o in g.outputs
                or o in ctx.calibration.masked
                or o in fragile
                or o in structural
                or any(i in structural and _is_float(g, i) for i in n.inputs)
            ):
                continue  # (a mask applied to data: applied to the data's running total, exactly)
            relu = n.op == "Relu"
            src = n.inputs[0] if relu else o
            sk = ctx.calibration.sketch(o)
            # unsigned where calibration never saw a negative value (ReLU, softmax, x^2, a variance):
            # a signed neuron's transient negative counts would reach e.g. a square root below zero
            signed = not relu and sk.min < 0
            axis = axes[o]
            for k in range(level_doublings(L, int(params["max_levels"]), float(params["tolerance"])) + 1):
                levels = L << k
                lo = -float(levels) if signed else 0.0
                theta = _threshold(sk, relu, lo, levels, params, g.values[o].shape, axis)
                if not params["tolerance"] or relative_error(sk, theta, lo, levels) <= params["tolerance"]:
                    break
            if params["per_channel"] and sk.channel_max_abs is None and axis is not None:
                one_theta.append(o)
            tname = _theta(g, n.name, theta)
            attrs = if_attrs(ctx, params, lo, levels)
            attrs["max_spikes_per_step"] <<= k  # as many steps to settle as at L = levels
            if relu:  # the ReLU itself becomes the neuron
                n.op, n.inputs, n.attrs = "IF", [src, tname], attrs
            else:
                pre = g.unique_name(o + "_pre")
                n.outputs = [pre if x == o else x for x in n.outputs]
                g.values[pre] = Value(pre, v.shape, v.dtype)
                nodes.append(Node(g.unique_name(f"{n.name}/IF"), "IF", [pre, tname], [o], attrs))
            spike.add(o)
    g.nodes = nodes
    if one_theta:
        ctx.notes.append(
            f"spike_all: {len(one_theta)} tensor(s) keep one threshold (e.g. '{one_theta[0]}'): the "
            "calibration file has no per-channel maxima for them (rerun `snnconvert calibrate`)"
        )
    return g


def structural_values(g: Graph) -> set[str]:
    """Values computed from the graph's integer inputs (attention masks, ids, lengths) and constants
    alone, without looking a float table up by them (an embedding is data): they carry no data to
    spike, and a mask must stay exact. Found from the graph, so calibration data without padding
    (where no score was ever masked) cannot put a neuron on one."""
    ints = {x for x in g.inputs if not g.values[x].dtype.startswith("float")}
    const = set(g.initializers)
    struct = set(ints)
    for n in g.nodes:
        if all(i in const for i in n.inputs):
            const.update(n.outputs)
            continue
        if not all(i in const or i in struct for i in n.inputs):
            continue
        table = n.inputs[0] if n.inputs else None
        if has_flag(n.op, "moves_data", n.attrs) and table in const and _is_float(g, table):
            continue  # rows of a float table picked by ids: an embedding, data
        struct.update(n.outputs)
    return struct - ints


def _is_float(g: Graph, name: str) -> bool:
    if name in g.initializers:
        return np.asarray(g.initializers[name]).dtype.kind == "f"
    return g.values[name].dtype.startswith("float")


def _breaks_at_zero(g: Graph, value: str) -> bool:
    """Does an op reading `value` (through data moves) give inf/NaN when it is zero, as a divisor, a
    reciprocal or a log does? A neuron's running count is zero until it first fires, so such a value
    stays analog (RMSNorm's sqrt before the division); its consumer's neuron quantises instead."""
    todo, seen = [value], set()
    while todo:
        v = todo.pop()
        for c in g.consumers(v):
            if c.name in seen:
                continue
            seen.add(c.name)
            if has_flag(c.op, "moves_data", c.attrs):
                todo.extend(c.outputs)
                continue
            args = []
            for i in c.inputs:
                val = g.values.get(i)
                if i in g.initializers:
                    args.append(torch.as_tensor(np.asarray(g.initializers[i])))
                elif val is None:
                    break
                elif i == v:
                    args.append(torch.zeros(val.shape, dtype=torch_dtype(val.dtype)))
                else:
                    args.append(torch.ones(val.shape, dtype=torch_dtype(val.dtype)))
            else:
                try:
                    outs = run_op(c.op, c.attrs, args)
                except Exception:  # an operand this probe cannot stand in for: assume it is fine
                    continue
                if any(o.is_floating_point() and not bool(torch.isfinite(o).all()) for o in outs):
                    return True
    return False
