"""Import-time rewrites that recognise what an export spelled out op by op: Linear + bias,
LayerNorm from its ReduceMean/Sub/Pow/Sqrt/Div decomposition, GELU from its Erf form.

Later passes then see one node per idea (a LayerNorm stays analog, a Linear is normalised)."""

from __future__ import annotations

import math

import numpy as np

from snnconvert.ir.graph import Graph, Node


def canonicalize(g: Graph) -> None:
    _fuse_linear_bias(g)
    _fuse_layernorm(g)
    _fuse_gelu(g)


def _single_consumer(g: Graph, value: str) -> Node | None:
    cs = g.consumers(value)
    if len(cs) != 1 or value in g.outputs:
        return None
    return cs[0]


def _const_other(g: Graph, node: Node, value: str) -> np.ndarray | None:
    """The constant operand of a binary node whose other operand is `value`."""
    if len(node.inputs) != 2 or value not in node.inputs:
        return None
    other = node.inputs[1] if node.inputs[0] == value else node.inputs[0]
    return g.initializers.get(other)


def _replace(g: Graph, old: list[Node], new: Node, out: str) -> None:
    """Put `new` where the last node of `old` was, producing `out`."""
    idx = max(g.nodes.index(n) for n in old)
    g.nodes[idx] = new
    for n in old:
        if n in g.nodes and n is not new:
            g.nodes.remove(n)
    new.outputs = [out]


def _fuse_linear_bias(g: Graph) -> None:
    for n in list(g.nodes):
        if n.op != "Linear" or len(n.inputs) != 2 or n not in g.nodes:
            continue
        add = _single_consumer(g, n.outputs[0])
        if add is None or add.op != "Add":
            continue
        b = _const_other(g, add, n.outputs[0])
        w = g.initializers[n.inputs[1]]
        if b is None or b.size != w.shape[1] or b.shape[-1:] != (w.shape[1],):
            continue
        name = g.unique_name(n.name + "_bias")
        g.initializers[name] = np.ascontiguousarray(b.reshape(-1).astype(w.dtype))
        fused = Node(n.name, "Linear", [n.inputs[0], n.inputs[1], name], [add.outputs[0]])
        _replace(g, [n, add], fused, add.outputs[0])
        del g.values[n.outputs[0]]


def _producer(g: Graph, value: str, op: str) -> Node | None:
    p = g.producer(value)
    return p if p is not None and p.op == op else None


def _fuse_layernorm(g: Graph) -> None:
    for div in [n for n in g.nodes if n.op == "Div"]:
        if div not in g.nodes:
            continue
        d, s = div.inputs
        sub = _producer(g, d, "Sub")
        sqrt = _producer(g, s, "Sqrt")
        if sub is None or sqrt is None:
            continue
        x, mean = sub.inputs
        rm1 = _producer(g, mean, "ReduceMean")
        add_eps = _producer(g, sqrt.inputs[0], "Add")
        if rm1 is None or add_eps is None or rm1.inputs[0] != x:
            continue
        var_name = next((i for i in add_eps.inputs if i not in g.initializers), None)
        eps = next((g.initializers[i] for i in add_eps.inputs if i in g.initializers), None)
        rm2 = _producer(g, var_name, "ReduceMean") if var_name else None
        if rm2 is None or eps is None or eps.size != 1:
            continue
        sq = g.producer(rm2.inputs[0])
        if sq is None or sq.inputs[0] != d:
            continue
        if sq.op == "Pow":
            e = g.initializers.get(sq.inputs[1])
            if e is None or e.size != 1 or float(e.reshape(())) != 2.0:
                continue
        elif not (sq.op == "Mul" and sq.inputs == [d, d]):
            continue
        rank = len(g.values[x].shape)
        axes1 = sorted(a % rank for a in rm1.attrs["axes"])
        axes2 = sorted(a % rank for a in rm2.attrs["axes"])
        if axes1 != axes2 or axes1 != list(range(axes1[0], rank)) or not rm1.attrs.get("keepdims", 1):
            continue
        if any(len(g.consumers(v)) != 1 for v in (mean, sq.outputs[0], var_name, add_eps.outputs[0], s)):
            continue
        if {c.name for c in g.consumers(d)} != {div.name, sq.name}:
            continue
        chain = [rm1, sub, sq, rm2, add_eps, sqrt, div]
        norm_shape = g.values[x].shape[axes1[0] :]
        out = div.outputs[0]
        scale = np.ones(norm_shape, dtype=np.float32)
        bias = None
        mul = _single_consumer(g, out)
        if mul is not None and mul.op == "Mul":
            c = _const_other(g, mul, out)
            if c is not None and c.shape[-len(norm_shape) :] == norm_shape and c.size == scale.size:
                scale = c.reshape(norm_shape).astype(np.float32)
                chain.append(mul)
                out = mul.outputs[0]
                add = _single_consumer(g, out)
                if add is not None and add.op == "Add":
                    c = _const_other(g, add, out)
                    if c is not None and c.size == scale.size:
                        bias = c.reshape(norm_shape).astype(np.float32)
                        chain.append(add)
                        out = add.outputs[0]
        sname = g.unique_name(div.name + "_ln_scale")
        g.initializers[sname] = scale
        inputs = [x, sname]
        if bias is not None:
            bname = g.unique_name(div.name + "_ln_bias")
            g.initializers[bname] = bias
            inputs.append(bname)
        name = g.unique_name((div.name.rsplit("/", 1)[0] or "ln") + "/LayerNorm")
        ln = Node(
            name, "LayerNorm", inputs, [out], {"axis": axes1[0] - rank, "epsilon": float(eps.reshape(()))}
        )
        internal = {o for n in chain for o in n.outputs} - {out}
        _replace(g, chain, ln, out)
        for v in internal:
            g.values.pop(v, None)


def _is_scalar(g: Graph, name: str, value: float, tol: float = 1e-4) -> bool:
    c = g.initializers.get(name)
    return c is not None and c.size == 1 and abs(float(c.reshape(())) - value) <= tol * max(1.0, abs(value))


def _fuse_gelu(g: Graph) -> None:
    """x * 0.5 * (1 + erf(x / sqrt(2))) in the orders exporters use -> Gelu."""
    for erf in [n for n in g.nodes if n.op == "Erf"]:
        if erf not in g.nodes:
            continue
        pre = g.producer(erf.inputs[0])
        if pre is None:
            continue
        if pre.op == "Div" and _is_scalar(g, pre.inputs[1], math.sqrt(2)):
            x = pre.inputs[0]
        elif pre.op == "Mul" and any(_is_scalar(g, i, 1 / math.sqrt(2)) for i in pre.inputs):
            x = next(i for i in pre.inputs if i not in g.initializers)
        else:
            continue
        add = _single_consumer(g, erf.outputs[0])
        if add is None or add.op != "Add" or not any(_is_scalar(g, i, 1.0) for i in add.inputs):
            continue
        m1 = _single_consumer(g, add.outputs[0])
        if m1 is None or m1.op != "Mul":
            continue
        other = next((i for i in m1.inputs if i != add.outputs[0]), None)
        if other is None:
            continue
        chain = [pre, erf, add, m1]
        if other == x:  # (x * (1+erf)) * 0.5
            m2 = _single_consumer(g, m1.outputs[0])
            if m2 is None or m2.op != "Mul" or not any(_is_scalar(g, i, 0.5) for i in m2.inputs):
                continue
            chain.append(m2)
        elif _is_scalar(g, other, 0.5):  # x * (0.5 * (1+erf)), as the dynamo exporter writes it
            m2 = _single_consumer(g, m1.outputs[0])
            if m2 is None or m2.op != "Mul" or x not in m2.inputs:
                continue
            chain.append(m2)
        else:  # (x * 0.5) * (1+erf)
            half = g.producer(other)
            if (
                half is None
                or half.op != "Mul"
                or x not in half.inputs
                or not any(_is_scalar(g, i, 0.5) for i in half.inputs)
            ):
                continue
            if len(g.consumers(other)) != 1:
                continue
            chain.insert(0, half)
        if len(g.consumers(pre.outputs[0])) != 1:
            continue
        out = chain[-1].outputs[0]
        internal = {o for n in chain for o in n.outputs} - {out}
        node = Node(
            g.unique_name(erf.name.rsplit("/", 1)[0] + "/Gelu"), "Gelu", [x], [out], {"approximate": "none"}
        )
        _replace(g, chain, node, out)
        for v in internal:
            g.values.pop(v, None)
