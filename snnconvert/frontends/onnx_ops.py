"""One handler per ONNX op type: read the node's attributes and constant inputs, emit IR nodes.

Shapes are one sample's, concrete, in the export's own axes (the batch axis among them, size 1),
so an ONNX axis is an IR axis and no handler needs to know where the samples are."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from snnconvert.errors import UnsupportedModelError
from snnconvert.frontends.onnx_ctx import _ONNX_DTYPES, Ctx, handles

Attrs = dict[str, Any]


def _need_const(ctx: Ctx, node: onnx.NodeProto, idx: int, what: str) -> np.ndarray:
    if idx >= len(node.input) or not node.input[idx]:
        raise UnsupportedModelError(f"node '{node.name}' ({node.op_type}): missing input {what}")
    c = ctx.const(node.input[idx])
    if c is None:
        raise UnsupportedModelError(
            f"node '{node.name}' ({node.op_type}): {what} must be constant, it depends on the input data"
        )
    return c


def _ints(a) -> list[int]:
    return [int(v) for v in np.asarray(a).reshape(-1)]


def _rank(ctx: Ctx, name: str) -> int:
    c = ctx.const(name)
    if c is not None:
        return c.ndim
    return len(ctx.g.values[ctx.name(name)].shape)


# -- synaptic layers -----------------------------------------------------------------------------------
@handles("MatMul")
def _matmul(ctx: Ctx, node, a: Attrs) -> None:
    x, w = node.input[0], node.input[1]
    wc = ctx.const(w)
    if wc is not None and wc.ndim == 2 and ctx.const(x) is None:
        ctx.emit(node, "Linear", [ctx.input(x), ctx.input(w)])
    else:
        ctx.emit(node, "MatMul", [ctx.input(x), ctx.input(w)])


@handles("Gemm")
def _gemm(ctx: Ctx, node, a: Attrs) -> None:
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    if a.get("transA", 0):
        raise UnsupportedModelError(f"node '{node.name}' (Gemm): transA=1 is not supported")
    w = ctx.const(node.input[1])
    if w is None:
        raise UnsupportedModelError(f"node '{node.name}' (Gemm): B must be a constant weight")
    w = (w.T if a.get("transB", 0) else w) * alpha
    wname = ctx.g.unique_name(node.input[1] + "_w")
    ctx.g.initializers[wname] = np.ascontiguousarray(w.astype(np.float32))
    inputs = [ctx.input(node.input[0]), wname]
    if len(node.input) > 2 and node.input[2]:
        c = ctx.const(node.input[2])
        if c is None:
            raise UnsupportedModelError(f"node '{node.name}' (Gemm): C must be constant")
        c = (
            np.broadcast_to(c * beta, (w.shape[1],))
            if c.size in (1, w.shape[1]) and c.ndim <= 1
            else c * beta
        )
        bname = ctx.g.unique_name(node.input[2] + "_b")
        ctx.g.initializers[bname] = np.ascontiguousarray(c.astype(np.float32))
        inputs.append(bname)
    ctx.emit(node, "Linear", inputs)


@handles("Conv")
def _conv(ctx: Ctx, node, a: Attrs) -> None:
    w = _need_const(ctx, node, 1, "W")
    nd = w.ndim - 2
    if nd not in (1, 2):
        raise UnsupportedModelError(f"node '{node.name}' (Conv): only 1-D and 2-D convolutions are supported")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UnsupportedModelError(
            f"node '{node.name}' (Conv): auto_pad is not supported, export explicit pads"
        )
    attrs = {
        "strides": _ints(a.get("strides", [1] * nd)),
        "pads": _ints(a.get("pads", [0] * (2 * nd))),
        "dilations": _ints(a.get("dilations", [1] * nd)),
        "group": int(a.get("group", 1)),
    }
    ins = [ctx.input(node.input[0]), ctx.input(node.input[1])]
    if len(node.input) > 2 and node.input[2]:
        ins.append(ctx.input(node.input[2]))
    ctx.emit(node, "Conv", ins, attrs)


# -- elementwise ---------------------------------------------------------------------------------------
def _float_like(ctx: Ctx, ref: str, other: str) -> str:
    """A constant operand cast to the dtype of the data operand (ONNX exports mix float64 scalars)."""
    name = ctx.input(other)
    c = ctx.g.initializers.get(name)
    ref_name = ctx.name(ref)
    if c is not None and ref_name in ctx.g.values:
        dt = np.dtype(ctx.g.values[ref_name].dtype)
        if c.dtype != dt:
            new = ctx.g.unique_name(name + "_" + dt.name)
            ctx.g.initializers[new] = c.astype(dt)
            return new
    return name


@handles("Add", "Sub", "Mul", "Div", "Pow", "Equal")
def _binary(ctx: Ctx, node, a: Attrs) -> None:
    x, y = node.input[0], node.input[1]
    xi = _float_like(ctx, y, x) if ctx.const(x) is not None else ctx.input(x)
    yi = _float_like(ctx, x, y) if ctx.const(y) is not None else ctx.input(y)
    ctx.emit(node, node.op_type, [xi, yi])


@handles("Where")
def _where(ctx: Ctx, node, a: Attrs) -> None:
    ctx.emit(node, "Where", [ctx.input(i) for i in node.input[:3]])


@handles("And")
def _and(ctx: Ctx, node, a: Attrs) -> None:  # the product of booleans is their conjunction
    ctx.emit(node, "Mul", [ctx.input(i) for i in node.input[:2]])


@handles("IsNaN")
def _isnan(ctx: Ctx, node, a: Attrs) -> None:  # NaN is the one value not equal to itself
    x = ctx.input(node.input[0])
    same = ctx.g.unique_name(node.output[0] + "/self_equal")
    ctx.emit(node, "Equal", [x, x], outputs=[same], suffix="/self_equal")
    false = ctx.g.unique_name(node.output[0] + "/false")
    ctx.g.initializers[false] = np.array(False)
    ctx.emit(node, "Equal", [same, false])


@handles("Sqrt", "Erf", "Tanh", "Sigmoid", "Relu", "Exp", "Neg")
def _unary(ctx: Ctx, node, a: Attrs) -> None:
    ctx.emit(node, node.op_type, [ctx.input(node.input[0])])


@handles("Gelu")
def _gelu(ctx: Ctx, node, a: Attrs) -> None:
    approx = a.get("approximate", b"none")
    approx = approx.decode() if isinstance(approx, bytes) else str(approx)
    ctx.emit(node, "Gelu", [ctx.input(node.input[0])], {"approximate": approx})


@handles("Clip")
def _clip(ctx: Ctx, node, a: Attrs) -> None:
    lo, hi = a.get("min"), a.get("max")
    if len(node.input) > 1 and node.input[1]:
        lo = float(_need_const(ctx, node, 1, "min"))
    if len(node.input) > 2 and node.input[2]:
        hi = float(_need_const(ctx, node, 2, "max"))
    ctx.emit(
        node,
        "Clip",
        [ctx.input(node.input[0])],
        {"min": None if lo is None else float(lo), "max": None if hi is None else float(hi)},
    )


@handles("Softmax")
def _softmax(ctx: Ctx, node, a: Attrs) -> None:
    rank = _rank(ctx, node.input[0])
    axis = int(a.get("axis", -1 if ctx.opset >= 13 else 1)) % rank
    if ctx.opset < 13 and axis != rank - 1:
        raise UnsupportedModelError(
            f"node '{node.name}' (Softmax): opset<13 softmax over axes {axis}.. is not supported"
        )
    ctx.emit(node, "Softmax", [ctx.input(node.input[0])], {"axis": axis - rank})


@handles("LayerNormalization")
def _layernorm(ctx: Ctx, node, a: Attrs) -> None:
    rank = _rank(ctx, node.input[0])
    axis = int(a.get("axis", -1)) % rank
    ins = [ctx.input(node.input[0]), ctx.input(node.input[1])]
    if len(node.input) > 2 and node.input[2]:
        ins.append(ctx.input(node.input[2]))
    ctx.emit(node, "LayerNorm", ins, {"axis": axis - rank, "epsilon": float(a.get("epsilon", 1e-5))})


@handles("BatchNormalization")
def _batchnorm(ctx: Ctx, node, a: Attrs) -> None:
    if a.get("training_mode", 0):
        raise UnsupportedModelError(
            f"node '{node.name}' (BatchNormalization): training_mode=1 is not supported"
        )
    for i in range(1, 5):
        _need_const(ctx, node, i, ["", "scale", "B", "mean", "var"][i])
    ctx.emit(
        node, "BatchNorm", [ctx.input(i) for i in node.input[:5]], {"epsilon": float(a.get("epsilon", 1e-5))}
    )


# -- pooling -------------------------------------------------------------------------------------------
def _pool_attrs(node, a: Attrs) -> dict[str, Any]:
    k = _ints(a["kernel_shape"])
    nd = len(k)
    if nd not in (1, 2):
        raise UnsupportedModelError(
            f"node '{node.name}' ({node.op_type}): only 1-D and 2-D pooling is supported"
        )
    if any(d != 1 for d in a.get("dilations", [1] * nd)):
        raise UnsupportedModelError(f"node '{node.name}' ({node.op_type}): dilated pooling is not supported")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UnsupportedModelError(f"node '{node.name}' ({node.op_type}): auto_pad is not supported")
    return {
        "kernel": k,
        "strides": _ints(a.get("strides", [1] * nd)),
        "pads": _ints(a.get("pads", [0] * (2 * nd))),
        "ceil_mode": int(a.get("ceil_mode", 0)),
    }


@handles("MaxPool")
def _maxpool(ctx: Ctx, node, a: Attrs) -> None:
    if len(node.output) > 1 and node.output[1]:
        raise UnsupportedModelError(f"node '{node.name}' (MaxPool): the indices output is not supported")
    ctx.emit(node, "MaxPool", [ctx.input(node.input[0])], _pool_attrs(node, a))


@handles("AveragePool")
def _avgpool(ctx: Ctx, node, a: Attrs) -> None:
    attrs = _pool_attrs(node, a)
    attrs["count_include_pad"] = int(a.get("count_include_pad", 0))
    ctx.emit(node, "AvgPool", [ctx.input(node.input[0])], attrs)


@handles("GlobalAveragePool")
def _gap(ctx: Ctx, node, a: Attrs) -> None:
    ctx.emit(node, "GlobalAvgPool", [ctx.input(node.input[0])])


# -- data movement -------------------------------------------------------------------------------------
@handles("Reshape")
def _reshape(ctx: Ctx, node, a: Attrs) -> None:
    shape = _ints(_need_const(ctx, node, 1, "shape"))
    src = ctx.input(node.input[0])
    in_shape = list(ctx.g.values[src].shape)
    if a.get("allowzero", 0) and 0 in shape:
        raise UnsupportedModelError(
            f"node '{node.name}' (Reshape): allowzero with a 0 in the shape is not supported"
        )
    target = _reshape_target(shape, in_shape)
    if target is None:
        raise UnsupportedModelError(
            f"node '{node.name}' (Reshape): target shape {shape} does not fit its input {in_shape}"
        )
    ctx.emit(node, "Reshape", [src], {"shape": target})


def _reshape_target(shape: list[int], in_shape: list[int]) -> list[int] | None:
    """An ONNX Reshape target for a concrete input shape (0 copies, -1 infers); None if invalid."""
    if any(d == 0 and i >= len(in_shape) for i, d in enumerate(shape)) or shape.count(-1) > 1:
        return None
    out = [in_shape[i] if d == 0 else int(d) for i, d in enumerate(shape)]
    total = int(np.prod(in_shape))
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        if known <= 0 or total % known:
            return None
        out[out.index(-1)] = total // known
    return out if int(np.prod(out)) == total else None


@handles("Expand")
def _expand(ctx: Ctx, node, a: Attrs) -> None:
    shape = _ints(_need_const(ctx, node, 1, "shape"))
    src = ctx.input(node.input[0])
    in_shape = ctx.g.values[src].shape if src in ctx.g.values else ctx.g.initializers[src].shape
    try:  # ONNX Expand broadcasts both ways: the IR keeps the resulting shape, concrete
        target = [int(d) for d in np.broadcast_shapes(tuple(in_shape), tuple(shape))]
    except ValueError:
        raise UnsupportedModelError(
            f"node '{node.name}' (Expand): shape {shape} does not broadcast with its input {list(in_shape)}"
        ) from None
    ctx.emit(node, "Expand", [src], {"shape": target})


@handles("Transpose")
def _transpose(ctx: Ctx, node, a: Attrs) -> None:
    rank = _rank(ctx, node.input[0])
    perm = _ints(a.get("perm", list(range(rank))[::-1]))
    ctx.emit(node, "Transpose", [ctx.input(node.input[0])], {"perm": perm})


@handles("Flatten")
def _flatten(ctx: Ctx, node, a: Attrs) -> None:
    src = ctx.input(node.input[0])
    rank = len(ctx.g.values[src].shape)
    axis = int(a.get("axis", 1))
    axis = axis + rank if axis < 0 else axis  # ONNX allows [-rank, rank]
    ctx.emit(node, "Flatten", [src], {"axis": axis})


@handles("Concat")
def _concat(ctx: Ctx, node, a: Attrs) -> None:
    ctx.emit(node, "Concat", [ctx.input(i) for i in node.input], {"axis": int(a["axis"])})


@handles("Split")
def _split(ctx: Ctx, node, a: Attrs) -> None:
    rank = _rank(ctx, node.input[0])
    axis = int(a.get("axis", 0)) % rank
    data = ctx.g.values.get(ctx.name(node.input[0]))
    size = data.shape[axis] if data is not None else ctx.const(node.input[0]).shape[axis]
    if "split" in a:
        split = _ints(a["split"])
    elif len(node.input) > 1 and node.input[1]:
        split = _ints(_need_const(ctx, node, 1, "split"))
    else:
        n = int(a.get("num_outputs", len(node.output)))
        chunk = -(-size // n)
        split = [chunk] * (n - 1) + [size - chunk * (n - 1)]
    ctx.emit(
        node, "Split", [ctx.input(node.input[0])], {"axis": axis, "split": split}, outputs=list(node.output)
    )


@handles("Slice")
def _slice(ctx: Ctx, node, a: Attrs) -> None:
    rank = _rank(ctx, node.input[0])
    if ctx.opset < 10 or "starts" in a:
        starts, ends = _ints(a["starts"]), _ints(a["ends"])
        axes = _ints(a.get("axes", list(range(len(starts)))))
        steps = [1] * len(starts)
    else:
        starts = _ints(_need_const(ctx, node, 1, "starts"))
        ends = _ints(_need_const(ctx, node, 2, "ends"))
        axes = (
            _ints(_need_const(ctx, node, 3, "axes"))
            if len(node.input) > 3 and node.input[3]
            else list(range(len(starts)))
        )
        steps = (
            _ints(_need_const(ctx, node, 4, "steps"))
            if len(node.input) > 4 and node.input[4]
            else [1] * len(starts)
        )
    big = 2**62
    ends = [max(min(e, big), -big) for e in ends]
    starts = [max(min(s, big), -big) for s in starts]
    axes = [ax % rank for ax in axes]
    ctx.emit(
        node,
        "Slice",
        [ctx.input(node.input[0])],
        {"starts": starts, "ends": ends, "axes": axes, "steps": steps},
    )


@handles("Gather")
def _gather(ctx: Ctx, node, a: Attrs) -> None:
    data, idx = node.input[0], node.input[1]
    axis = int(a.get("axis", 0)) % _rank(ctx, data)
    if ctx.const(idx) is not None:
        name = ctx.input(idx)
        ctx.g.initializers[name] = ctx.g.initializers[name].astype(np.int64)
    ctx.emit(node, "Gather", [ctx.input(data), ctx.input(idx)], {"axis": axis})


@handles("GatherND")
def _gather_nd(ctx: Ctx, node, a: Attrs) -> None:
    if int(a.get("batch_dims", 0)) != 0:
        raise UnsupportedModelError(f"node '{node.name}' (GatherND): batch_dims > 0 is not supported")
    idx = node.input[1]
    if ctx.const(idx) is not None:
        name = ctx.input(idx)
        ctx.g.initializers[name] = ctx.g.initializers[name].astype(np.int64)
    ctx.emit(node, "GatherND", [ctx.input(node.input[0]), ctx.input(idx)])


def _axes_arg(ctx: Ctx, node, a: Attrs) -> list[int]:
    if "axes" in a:
        return _ints(a["axes"])
    if len(node.input) > 1 and node.input[1]:
        return _ints(_need_const(ctx, node, 1, "axes"))
    return []


@handles("Unsqueeze")
def _unsqueeze(ctx: Ctx, node, a: Attrs) -> None:
    ctx.emit(node, "Unsqueeze", [ctx.input(node.input[0])], {"axes": _axes_arg(ctx, node, a)})


@handles("Squeeze")
def _squeeze(ctx: Ctx, node, a: Attrs) -> None:
    axes = _axes_arg(ctx, node, a)
    if not axes:
        shape = ctx.g.values[ctx.name(node.input[0])].shape
        axes = [i for i, d in enumerate(shape) if d == 1]
    ctx.emit(node, "Squeeze", [ctx.input(node.input[0])], {"axes": axes})


@handles("Cast")
def _cast(ctx: Ctx, node, a: Attrs) -> None:
    to = _ONNX_DTYPES.get(int(a["to"]))
    if to is None:
        raise UnsupportedModelError(f"node '{node.name}' (Cast): target type {a['to']} is not supported")
    src = ctx.name(node.input[0])
    if src in ctx.g.values and ctx.g.values[src].dtype == to:
        ctx.rename[node.output[0]] = src
        return
    ctx.emit(node, "Cast", [ctx.input(node.input[0])], {"to": to})


@handles("ConstantOfShape")
def _constant_of_shape(ctx: Ctx, node, a: Attrs) -> None:
    raise UnsupportedModelError(
        f"node '{node.name}' (ConstantOfShape): its shape depends on the input data, so it has no fixed size"
    )


@handles("Constant")
def _constant(ctx: Ctx, node, a: Attrs) -> None:  # always folded; reached only if something is off
    raise UnsupportedModelError(f"node '{node.name}' (Constant): could not be folded")
