"""Elementwise ops beyond ops_math: unary maths (Reciprocal, Abs, Log, Sin, Cos, rounding, Sign),
comparisons and logic, variadic Max/Min, Mod, Softplus, HardSigmoid, HardSwish.

Each `run` is a per-sample torch reference with ONNX broadcasting; it works unchanged under
torch.vmap (no data-dependent shapes, no in-place writes). None of them keeps spikes: they are
analog compute whatever their inputs; the comparisons carry `selects` (like Equal) and the
activations `activation` (registry FLAGS).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from snnconvert.ir.ops_math import _elementwise
from snnconvert.ir.registry import Attr, OpDef, numel, register

# -- unary ---------------------------------------------------------------------------------------------
# (name, reference, cost kind): transcendental functions count as "exp", sign/rounding/abs as "cmp".
_UNARY = [
    ("Reciprocal", torch.reciprocal, "div"),
    ("Abs", torch.abs, "cmp"),
    ("Log", torch.log, "exp"),
    ("Sin", torch.sin, "exp"),
    ("Cos", torch.cos, "exp"),
    ("Sign", torch.sign, "cmp"),
    ("Floor", torch.floor, "cmp"),
    ("Ceil", torch.ceil, "cmp"),
    ("Round", torch.round, "cmp"),  # half to even, as ONNX
    ("Not", torch.logical_not, "cmp"),
]
for _name, _fn, _kind in _UNARY:
    # not affine, not spike-preserving: no flags
    register(OpDef(_name, lambda a, x, _fn=_fn: _fn(x), cost=_elementwise(_kind)))


register(
    OpDef(
        "Softplus",
        lambda a, x: F.softplus(x),
        cost=lambda a, ins, outs: {"exp": 2 * numel(outs[0]), "add": numel(outs[0])},
        activation=True,
        doc="log(1 + exp(x))",
    )
)


def _hard_sigmoid(a, x):
    return torch.clamp(a["alpha"] * x + a["beta"], 0.0, 1.0)


register(
    OpDef(
        "HardSigmoid",
        _hard_sigmoid,
        attrs={"alpha": Attr(float, 0.2), "beta": Attr(float, 0.5)},
        cost=lambda a, ins, outs: {"mul": numel(outs[0]), "add": numel(outs[0]), "cmp": 2 * numel(outs[0])},
        activation=True,
        doc="max(0, min(1, alpha * x + beta))",
    )
)
register(
    OpDef(
        "HardSwish",
        lambda a, x: x * torch.clamp(x / 6.0 + 0.5, 0.0, 1.0),
        cost=lambda a, ins, outs: {
            "mul": 2 * numel(outs[0]),
            "add": numel(outs[0]),
            "cmp": 2 * numel(outs[0]),
        },
        activation=True,
        doc="x * max(0, min(1, x / 6 + 1/2)) (MobileNetV3)",
    )
)

# -- binary: comparisons, logic, Mod -------------------------------------------------------------------
# (name, reference, a comparison: selects like Equal); boolean outputs, none keeps spikes
_BINARY = [
    ("Greater", torch.gt, True),
    ("Less", torch.lt, True),
    ("GreaterOrEqual", torch.ge, True),
    ("LessOrEqual", torch.le, True),
    ("Or", torch.logical_or, False),
    ("Xor", torch.logical_xor, False),
]
for _name, _fn, _cmp in _BINARY:
    register(OpDef(_name, lambda a, x, y, _fn=_fn: _fn(x, y), cost=_elementwise("cmp"), selects=_cmp))


def _mod(a, x, y):
    # fmod=1: C's fmod (sign of the dividend); fmod=0: the sign of the divisor (Python's %)
    return torch.fmod(x, y) if a["fmod"] else torch.remainder(x, y)


register(
    OpDef(
        "Mod",
        _mod,
        attrs={"fmod": Attr(int, 0)},
        cost=_elementwise("div"),
        doc="remainder of x / y: fmod=1 takes the sign of x, fmod=0 (integers only) the sign of y",
    )
)


# -- variadic ------------------------------------------------------------------------------------------
def _variadic_cost(a, ins, outs):
    return {"cmp": max(0, len(ins) - 1) * numel(outs[0])}


register(
    OpDef(
        "Max",
        lambda a, *xs: functools.reduce(torch.maximum, xs),
        cost=_variadic_cost,
        doc="elementwise maximum of one or more broadcast inputs",
    )
)
register(
    OpDef(
        "Min",
        lambda a, *xs: functools.reduce(torch.minimum, xs),
        cost=_variadic_cost,
        doc="elementwise minimum of one or more broadcast inputs",
    )
)
