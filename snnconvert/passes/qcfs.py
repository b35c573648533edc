"""QCFS -> IF (Bu et al., ICLR 2022; used by MST, Wang et al. 2023), and MST's Random Spike Masking.

A QCFS activation lam * clip(floor(x * L / lam + 1/2) / L, 0, 1) is, for a constant input, exactly
what an IF neuron with threshold theta = lam, membrane starting at theta/2 and reset by subtraction
emits in T = L steps (its count is floor(T x / theta + 1/2), clipped to [0, T]); for other T it is
exact in expectation (Bu et al.'s Theorem 2). So the conversion needs no calibration: theta is the
trained lam. An export writes the activation as a chain of scalar elementwise ops around one Floor;
the pass reads the chain back as an affine map z = a x + b before the Floor and
y = s * clip(floor(z), lo, hi) after it, and checks that this is a QCFS.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from snnconvert.errors import GraphError
from snnconvert.ir.graph import Graph, Node, Value
from snnconvert.ir.registry import get, has_flag
from snnconvert.passes.registry import Param, PassContext, register_pass
from snnconvert.passes.spikify import _theta, if_attrs

TOL = 1e-5


def _scalar(g: Graph, name: str) -> float | None:
    """The value of a constant scalar operand (an initializer with one element), else None."""
    if name not in g.initializers:
        return None
    v = np.asarray(g.initializers[name])
    return float(v.reshape(())) if v.size == 1 and np.issubdtype(v.dtype, np.floating) else None


def _scalar_operand(g: Graph, n: Node) -> tuple[str, float, int] | None:
    """(run-time input, constant, its position) for a two-input node with one constant scalar."""
    if len(n.inputs) != 2:
        return None
    for k in (0, 1):
        c = _scalar(g, n.inputs[k])
        if c is not None and n.inputs[1 - k] not in g.initializers:
            return n.inputs[1 - k], c, k
    return None


def _affine_before(g: Graph, z: str) -> tuple[str, float, float]:
    """Walk back from the Floor's input through scalar Mul/Div/Add/Sub nodes read by nothing else:
    z = a * x + b. Returns (x, a, b)."""
    a, b, v = 1.0, 0.0, z
    while True:
        p = g.producer(v)
        if p is None or len(g.consumers(v)) != 1 or v in g.outputs:
            return v, a, b
        op = _scalar_operand(g, p)
        if op is None:
            return v, a, b
        x, c, k = op
        if p.op == "Mul":
            a *= c
        elif p.op == "Div" and k == 1 and c != 0:
            a /= c
        elif p.op == "Add":
            b += a * c
        elif p.op == "Sub" and k == 1:
            b -= a * c
        else:
            return v, a, b
        v = x


def _clip_after(g: Graph, f: str) -> tuple[str, list[Node], float, float, float]:
    """Walk forward from the Floor's output through scalar Mul/Div by positive constants, Clip and
    Relu, each the single consumer: y = s * clip(floor(z), lo, hi). Returns (y, nodes, s, lo, hi)."""
    s, lo, hi, v, chain = 1.0, -np.inf, np.inf, f, []
    while v not in g.outputs:
        cons = g.consumers(v)
        if len(cons) != 1:
            break
        n = cons[0]
        if n.op in ("Clip", "Relu") and n.inputs[0] == v:
            m = 0.0 if n.op == "Relu" else n.attrs.get("min")
            mx = None if n.op == "Relu" else n.attrs.get("max")
            lo = lo if m is None else max(lo, m / s)
            hi = hi if mx is None else min(hi, mx / s)
        else:
            op = _scalar_operand(g, n)
            if op is None or op[1] <= 0 or n.op not in ("Mul", "Div") or (n.op == "Div" and op[2] != 1):
                break
            s = s * op[1] if n.op == "Mul" else s / op[1]
        chain.append(n)
        v = n.outputs[0]
    return v, chain, s, lo, hi


def match_qcfs(g: Graph, floor: Node) -> dict[str, Any] | None:
    """The QCFS a Floor node is the heart of: {x, y, chain, theta, levels, shift, gain}, or None.

    y = s * clip(floor(a x + b), 0, L) is an IF neuron on the current gain * x with gain = a * s,
    theta = s * L and v0 = b (a fraction of theta), L a positive integer, b in [0, 1]."""
    x, a, b = _affine_before(g, floor.inputs[0])
    y, chain, s, lo, hi = _clip_after(g, floor.outputs[0])
    if not chain or not (a > 0 and np.isfinite(hi)) or abs(lo) > TOL:
        return None
    levels = round(hi)
    if levels < 1 or abs(hi - levels) > 1e-4 * max(1.0, hi) or not (-TOL <= b <= 1 + TOL):
        return None
    return {
        "x": x,
        "y": y,
        "chain": chain,
        "theta": s * levels,
        "levels": levels,
        "shift": min(max(b, 0.0), 1.0),
        "gain": a * s,
    }


@register_pass(
    "qcfs_to_if",
    {
        "masking_ratio": Param(
            (int, float),
            0.0,
            "Random Spike Masking (MST): the fraction of the spikes entering the attention and MLP "
            "layers that is dropped, at random",
            lo=0.0,
            hi=0.99,
        ),
        "seed": Param(int, 0, "seed of the masks' random stream", lo=0, hi=2**31 - 1),
        "rescale": Param(
            bool, True, "the kept spikes of a masked neuron count 1/(1 - r) each, so its mean input is kept"
        ),
    },
    spikes=("Floor",),
    codings=("rate",),
)
def qcfs_to_if(g: Graph, params: dict[str, Any], ctx: PassContext) -> Graph:
    """Replace every QCFS activation (the Floor chain an export writes) by an IF neuron, theta = lam,
    v0 = theta/2, reset by subtraction; with masking_ratio r > 0, the neurons whose spikes enter a
    synaptic op or a softmax inside the network (not the output layer) become masked IF neurons."""
    g = g.copy()
    r = float(params["masking_ratio"])
    converted: list[Node] = []
    for fl in [n for n in g.nodes if n.op == "Floor"]:
        m = match_qcfs(g, fl)
        if m is None:
            ctx.notes.append(
                f"qcfs_to_if: '{fl.name}' is not a QCFS activation (clip-floor-shift); kept analog"
            )
            continue
        converted.append(_replace(g, fl, m, ctx))
    if not converted:
        raise GraphError(
            "qcfs_to_if: the model has no QCFS activation (a Floor between scalar scalings and a Clip)"
        )
    g.remove_unused()
    if r > 0:
        masked = [n for n in converted if _feeds_synapses(g, n.outputs[0])]
        for n in masked:
            n.op = "MaskedIF"
            n.attrs = {**n.attrs, "masking_ratio": r, "seed": int(params["seed"]), "stream": _stream(n.name)}
            if params["rescale"]:
                _rescale(g, n, 1.0 / (1.0 - r))
        ctx.notes.append(
            f"qcfs_to_if: Random Spike Masking drops {r:.0%} of the spikes of {len(masked)} of "
            f"{len(converted)} neurons (those feeding a synaptic layer, an attention product or a softmax)"
            + ("; the kept spikes count 1/(1 - r) each" if params["rescale"] else "")
        )
    return g


def _replace(g: Graph, floor: Node, m: dict[str, Any], ctx: PassContext) -> Node:
    """The chain's last node becomes the IF neuron (it keeps the output's name); the current is
    gain * x, a scalar Mul kept only when the chain's scalings do not cancel."""
    x = m["x"]
    if abs(m["gain"] - 1.0) > TOL:
        scaled = g.unique_name(f"{floor.name}_current")
        c = g.unique_name(f"{floor.name}_gain")
        g.initializers[c] = np.asarray(m["gain"], dtype=np.float32)
        g.values[scaled] = Value(scaled, g.values[x].shape, g.values[x].dtype)
        g.nodes.insert(
            g.nodes.index(floor), Node(g.unique_name(f"{floor.name}/gain"), "Mul", [x, c], [scaled])
        )
        x = scaled
    last = m["chain"][-1]
    attrs = if_attrs(ctx, {"v0": m["shift"], "max_spikes_per_step": 1}, 0.0, 1.0)
    last.op, last.inputs, last.attrs = "IF", [x, _theta(g, last.name, m["theta"])], attrs
    for n in [floor, *m["chain"][:-1]]:
        g.nodes.remove(n)
    g.meta.setdefault("qcfs_levels", {})[last.outputs[0]] = m["levels"]  # T = L reproduces the ANN
    return last


def _stream(name: str) -> int:
    """A node's own random stream: a hash of its name (stable across runs and machines)."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def _readers(g: Graph, value: str) -> list[Node]:
    """The consumers of a value, looking through data moves."""
    out, todo = [], [value]
    while todo:
        for c in g.consumers(todo.pop()):
            if has_flag(c.op, "moves_data", c.attrs):
                todo.extend(c.outputs)
            else:
                out.append(c)
    return out


def _feeds_synapses(g: Graph, value: str) -> bool:
    """Do the neuron's spikes enter an attention or MLP layer: every reader a synaptic op or a
    softmax, none of them the output layer?"""
    readers = _readers(g, value)
    return bool(readers) and all(
        (has_flag(c.op, "synaptic", c.attrs) or get(c.op).normalization)
        and not set(c.outputs) & set(g.outputs)
        for c in readers
    )


def _rescale(g: Graph, n: Node, k: float) -> None:
    """Weight each kept spike by k: a Mul by k after the neuron (a constant scaling: its output still
    spikes, with the same events)."""
    out = n.outputs[0]
    pre = g.unique_name(f"{out}_masked")
    g.values[pre] = Value(pre, g.values[out].shape, g.values[out].dtype)
    n.outputs = [pre]
    c = g.unique_name(f"{n.name}_rescale")
    g.initializers[c] = np.asarray(k, dtype=np.float32)
    g.nodes.insert(g.nodes.index(n) + 1, Node(g.unique_name(f"{n.name}/rescale"), "Mul", [pre, c], [out]))
