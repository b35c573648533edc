"""ONNX handlers for the elementwise ops of snnconvert.ir.ops_elementwise (maths, comparisons, logic):
 one ONNX op, one IR op.

Constant operands take the dtype of the run-time operand (exports mix float64 and float32 scalars)."""

from __future__ import annotations

from snnconvert.errors import UnsupportedModelError
from snnconvert.frontends.onnx_ctx import Ctx, handles
from snnconvert.frontends.onnx_ops import Attrs, _float_like


def _operands(ctx: Ctx, node) -> list[str]:
    """Every input of `node`; constants cast to the dtype of its first run-time input."""
    names = [i for i in node.input if i]
    ref = next((i for i in names if ctx.const(i) is None), None)
    return [_float_like(ctx, ref, i) if ctx.const(i) is not None and ref else ctx.input(i) for i in names]


@handles(
    "Reciprocal", "Abs", "Log", "Sin", "Cos", "Sign", "Floor", "Ceil", "Round", "Not", "Softplus", "HardSwish"
)
def _unary(ctx: Ctx, node, a: Attrs) -> None:
    ctx.emit(node, node.op_type, [ctx.input(node.input[0])])


@handles("Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Or", "Xor", "Max", "Min")
def _broadcast(ctx: Ctx, node, a: Attrs) -> None:
    ctx.emit(node, node.op_type, _operands(ctx, node))


@handles("Mod")
def _mod(ctx: Ctx, node, a: Attrs) -> None:
    fmod = int(a.get("fmod", 0))
    ins = _operands(ctx, node)
    dtypes = {ctx.g.values[i].dtype if i in ctx.g.values else str(ctx.g.initializers[i].dtype) for i in ins}
    if not fmod and ctx.opset < 28 and any(d.startswith("float") for d in dtypes):
        raise UnsupportedModelError(  # opset 28 defines it: A - floor(A / B) * B
            f"node '{node.name}' (Mod): fmod=0 on floating-point inputs is undefined before opset 28 (use fmod=1)"
        )
    ctx.emit(node, "Mod", ins, {"fmod": fmod})


@handles("HardSigmoid")
def _hard_sigmoid(ctx: Ctx, node, a: Attrs) -> None:
    attrs = {"alpha": float(a.get("alpha", 0.2)), "beta": float(a.get("beta", 0.5))}
    ctx.emit(node, "HardSigmoid", [ctx.input(node.input[0])], attrs)
