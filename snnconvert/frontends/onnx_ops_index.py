"""ONNX handlers for snnconvert.ir.ops_index (CumSum, GatherElements, Pad, Trilu, Tile, ScatterND), and
the refusal of ops whose output shape depends on the input data (Range, NonZero).

Shape-like operands (axis, pads, axes, repeats, k) must be constant and become attributes; a constant
index tensor stays an int64 initializer."""

from __future__ import annotations

import numpy as np

from snnconvert.errors import UnsupportedModelError
from snnconvert.frontends.onnx_ctx import Ctx, handles
from snnconvert.frontends.onnx_ops import Attrs, _ints, _need_const, _rank
from snnconvert.frontends.onnx_ops_reduce import _axis
from snnconvert.ir.ops_index import PAD_MODES


def _has(node, idx: int) -> bool:
    return len(node.input) > idx and bool(node.input[idx])


def _shape(ctx: Ctx, name: str) -> tuple[int, ...]:
    c = ctx.const(name)
    return tuple(c.shape) if c is not None else tuple(ctx.g.values[ctx.name(name)].shape)


def _dtype(ctx: Ctx, name: str) -> str:
    c = ctx.const(name)
    return str(c.dtype) if c is not None else ctx.g.values[ctx.name(name)].dtype


def _int64_input(ctx: Ctx, name: str, value: np.ndarray | None = None) -> str:
    """A constant index operand as an int64 initializer (a new one when converted or rewritten)."""
    c = ctx.const(name) if value is None else value
    if value is None and c.dtype == np.int64:
        return ctx.input(name)
    new = ctx.g.unique_name(name + "_int64")
    ctx.g.initializers[new] = np.array(c, dtype=np.int64, order="C")
    return new


@handles("CumSum")
def _cumsum(ctx: Ctx, node, a: Attrs) -> None:
    axis = _need_const(ctx, node, 1, "axis")
    if axis.size != 1:
        raise UnsupportedModelError(f"node '{node.name}' (CumSum): axis must be a scalar")
    attrs = {
        "axis": _axis(node, int(axis.reshape(-1)[0]), _rank(ctx, node.input[0])),
        "exclusive": int(a.get("exclusive", 0)),
        "reverse": int(a.get("reverse", 0)),
    }
    ctx.emit(node, "CumSum", [ctx.input(node.input[0])], attrs)


@handles("GatherElements")
def _gather_elements(ctx: Ctx, node, a: Attrs) -> None:
    data, idx = node.input[0], node.input[1]
    axis = _axis(node, int(a.get("axis", 0)), _rank(ctx, data))
    ii = _int64_input(ctx, idx) if ctx.const(idx) is not None else ctx.input(idx)
    ctx.emit(node, "GatherElements", [ctx.input(data), ii], {"axis": axis})


@handles("Pad")
def _pad(ctx: Ctx, node, a: Attrs) -> None:
    """pads (and value) are attributes before opset 11 and constant inputs after; opset 18 adds the
    optional axes input, opset 19 the wrap mode."""
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode not in PAD_MODES:
        raise UnsupportedModelError(f"node '{node.name}' (Pad): mode '{mode}' is not supported")
    x = node.input[0]
    shape = _shape(ctx, x)
    rank = len(shape)
    if "pads" in a:
        pads, value = _ints(a["pads"]), float(a.get("value", 0.0))
    else:
        pads = _ints(_need_const(ctx, node, 1, "pads"))
        value = _need_const(ctx, node, 2, "constant_value").reshape(-1)[0].item() if _has(node, 2) else 0
    axes = (
        [_axis(node, ax, rank, "axes entry") for ax in _ints(_need_const(ctx, node, 3, "axes"))]
        if _has(node, 3)
        else list(range(rank))
    )
    if len(pads) != 2 * len(axes) or len(set(axes)) != len(axes):
        raise UnsupportedModelError(
            f"node '{node.name}' (Pad): {len(pads)} pads for {len(axes)} distinct axes (expected 2 per axis)"
        )
    full = [0] * (2 * rank)
    for i, ax in enumerate(axes):
        full[ax], full[rank + ax] = pads[i], pads[len(axes) + i]
    for ax in range(rank):
        if shape[ax] + full[ax] + full[rank + ax] < 0 or (mode != "constant" and shape[ax] == 0):
            raise UnsupportedModelError(
                f"node '{node.name}' (Pad): pads {pads} do not fit the input {list(shape)}"
            )
    is_float = _dtype(ctx, x).startswith("float")
    attrs = {"pads": full, "mode": mode, "value": float(value) if is_float else int(value)}
    ctx.emit(node, "Pad", [ctx.input(x)], attrs)


@handles("Trilu")
def _trilu(ctx: Ctx, node, a: Attrs) -> None:
    if _rank(ctx, node.input[0]) < 2:
        raise UnsupportedModelError(f"node '{node.name}' (Trilu): the input needs at least 2 axes")
    k = int(_need_const(ctx, node, 1, "k").reshape(-1)[0]) if _has(node, 1) else 0
    ctx.emit(node, "Trilu", [ctx.input(node.input[0])], {"upper": int(a.get("upper", 1)), "k": k})


@handles("Tile")
def _tile(ctx: Ctx, node, a: Attrs) -> None:
    repeats = _ints(_need_const(ctx, node, 1, "repeats"))
    if len(repeats) != _rank(ctx, node.input[0]) or any(r < 0 for r in repeats):
        raise UnsupportedModelError(
            f"node '{node.name}' (Tile): repeats {repeats} must be one non-negative count per input axis"
        )
    ctx.emit(node, "Tile", [ctx.input(node.input[0])], {"repeats": repeats})


SCATTER_REDUCTIONS = ("none", "add", "mul", "max", "min")


@handles("ScatterND")
def _scatter_nd(ctx: Ctx, node, a: Attrs) -> None:
    """Indices must be constant: checked in range, made non-negative, and distinct unless the
    reduction is add (onnxruntime leaves repeated indices undefined for the others)."""
    red = a.get("reduction", b"none")
    red = red.decode() if isinstance(red, bytes) else str(red)
    if red not in SCATTER_REDUCTIONS:
        raise UnsupportedModelError(f"node '{node.name}' (ScatterND): reduction '{red}' is not supported")
    data, idx_name, upd = node.input[0], node.input[1], node.input[2]
    idx = _need_const(ctx, node, 1, "indices").astype(np.int64)
    shape = _shape(ctx, data)
    k = idx.shape[-1] if idx.ndim else 0
    if idx.ndim < 1 or not 1 <= k <= len(shape):
        raise UnsupportedModelError(
            f"node '{node.name}' (ScatterND): indices of shape {list(idx.shape)} do not index data {list(shape)}"
        )
    dims = np.array(shape[:k], dtype=np.int64)
    if ((idx < -dims) | (idx >= dims)).any():
        raise UnsupportedModelError(
            f"node '{node.name}' (ScatterND): an index is out of range of {list(shape)}"
        )
    idx = np.where(idx < 0, idx + dims, idx)
    flat = np.ravel_multi_index(tuple(idx.reshape(-1, k).T), tuple(int(d) for d in dims)) if idx.size else idx
    if red != "add" and len(np.unique(flat)) != np.size(flat):
        raise UnsupportedModelError(
            f"node '{node.name}' (ScatterND): repeated indices with reduction '{red}' have no defined result"
        )
    ins = [ctx.input(data), _int64_input(ctx, idx_name, idx), ctx.input(upd)]
    ctx.emit(node, "ScatterND", ins, {"reduction": red})


# -- data-dependent output shapes ------------------------------------------------------------------------
@handles("Range")
def _range(ctx: Ctx, node, a: Attrs) -> None:  # a Range of constant bounds is folded and never gets here
    raise UnsupportedModelError(
        f"node '{node.name}' (Range): its bounds depend on the input data, so its length (the output "
        "shape) does; only Ranges of constant bounds are supported (they are folded at import)"
    )


@handles("NonZero")
def _nonzero(ctx: Ctx, node, a: Attrs) -> None:
    raise UnsupportedModelError(
        f"node '{node.name}' (NonZero): how many entries are non-zero depends on the input data, so its "
        "output shape does; data-dependent shapes are not supported"
    )
