"""Compute ops of the IR: synaptic layers, elementwise math, normalisations, pooling, neurons."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from snnconvert.ir.registry import Attr, OpDef, broadcasts_leading, numel, register

INTS = (list, tuple)


_EW = {"leading_axes": broadcasts_leading}


def _elementwise(kind: str, per: int = 1):
    def cost(a: dict[str, Any], ins, outs) -> dict[str, int]:
        return {kind: per * numel(outs[0])}

    return cost


def _any(s: frozenset[int]) -> bool:
    return True


def _first_only(s: frozenset[int]) -> bool:
    return s <= {0}


def _exactly_one(s: frozenset[int]) -> bool:
    return len(s) == 1


# -- synaptic layers -------------------------------------------------------------------------------
def _linear(a, x, w, b=None):
    y = torch.matmul(x, w)
    return y + b if b is not None else y


def _linear_cost(a, ins, outs):
    k, n = ins[1][0], ins[1][1]
    rows = numel(ins[0]) // k
    c = {"mac": rows * k * n}
    if len(ins) > 2:
        c["add"] = rows * n
    return c


register(
    OpDef(
        "Linear",
        _linear,
        leading_axes=lambda a, r, b: b[0] and not any(b[1:]),  # x [..., in] @ W: any leading axes
        cost=_linear_cost,
        affine_in=_first_only,
        synaptic=True,
        layer=True,
        doc="y = x @ W + b with W of shape [in, out] (constant); x's last axis is the feature axis",
    )
)


def _matmul_cost(a, ins, outs):
    k = ins[0][-1]
    return {"mac": numel(outs[0]) * k}


register(
    OpDef(
        "MatMul",
        lambda a, x, y: torch.matmul(x, y),
        # matmul broadcasts the axes before the last two, right-aligned (a 1-D operand is a vector)
        leading_axes=lambda a, r, b: min(r) >= 2 and broadcasts_leading(a, r, b),
        cost=_matmul_cost,
        affine_in=_exactly_one,
        synaptic=True,
        doc="product of two run-time tensors (attention scores, attention x values)",
    )
)


def _conv(a, x, w, b=None):
    pads = a["pads"]
    nd = w.dim() - 2
    if nd == 1:
        x = F.pad(x, (pads[0], pads[1]))
        return F.conv1d(x, w, b, a["strides"], 0, a["dilations"], a["group"])
    top, left, bottom, right = pads
    if top != bottom or left != right:
        x = F.pad(x, (left, right, top, bottom))
        p = (0, 0)
    else:
        p = (top, left)
    return F.conv2d(x, w, b, a["strides"], p, a["dilations"], a["group"])


def _conv_cost(a, ins, outs):
    w = ins[1]
    per_out = int(torch.tensor(w[1:]).prod())
    c = {"mac": numel(outs[0]) * per_out}
    if len(ins) > 2:
        c["add"] = numel(outs[0])
    return c


register(
    OpDef(
        "Conv",
        _conv,
        attrs={
            "strides": Attr(INTS, required=True),
            "pads": Attr(INTS, required=True),
            "dilations": Attr(INTS, required=True),
            "group": Attr(int, 1),
        },
        cost=_conv_cost,
        channel_axis=lambda a, ranks, r: r - (ranks[1] - 2) - 1,  # weights [C_out, C_in, spatial...]
        affine_in=_first_only,
        synaptic=True,
        layer=True,
        doc="1-D or 2-D convolution, NC(H)W; pads given as ONNX begin/end pairs",
    )
)


# -- elementwise binary ------------------------------------------------------------------------------
# sums of spike trains are spike trains, one accumulate per event; a product with a constant scales
# events (Mul by either operand, Div only as x / constant: see `affine_in`)
_SUM = {"keeps_spikes": True, "accumulates_once": True}
register(OpDef("Add", lambda a, x, y: x + y, **_EW, cost=_elementwise("add"), affine_in=_any, **_SUM))
register(OpDef("Sub", lambda a, x, y: x - y, **_EW, cost=_elementwise("add"), affine_in=_any, **_SUM))
register(
    OpDef(
        "Mul",
        lambda a, x, y: x * y,
        **_EW,
        bilinear=True,
        cost=_elementwise("mul"),
        affine_in=_exactly_one,
        scaling=True,
        accumulates_once=True,
    )
)
register(
    OpDef("Div", lambda a, x, y: x / y, **_EW, cost=_elementwise("div"), affine_in=_first_only, scaling=True)
)
register(OpDef("Pow", lambda a, x, y: torch.pow(x, y), **_EW, cost=_elementwise("mul")))
register(OpDef("Equal", lambda a, x, y: torch.eq(x, y), **_EW, cost=_elementwise("cmp"), selects=True))
register(
    OpDef(
        "Where",
        lambda a, c, x, y: torch.where(c, x, y),
        cost=_elementwise("cmp"),
        affine_in=lambda s: 0 not in s,
        selects=True,
    )
)

# -- elementwise unary -------------------------------------------------------------------------------
register(OpDef("Sqrt", lambda a, x: torch.sqrt(x), **_EW, cost=_elementwise("sqrt")))
register(
    OpDef("Erf", lambda a, x: torch.erf(x), **_EW, cost=_elementwise("exp"), activation=True)
)  # exported GELU
register(OpDef("Tanh", lambda a, x: torch.tanh(x), **_EW, cost=_elementwise("exp"), activation=True))
register(OpDef("Sigmoid", lambda a, x: torch.sigmoid(x), **_EW, cost=_elementwise("exp"), activation=True))
register(OpDef("Exp", lambda a, x: torch.exp(x), **_EW, cost=_elementwise("exp")))
register(OpDef("Neg", lambda a, x: -x, **_EW, cost=_elementwise("add"), affine_in=_any, **_SUM))
register(
    OpDef(
        "Relu",
        lambda a, x: torch.relu(x),
        **_EW,
        cost=_elementwise("cmp"),
        spike_source=True,
        activation=True,
    )
)
register(
    OpDef(
        "Clip",
        lambda a, x: x if a["min"] is None and a["max"] is None else torch.clamp(x, a["min"], a["max"]),
        attrs={"min": Attr((int, float, type(None)), None), "max": Attr((int, float, type(None)), None)},
        cost=_elementwise("cmp", 2),
        **_EW,
    )
)
register(
    OpDef(
        "Gelu",
        lambda a, x: F.gelu(x, approximate=a["approximate"]),
        attrs={"approximate": Attr(str, "none")},
        cost=_elementwise("exp"),
        **_EW,
        activation=True,
    )
)


# -- normalisation and softmax -----------------------------------------------------------------------
def _softmax_cost(a, ins, outs):
    n = numel(outs[0])
    return {"exp": n, "add": n, "div": n, "cmp": n}


register(
    OpDef(
        "Softmax",
        lambda a, x: torch.softmax(x, dim=a["axis"]),
        leading_axes=lambda a, r, b: a["axis"] < 0,
        attrs={"axis": Attr(int, -1)},
        cost=_softmax_cost,
        normalization=True,
    )
)


def _layernorm(a, x, scale, bias=None):
    axis = a["axis"] % x.dim()
    shape = tuple(x.shape[axis:])
    return F.layer_norm(
        x, shape, scale.expand(shape), None if bias is None else bias.expand(shape), a["epsilon"]
    )


def _layernorm_cost(a, ins, outs):
    n = numel(outs[0])
    return {"add": 3 * n, "mul": 3 * n, "div": n, "sqrt": max(1, n // max(1, ins[0][-1]))}


register(
    OpDef(
        "LayerNorm",
        _layernorm,
        leading_axes=lambda a, r, b: a["axis"] < 0 and not any(b[1:]),
        attrs={"axis": Attr(int, -1), "epsilon": Attr(float, 1e-5)},
        cost=_layernorm_cost,
        normalization=True,
        doc="normalise over axes [axis, rank), then scale and shift",
    )
)


def _batchnorm(a, x, scale, bias, mean, var):
    return F.batch_norm(x, mean, var, scale, bias, False, 0.0, a["epsilon"])


register(
    OpDef(
        "BatchNorm",
        _batchnorm,
        attrs={"epsilon": Attr(float, 1e-5)},
        cost=_elementwise("mul", 2),
        affine_in=_first_only,
        accumulates_once=True,
        doc="inference-mode batch normalisation over axis 1 (folded into the preceding layer by convert)",
    )
)


# -- pooling and reductions --------------------------------------------------------------------------
def _pool_pads(x, a, value):
    pads = a["pads"]
    nd = len(a["kernel"])
    if nd == 1:
        return F.pad(x, (pads[0], pads[1]), value=value)
    top, left, bottom, right = pads
    return F.pad(x, (left, right, top, bottom), value=value)


def _maxpool(a, x):
    x = _pool_pads(x, a, -math.inf)
    f = F.max_pool1d if len(a["kernel"]) == 1 else F.max_pool2d
    return f(x, a["kernel"], a["strides"], 0, ceil_mode=bool(a["ceil_mode"]))


def _avgpool(a, x):
    f = F.avg_pool1d if len(a["kernel"]) == 1 else F.avg_pool2d
    pads = a["pads"]
    nd = len(a["kernel"])
    sym = all(pads[i] == pads[i + nd] for i in range(nd))
    if sym:
        return f(
            x, a["kernel"], a["strides"], tuple(pads[:nd]), bool(a["ceil_mode"]), bool(a["count_include_pad"])
        )
    if a["count_include_pad"]:
        return f(_pool_pads(x, a, 0.0), a["kernel"], a["strides"], 0, bool(a["ceil_mode"]))
    ones = torch.ones_like(x[:1, :1])
    s = f(_pool_pads(x, a, 0.0), a["kernel"], a["strides"], 0, bool(a["ceil_mode"]))
    n = f(_pool_pads(ones, a, 0.0), a["kernel"], a["strides"], 0, bool(a["ceil_mode"]))
    return s / n


_POOL_ATTRS = {
    "kernel": Attr(INTS, required=True),
    "strides": Attr(INTS, required=True),
    "pads": Attr(INTS, required=True),
    "ceil_mode": Attr(int, 0),
}


def _pool_channels(a, ranks, r):
    return r - len(a["kernel"]) - 1  # [(1,) C, spatial...]: the axis before the kernel's


def _pool_cost(kind):
    def cost(a, ins, outs):
        k = 1
        for d in a["kernel"]:
            k *= d
        return {kind: numel(outs[0]) * k}

    return cost


register(OpDef("MaxPool", _maxpool, attrs=_POOL_ATTRS, cost=_pool_cost("cmp"), channel_axis=_pool_channels))
register(
    OpDef(
        "AvgPool",
        _avgpool,
        attrs={**_POOL_ATTRS, "count_include_pad": Attr(int, 0)},
        cost=_pool_cost("add"),
        channel_axis=_pool_channels,
        affine_in=_first_only,
        keeps_spikes=True,
        pool=True,
    )
)
register(
    OpDef(
        "GlobalAvgPool",
        lambda a, x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True),
        cost=lambda a, ins, outs: {"add": numel(ins[0])},
        affine_in=_first_only,
        **_SUM,
    )
)
register(
    OpDef(
        "ReduceMean",
        lambda a, x: x.mean(dim=tuple(a["axes"]), keepdim=bool(a["keepdims"])),
        attrs={"axes": Attr(INTS, required=True), "keepdims": Attr(int, 1)},
        cost=lambda a, ins, outs: {"add": numel(ins[0])},
        affine_in=_first_only,
        **_SUM,
    )
)
