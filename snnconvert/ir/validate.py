"""Graph validation: every error names the node (and the file it came from)."""

from __future__ import annotations

from snnconvert.errors import GraphError
from snnconvert.ir.graph import CODINGS, DOMAINS, Graph
from snnconvert.ir.registry import OPS, infer_shapes


def validate(g: Graph, source: str = "graph", check_shapes: bool = True) -> None:
    """Raise GraphError on the first inconsistency: unknown op, bad attribute, undefined input,
    shape that disagrees with the op's own reference computation."""
    defined = set(g.inputs) | set(g.initializers)
    for name in g.inputs:
        if name not in g.values:
            raise GraphError(f"{source}: graph input '{name}' has no value entry")
    seen_nodes: set[str] = set()
    for n in g.nodes:
        where = f"{source}: node '{n.name}' ({n.op})"
        if n.name in seen_nodes:
            raise GraphError(f"{where}: duplicate node name")
        seen_nodes.add(n.name)
        op = OPS.get(n.op)
        if op is None:
            raise GraphError(f"{where}: unknown op")
        for k, spec in op.attrs.items():
            if k not in n.attrs:
                if spec.required:
                    raise GraphError(f"{where}: missing attribute '{k}'")
                continue
            if not isinstance(n.attrs[k], spec.kind) or isinstance(n.attrs[k], bool) and spec.kind is int:
                raise GraphError(f"{where}: attribute '{k}' has type {type(n.attrs[k]).__name__}")
        extra = set(n.attrs) - set(op.attrs)
        if extra:
            raise GraphError(f"{where}: unknown attribute(s) {', '.join(sorted(extra))}")
        for i in n.inputs:
            if i and i not in defined:
                raise GraphError(f"{where}: input '{i}' is not defined before use")
        if op.n_outputs > 0 and len(n.outputs) != op.n_outputs:
            raise GraphError(f"{where}: expects {op.n_outputs} output(s), has {len(n.outputs)}")
        for o in n.outputs:
            if o in defined:
                raise GraphError(f"{where}: output '{o}' is defined twice")
            if o not in g.values:
                raise GraphError(f"{where}: output '{o}' has no value entry")
            v = g.values[o]
            if v.domain is not None and v.domain not in DOMAINS:
                raise GraphError(f"{where}: output '{o}' has unknown domain '{v.domain}'")
            if v.coding is not None and v.coding not in CODINGS:
                raise GraphError(f"{where}: output '{o}' has unknown coding '{v.coding}'")
            defined.add(o)
        if check_shapes:
            _check_node_shapes(g, n, where)
    for o in g.outputs:
        if o not in defined:
            raise GraphError(f"{source}: graph output '{o}' is never produced")
    if not g.outputs:
        raise GraphError(f"{source}: the graph has no outputs")
    check_coding(g, source)
    for name, axis in g.meta.get("batch_axes", {}).items():
        v = g.values.get(name)
        if v is None or name not in g.inputs and name not in g.outputs:
            raise GraphError(f"{source}: meta.batch_axes names '{name}', not a graph input or output")
        if axis is not None and (
            not isinstance(axis, int) or not 0 <= axis < len(v.shape) or v.shape[axis] != 1
        ):
            raise GraphError(
                f"{source}: meta.batch_axes['{name}'] = {axis} is not a size-1 axis of its shape {list(v.shape)}"
            )


def _check_node_shapes(g: Graph, n, where: str) -> None:
    shapes, dtypes, consts = g.input_signature(n)
    try:
        got = infer_shapes(n.op, n.attrs, shapes, dtypes, consts)
    except Exception as e:  # the op's own reference rejected these shapes
        raise GraphError(
            f"{where}: inputs of shapes {shapes} are invalid ({str(e).splitlines()[0]})"
        ) from None
    for o, (shp, _dt) in zip(n.outputs, got, strict=False):
        if tuple(g.values[o].shape) != tuple(shp):
            raise GraphError(
                f"{where}: output '{o}' declared {list(g.values[o].shape)} but computes {list(shp)}"
            )


def check_coding(g: Graph, source: str = "graph") -> None:
    """A converted graph has one coding (meta.coding, from its recipe): every neuron is made for it
    and every spike value is labelled with it, or the first that is not is named."""
    coding = g.meta.get("coding")
    if coding is None:
        return  # an ANN
    if coding not in CODINGS:
        raise GraphError(f"{source}: meta.coding is '{coding}', not one of {', '.join(CODINGS)}")
    for n in g.nodes:
        op = OPS[n.op]
        if "coding" in op.attrs:
            own = op.with_defaults(n.attrs)["coding"]
            if own != coding:
                raise GraphError(
                    f"{source}: node '{n.name}' ({n.op}) is {own}-coded in a {coding}-coded graph"
                )
        for o in n.outputs:
            c = g.values[o].coding
            if c is not None and c != coding:
                raise GraphError(
                    f"{source}: value '{o}' of node '{n.name}' is labelled {c}-coded in a {coding}-coded graph"
                )
