"""ONNX handlers for snnconvert.ir.ops_reduce: the Reduce* family, ArgMax/ArgMin, LogSoftmax,
InstanceNormalization and Einsum, each one ONNX op to one IR op with its axes passed through
(negative axes made non-negative with the input's rank)."""

from __future__ import annotations

from snnconvert.errors import UnsupportedModelError
from snnconvert.frontends.onnx_ctx import Ctx, handles
from snnconvert.frontends.onnx_ops import Attrs, _ints, _need_const, _rank


def _axis(node, ax: int, rank: int, what: str = "axis") -> int:
    if not -rank <= ax < rank:
        raise UnsupportedModelError(
            f"node '{node.name}' ({node.op_type}): {what} {ax} is outside the input's {rank} axes"
        )
    return ax % rank


REDUCE_OPS = (
    "ReduceSum",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceSumSquare",
    "ReduceLogSum",
    "ReduceLogSumExp",
)


def _reduce_axes(ctx: Ctx, node, a: Attrs) -> list[int]:
    """axes: an attribute (ReduceSum before opset 13, the others before 18) or a constant input; none
    given reduces every axis, or nothing with noop_with_empty_axes=1 (an empty list)."""
    rank = _rank(ctx, node.input[0])
    if "axes" in a:
        axes = _ints(a["axes"])
    elif len(node.input) > 1 and node.input[1]:
        axes = _ints(_need_const(ctx, node, 1, "axes"))
    else:
        axes = []
    if not axes and not a.get("noop_with_empty_axes", 0):
        axes = list(range(rank))
    return sorted({_axis(node, ax, rank, "axes entry") for ax in axes})


@handles(*REDUCE_OPS)
def _reduce(ctx: Ctx, node, a: Attrs) -> None:
    attrs = {"axes": _reduce_axes(ctx, node, a), "keepdims": int(a.get("keepdims", 1))}
    ctx.emit(node, node.op_type, [ctx.input(node.input[0])], attrs)


@handles("ReduceMean")
def _reduce_mean(ctx: Ctx, node, a: Attrs) -> None:
    axes = _reduce_axes(ctx, node, a)
    if not axes:  # noop_with_empty_axes: the mean over no axis is the input
        ctx.rename[node.output[0]] = ctx.input(node.input[0])
        return
    ctx.emit(
        node, "ReduceMean", [ctx.input(node.input[0])], {"axes": axes, "keepdims": int(a.get("keepdims", 1))}
    )


@handles("ArgMax", "ArgMin")
def _arg(ctx: Ctx, node, a: Attrs) -> None:
    rank = _rank(ctx, node.input[0])
    attrs = {
        "axis": _axis(node, int(a.get("axis", 0)), rank),
        "keepdims": int(a.get("keepdims", 1)),
        "select_last_index": int(a.get("select_last_index", 0)),
    }
    ctx.emit(node, node.op_type, [ctx.input(node.input[0])], attrs)


@handles("LogSoftmax")
def _log_softmax(ctx: Ctx, node, a: Attrs) -> None:
    rank = _rank(ctx, node.input[0])
    axis = _axis(node, int(a.get("axis", -1 if ctx.opset >= 13 else 1)), rank)
    if ctx.opset < 13 and axis != rank - 1:
        raise UnsupportedModelError(
            f"node '{node.name}' (LogSoftmax): opset<13 log-softmax over the flattened axes {axis}.. is not supported"
        )
    ctx.emit(node, "LogSoftmax", [ctx.input(node.input[0])], {"axis": axis})


@handles("InstanceNormalization")
def _instance_norm(ctx: Ctx, node, a: Attrs) -> None:
    if _rank(ctx, node.input[0]) < 3:
        raise UnsupportedModelError(
            f"node '{node.name}' (InstanceNormalization): the input needs a channel axis and spatial axes"
        )
    ins = [ctx.input(i) for i in node.input[:3]]
    ctx.emit(node, "InstanceNorm", ins, {"epsilon": float(a.get("epsilon", 1e-5))})


@handles("Einsum")
def _einsum(ctx: Ctx, node, a: Attrs) -> None:
    eq = a["equation"]
    eq = (eq.decode() if isinstance(eq, bytes) else str(eq)).replace(" ", "")
    ctx.emit(node, "Einsum", [ctx.input(i) for i in node.input], {"equation": eq})
