"""The closed op registry: one entry per IR op with its ANN reference, attribute schema and op count.

Shape inference runs the ANN reference on torch "meta" tensors, so an op is defined once (its
reference computation) and its shapes can never disagree with what it computes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

Shape = tuple[int, ...]
# The cost of one op application per sample, by kind of operation: "mac" (multiply-accumulate of a
# synapse), and elementwise kinds "add", "mul", "div", "exp", "sqrt", "cmp" (comparison/select).
Cost = dict[str, int]
# The event kind of an op with neurons inside that counts its applications per element (not spikes).
EVALUATIONS = "evaluations"


@dataclass(frozen=True)
class Attr:
    """Schema of one attribute: python type(s) accepted and a default (REQUIRED when none)."""

    kind: type | tuple[type, ...]
    default: Any = None
    required: bool = False


@dataclass(frozen=True)
class OpDef:
    name: str
    run: Callable[..., Any]  # run(attrs, *tensors) -> Tensor | tuple[Tensor, ...]
    attrs: dict[str, Attr] = field(default_factory=dict)
    cost: Callable[[dict[str, Any], Sequence[Shape], Sequence[Shape]], Cost] | None = None
    # Given the indices of inputs that vary over time, is the op affine in them (the others fixed)?
    # The simulator feeds affine ops the per-step signal; others see the decoded running value.
    affine_in: Callable[[frozenset[int]], bool] = lambda s: False
    doc: str = ""
    n_outputs: int = 1  # -1: given by the node (Split)
    spiking: bool = False  # a neuron: stateful in the simulator
    # An op with neurons inside that settle within one application (SpikingSoftmax): returns
    # (outputs, {kind: per-element event counts, output-shaped}); the simulator records them.
    events: Callable[..., tuple[Any, dict[str, Any]]] | None = None
    # Its SNN cost per sample from those events (summed over elements and executions):
    # snn_cost(attrs, in_shapes, out_shapes, events, executions) -> (ACs, elementwise ops by kind).
    snn_cost: Callable[..., tuple[float, dict[str, float]]] | None = None
    analog_parts: str = ""  # what inside such an op is not driven by spikes (for the energy report)

    def with_defaults(self, attrs: dict[str, Any]) -> dict[str, Any]:
        out = {k: a.default for k, a in self.attrs.items() if not a.required}
        out.update(attrs)
        return out


OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    if op.name in OPS:
        raise ValueError(f"op {op.name} registered twice")
    OPS[op.name] = op
    return op


def get(name: str) -> OpDef:
    from snnconvert.errors import GraphError

    try:
        return OPS[name]
    except KeyError:
        raise GraphError(f"unknown IR op '{name}'") from None


def run_op(op: str, attrs: dict[str, Any], inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Execute one op's ANN reference; always returns a list of outputs."""
    d = get(op)
    out = d.run(d.with_defaults(attrs), *inputs)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def infer_shapes(
    op: str, attrs: dict[str, Any], shapes: Sequence[Shape], dtypes: Sequence[str], consts: Sequence[Any]
) -> list[tuple[Shape, str]]:
    """Output (shape, dtype) per output, by running the reference on meta tensors.

    `consts` holds the numpy value of constant inputs (None for data) so index-like constants
    keep their dtype. Shapes use -1 for the batch axis: the op runs at batch 2 and 3, and the axis
    that follows the batch size becomes -1 again. An op that moves or merges the batch axis away
    from axis 0 is rejected (the simulator folds time into that axis).
    """
    runs = []
    for b in (2, 3):
        ins = []
        for s, dt, c in zip(shapes, dtypes, consts, strict=True):
            if c is not None:
                ins.append(torch.empty(c.shape, dtype=torch_dtype(str(c.dtype)), device="meta"))
            else:
                concrete = tuple(b if (i == 0 and d == -1) else d for i, d in enumerate(s))
                ins.append(torch.empty(concrete, dtype=torch_dtype(dt), device="meta"))
        runs.append(run_op(op, attrs, ins))
    res = []
    for o2, o3 in zip(*runs, strict=True):
        s2, s3 = tuple(int(d) for d in o2.shape), tuple(int(d) for d in o3.shape)
        if s2 == s3:
            res.append((s2, dtype_name(o2.dtype)))
            continue
        moved = [i for i, (a, b) in enumerate(zip(s2, s3, strict=True)) if a != b]
        if moved != [0] or (s2[0], s3[0]) != (2, 3):
            raise ValueError(
                f"the batch axis moves or merges with another axis (output shape {list(s2)} at batch 2)"
            )
        res.append(((-1,) + s2[1:], dtype_name(o2.dtype)))
    return res


_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}


def torch_dtype(name: str) -> torch.dtype:
    return _DTYPES[name]


def dtype_name(dt: torch.dtype) -> str:
    for k, v in _DTYPES.items():
        if v == dt:
            return k
    raise ValueError(f"unsupported dtype {dt}")


def numel(shape: Shape) -> int:
    """Elements per sample: the batch axis (-1) counts as one."""
    return int(np.prod([1 if d == -1 else d for d in shape], dtype=np.int64)) if shape else 1
