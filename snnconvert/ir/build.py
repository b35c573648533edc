"""Building graphs node by node with output shapes inferred by each op's own reference."""

from __future__ import annotations

from typing import Any

import numpy as np

from snnconvert.errors import GraphError
from snnconvert.ir.graph import Graph, Node, Value
from snnconvert.ir.registry import infer_shapes


def input_signature(g: Graph, n: Node) -> tuple[list, list, list]:
    """(shapes, dtypes, constant values or None) of a node's inputs, as infer_shapes takes them."""
    shapes, dtypes, consts = [], [], []
    for i in n.inputs:
        if i in g.initializers:
            a = g.initializers[i]
            shapes.append(tuple(a.shape))
            dtypes.append(str(a.dtype))
            consts.append(a)
        else:
            v = g.values[i]
            shapes.append(v.shape)
            dtypes.append(v.dtype)
            consts.append(None)
    return shapes, dtypes, consts


def add_node(g: Graph, n: Node) -> Node:
    """Append a node and create its output values with inferred shapes and dtypes."""
    shapes, dtypes, consts = input_signature(g, n)
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

    def input(self, name: str, shape: tuple[int, ...], dtype: str = "float32") -> str:
        self.g.inputs.append(name)
        self.g.values[name] = Value(name, tuple(shape), dtype)
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

    def output(self, *names: str) -> Graph:
        self.g.outputs.extend(names)
        from snnconvert.ir.validate import validate

        validate(self.g)
        return self.g
