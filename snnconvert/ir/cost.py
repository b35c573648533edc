"""What a node of a graph costs per sample: its op's count (registry `cost`) on the node's shapes."""

from __future__ import annotations

from snnconvert.ir.graph import Graph, Node
from snnconvert.ir.registry import get

Shape = tuple[int, ...]


def node_shapes(g: Graph, n: Node) -> tuple[list[Shape], list[Shape]]:
    """(input shapes, output shapes) of a node; weights included."""
    ins = [tuple(g.initializers[i].shape) if i in g.initializers else g.values[i].shape for i in n.inputs]
    return ins, [g.values[o].shape for o in n.outputs]


def node_cost(g: Graph, n: Node) -> dict[str, int]:
    """Operations per sample by kind ("mac", "add", ...); {} for an op that costs nothing."""
    op = get(n.op)
    if op.cost is None:
        return {}
    return op.cost(op.with_defaults(n.attrs), *node_shapes(g, n))
