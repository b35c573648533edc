"""Building graphs node by node with output shapes inferred by each op's own reference."""

from __future__ import annotations

from typing import Any

import numpy as np

from snnconvert.errors import GraphError
from snnconvert.ir.graph import Graph, Node, Value
from snnconvert.ir.registry import infer_shapes
from snnconvert.ir.validate import validate


def add_node(g: Graph, n: Node) -> Node:
    """Append a node and create its output values with inferred shapes and dtypes."""
    shapes, dtypes, consts = g.input_signature(n)
    try:
        got = infer_shapes(n.op, n.attrs, shapes, dtypes, consts)
    except Exception as e:
        raise GraphError(
            f"node '{n.name}' ({n.op}): cannot infer output shape from inputs {[list(s) for s in shapes]}: "
            f"{str(e).splitlines()[0]}"
        ) from None
    for o, (shp, dt) in zip(n.outputs, got, strict=True):
        g.values[o] = Value(o, shp, dt)
    g.nodes.append(n)
    return n


class GraphBuilder:
    """A small fluent builder (used by the zoo, tests and benches): inputs, constants, nodes."""

    def __init__(self) -> None:
        self.g = Graph(nodes=[], values={}, inputs=[], outputs=[])

    def input(
        self, name: str, shape: tuple[int, ...], dtype: str = "float32", batch_axis: int | None = None
    ) -> str:
        """A graph input of one sample's `shape`; `batch_axis` is where that shape keeps the
        batch-of-one axis an export has (None: the sample has no such axis)."""
        if batch_axis is not None and shape[batch_axis] != 1:
            raise ValueError(f"input '{name}': axis {batch_axis} of {list(shape)} is not a batch of one")
        self.g.inputs.append(name)
        self.g.values[name] = Value(name, tuple(shape), dtype)
        self.g.meta.setdefault("batch_axes", {})[name] = batch_axis
        return name

    def const(self, name: str, value: Any) -> str:
        self.g.initializers[name] = np.asarray(value)
        return name

    def node(
        self,
        op: str,
        inputs: list[str],
        attrs: dict[str, Any] | None = None,
        name: str | None = None,
        n_out: int = 1,
    ) -> str | list[str]:
        base = name or f"{op.lower()}{len(self.g.nodes)}"
        outs = [base if n_out == 1 else f"{base}:{k}" for k in range(n_out)]
        add_node(self.g, Node(base, op, list(inputs), outs, dict(attrs or {})))
        return outs[0] if n_out == 1 else outs

    def output(self, *names: str, batch_axis: int | None | str = "inputs") -> Graph:
        """Mark outputs; `batch_axis` as for inputs ("inputs": the inputs' axis, when they agree and
        the output has a size-1 axis there)."""
        self.g.outputs.extend(names)
        axes = self.g.meta.setdefault("batch_axes", {})
        if batch_axis == "inputs":
            given = {axes.get(i) for i in self.g.inputs}
            batch_axis = given.pop() if len(given) == 1 else None
        for o in names:
            ok = batch_axis is not None and self.g.values[o].shape[batch_axis : batch_axis + 1] == (1,)
            axes[o] = batch_axis if ok else None
        validate(self.g)
        return self.g
