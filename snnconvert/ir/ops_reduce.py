"""Ops that reduce or contract over axes: the ONNX Reduce* family, ArgMax/ArgMin, LogSoftmax,
InstanceNorm, and Einsum (a sum of products over its contracted indices).

Axes are attributes, non-negative and fixed at import; they count every axis of the value the op
sees. Each `run` is a per-sample torch reference that works unchanged under torch.vmap. Their facts
for the other stages are registry flags (FLAGS in snnconvert.ir.registry).
"""

from __future__ import annotations

import math

import torch

from snnconvert.ir.ops_math import _exactly_one, _first_only
from snnconvert.ir.registry import Attr, OpDef, numel, register

INTS = (list, tuple)


# -- Reduce* ---------------------------------------------------------------------------------------------
def _prod(x, axes, keep):
    for ax in sorted(axes, reverse=True):
        x = torch.prod(x, ax, keepdim=keep, dtype=x.dtype)
    return x


def _reduction(pre, reduce, post):
    """x -> post(reduce(pre(x), axes)). Over no axes (ONNX noop_with_empty_axes) only pre and post
    apply, as onnxruntime does: ReduceL2 gives |x|, ReduceSumSquare x^2, ReduceLogSum log(x)."""

    def run(a, x):
        axes = tuple(a["axes"])
        if pre is not None:
            x = pre(x)
        if axes:
            x = reduce(x, axes, bool(a["keepdims"]))
        return x if post is None else post(x)

    return run


def _reduce_cost(pre: dict[str, int], red: dict[str, int], post: dict[str, int]):
    """pre: per input element, red: per input element when reducing, post: per output element."""

    def cost(a, ins, outs):
        n_in, n_out = numel(ins[0]), numel(outs[0])
        c = {k: v * n_in for k, v in pre.items()}
        for k, v in red.items() if a["axes"] else ():
            c[k] = c.get(k, 0) + v * n_in
        for k, v in post.items():
            c[k] = c.get(k, 0) + v * n_out
        return c

    return cost


def _sum(x, axes, keep):
    return torch.sum(x, axes, keepdim=keep, dtype=x.dtype)


def _square(x):
    return x * x


_REDUCE_ATTRS = {"axes": Attr(INTS, required=True), "keepdims": Attr(int, 1)}
# name: (pre, reduce, post), (their costs), affine in x; an affine one (ReduceSum) is a sum of spike
# trains, one add per input event: keeps_spikes, accumulates_once. The rest carry no flags.
_REDUCTIONS = {
    "ReduceSum": ((None, _sum, None), ({}, {"add": 1}, {}), True),
    "ReduceMax": ((None, torch.amax, None), ({}, {"cmp": 1}, {}), False),
    "ReduceMin": ((None, torch.amin, None), ({}, {"cmp": 1}, {}), False),
    "ReduceProd": ((None, _prod, None), ({}, {"mul": 1}, {}), False),
    "ReduceL1": ((torch.abs, _sum, None), ({"cmp": 1}, {"add": 1}, {}), False),
    "ReduceL2": ((_square, _sum, torch.sqrt), ({"mul": 1}, {"add": 1}, {"sqrt": 1}), False),
    "ReduceSumSquare": ((_square, _sum, None), ({"mul": 1}, {"add": 1}, {}), False),
    "ReduceLogSum": ((None, _sum, torch.log), ({}, {"add": 1}, {"exp": 1}), False),
    "ReduceLogSumExp": (
        (None, torch.logsumexp, None),
        ({}, {"cmp": 1, "exp": 1, "add": 1}, {"exp": 1}),
        False,
    ),
}
for _name, (_fns, _costs, _affine) in _REDUCTIONS.items():
    register(
        OpDef(
            _name,
            _reduction(*_fns),
            attrs=_REDUCE_ATTRS,
            cost=_reduce_cost(*_costs),
            affine_in=_first_only if _affine else (lambda s: False),
            keeps_spikes=_affine,
            accumulates_once=_affine,
            doc="ONNX " + _name + " over `axes` (none: only its elementwise part, as noop_with_empty_axes)",
        )
    )


# -- ArgMax / ArgMin -------------------------------------------------------------------------------------
def _arg(fn):
    def run(a, x):
        ax, keep = a["axis"], bool(a["keepdims"])
        if a["select_last_index"]:  # the last of equal extremes: search the flipped axis
            return (x.shape[ax] - 1) - fn(torch.flip(x, (ax,)), ax, keepdim=keep)
        return fn(x, ax, keepdim=keep)

    return run


_ARG_ATTRS = {"axis": Attr(int, required=True), "keepdims": Attr(int, 1), "select_last_index": Attr(int, 0)}
for _name, _fn in (("ArgMax", torch.argmax), ("ArgMin", torch.argmin)):
    # int64 indices out: no flags
    register(
        OpDef(
            _name,
            _arg(_fn),
            attrs=_ARG_ATTRS,
            cost=lambda a, ins, outs: {"cmp": numel(ins[0])},
            doc="int64 index of the extreme along `axis` (the first one, or the last if select_last_index)",
        )
    )


# -- LogSoftmax, InstanceNorm ------------------------------------------------------------------------------
def _log_softmax_cost(a, ins, outs):
    n = numel(outs[0])
    rows = n // max(1, ins[0][a["axis"]]) if ins[0][a["axis"]] > 0 else n
    return {"exp": n + rows, "add": 2 * n, "cmp": n}


register(
    OpDef(
        "LogSoftmax",
        lambda a, x: torch.log_softmax(x, dim=a["axis"]),
        attrs={"axis": Attr(int, -1)},
        cost=_log_softmax_cost,
        normalization=True,  # like Softmax
    )
)


def _instance_norm(a, x, scale, bias):
    dims = tuple(range(2, x.dim()))
    mu = x.mean(dims, keepdim=True)
    var = ((x - mu) ** 2).mean(dims, keepdim=True)
    per_channel = (-1,) + (1,) * (x.dim() - 2)
    return (x - mu) / torch.sqrt(var + a["epsilon"]) * scale.reshape(per_channel) + bias.reshape(per_channel)


def _instance_norm_cost(a, ins, outs):
    n = numel(outs[0])
    channels = numel(ins[0][:2])
    return {"add": 3 * n, "mul": 3 * n, "div": n, "sqrt": channels}


register(
    OpDef(
        "InstanceNorm",
        _instance_norm,
        attrs={"epsilon": Attr(float, 1e-5)},
        cost=_instance_norm_cost,
        normalization=True,  # like LayerNorm
        doc="normalise each (sample, channel) over the axes after the channel axis 1; inputs x, scale[C], B[C]",
    )
)


# -- Einsum ----------------------------------------------------------------------------------------------
def _einsum_labels(term: str, rank: int) -> list[str]:
    """Index labels of one operand; the dims an ellipsis stands for are labelled from the right."""
    if "..." not in term:
        return list(term)
    pre, post = term.split("...")
    k = rank - len(pre) - len(post)
    return list(pre) + [f"...{k - 1 - j}" for j in range(k)] + list(post)


def _einsum_cost(a, ins, outs):
    terms = a["equation"].split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, ins, strict=True):
        for lab, d in zip(_einsum_labels(term, len(shape)), shape, strict=True):
            sizes[lab] = max(sizes.get(lab, 1), 1 if d == -1 else int(d))
    total = math.prod(sizes.values())  # one product term per point of the full index space
    if len(ins) == 1:
        return {"add": total}
    return {"mac": (len(ins) - 1) * total}


def _einsum_synaptic(a) -> bool:
    """Of two operands or more: a weighted sum (a constant operand, in any position, is a weight; two
    run-time operands make a product like MatMul). Of one, a sum or a transpose: not synaptic."""
    return "," in a["equation"].split("->")[0]


register(
    OpDef(
        "Einsum",
        lambda a, *xs: torch.einsum(a["equation"], *xs),
        attrs={"equation": Attr(str, required=True)},
        cost=_einsum_cost,
        affine_in=_exactly_one,
        synaptic=_einsum_synaptic,
        doc="Einstein summation (ONNX/numpy equation syntax, spaces removed)",
    )
)
