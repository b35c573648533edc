"""Passes for softmax-free spiking attention: Spikformer's SSA and the Spike-driven Transformer's SDSA.

- `reassociate_attention`: SSA's Q K^T V is linear in each factor, so it may be computed as
  Q (K^T V); for N tokens of head width d that is 2 N d^2 products instead of 2 N^2 d, the saving
  Spikformer claims when N > d. The rewrite is exact in real arithmetic (floats differ by rounding).
- `spike_products`: a Hadamard product of two spike trains (SDSA's K * V and Q * mask) is itself a
  spike train in the papers (the AND of binary spikes). In a converted network the simulator
  forms the product of the two operands' running values (methods.md: running sums), which is an
  analog signal; a neuron after it turns it back into spikes, so the column sum and the layer
  after it are spike-driven.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snnconvert.errors import GraphError
from snnconvert.ir.build import add_node
from snnconvert.ir.graph import Graph, Node, Value
from snnconvert.ir.registry import get
from snnconvert.passes.registry import Param, PassContext, register_pass
from snnconvert.passes.spikify import _keeps_spikes, _theta, if_attrs


def _scalar_const(g: Graph, n: Node) -> str | None:
    """The scalar constant operand of a Mul by a scalar (attention's scale s), else None."""
    if n.op != "Mul" or len(n.inputs) != 2:
        return None
    consts = [i for i in n.inputs if i in g.initializers and np.asarray(g.initializers[i]).size == 1]
    dyn = [i for i in n.inputs if i not in g.initializers]
    return consts[0] if len(consts) == 1 and len(dyn) == 1 else None


def _only_consumer(g: Graph, value: str) -> Node | None:
    cons = g.consumers(value)
    return cons[0] if len(cons) == 1 and value not in g.outputs else None


def chain_macs(m: int, d: int, k: int, e: int) -> tuple[int, int]:
    """Products of (A[m,d] B[d,k]) C[k,e] and of A[m,d] (B[d,k] C[k,e]), per batch entry; for
    attention m = k = N tokens and d = e the head width, so 2 N^2 d against 2 N d^2."""
    return m * d * k + m * k * e, d * k * e + m * d * e


@register_pass("reassociate_attention")
def reassociate_attention(g: Graph, params: dict[str, Any], ctx: PassContext) -> Graph:
    """Rewrite MatMul(MatMul(A, B), C) as MatMul(A, MatMul(B, C)) where that needs fewer products
    (for d = e: N > d), optionally through a Mul by a scalar constant between the two MatMuls,
    which moves onto the small product. The inner product must have no other consumer."""
    g = g.copy()
    for outer in list(g.nodes):
        if outer.op != "MatMul" or any(i in g.initializers for i in outer.inputs):
            continue
        s_val, c_val = outer.inputs
        scale_node = g.producer(s_val)
        scale = None
        if scale_node is not None and _scalar_const(g, scale_node) is not None:
            if _only_consumer(g, s_val) is not outer:
                continue
            scale = _scalar_const(g, scale_node)
            s_val = next(i for i in scale_node.inputs if i not in g.initializers)
        inner = g.producer(s_val)
        if inner is None or inner.op != "MatMul" or any(i in g.initializers for i in inner.inputs):
            continue
        if _only_consumer(g, s_val) is not (scale_node if scale is not None else outer):
            continue
        a_val, b_val = inner.inputs
        a, b, c = (g.values[v].shape for v in (a_val, b_val, c_val))
        if min(len(a), len(b), len(c)) < 2:
            continue
        m, d, k, e = a[-2], a[-1], b[-1], c[-1]
        before, after = chain_macs(m, d, k, e)
        shape = f"A [{m}, {d}], B [{d}, {k}], C [{k}, {e}]"
        if after >= before:
            ctx.notes.append(
                f"reassociate_attention: '{outer.name}' kept as (A B) C: {shape}, {before} products "
                f"per head, {after} reassociated"
            )
            continue
        # the new chain: BC = B @ C (scaled), out = A @ BC; the old inner product and scale go
        g.nodes.remove(inner)
        g.values.pop(s_val, None)
        if scale is not None:
            g.nodes.remove(scale_node)
            g.values.pop(scale_node.outputs[0], None)
        pos = g.nodes.index(outer)
        rest = g.nodes[pos:]
        g.nodes = g.nodes[:pos]
        bc = g.unique_name(f"{outer.name}/KtV")
        add_node(g, Node(g.unique_name(f"{outer.name}/KtV_matmul"), "MatMul", [b_val, c_val], [bc]))
        if scale is not None:
            scaled = g.unique_name(f"{outer.name}/KtV_scaled")
            add_node(g, Node(g.unique_name(f"{outer.name}/scale"), "Mul", [bc, scale], [scaled]))
            bc = scaled
        outer.inputs = [a_val, bc]
        g.nodes.extend(rest)
        g.touch()
        ctx.notes.append(
            f"reassociate_attention: '{outer.name}' computes A (B C): {shape}, {before} -> {after} "
            "products per head"
        )
    return g


@register_pass(
    "spike_products",
    {
        "percentile": Param(
            (int, float),
            99.9,
            "percentile of the product's calibrated values used as threshold",
            lo=50.0,
            hi=100.0,
        ),
        "v0": Param((int, float), 0.5, "initial membrane as a fraction of the threshold", lo=0.0, hi=1.0),
        "max_spikes_per_step": Param(int, 1, "events a neuron may emit in one step", lo=1, hi=64),
        "levels": Param(int, 0, "count coding: largest spike count (0 = rate coding)", lo=0, hi=4096),
    },
)
def spike_products(g: Graph, params: dict[str, Any], ctx: PassContext) -> Graph:
    """An IF neuron after every elementwise product (Mul) of two spike trains, threshold the
    product's p-th calibrated percentile (divided by L under count coding); run after relu_to_if,
    which makes the operands spike."""
    if ctx.calibration is None:
        raise GraphError("spike_products: a calibration file is required")
    g = g.copy()
    spike: set[str] = set()  # the values the final domain pass will label spike, in node order
    nodes: list[Node] = []
    made = 0
    count = ctx.coding == "count" and params["levels"]
    for n in g.nodes:
        nodes.append(n)
        if get(n.op).spiking or _keeps_spikes(g, n, lambda v: v in spike):
            spike.update(n.outputs)
            continue
        dyn = [i for i in n.inputs if i not in g.initializers]
        if n.op == "Mul" and len(dyn) == 2 and all(i in spike for i in dyn):
            out = n.outputs[0]
            sk = ctx.calibration.sketch(out)
            lam = float(sk.percentile_abs(float(params["percentile"])))
            if not lam > 0:
                lam = float(sk.max) if sk.max > 0 else 1.0
            levels = float(params["levels"]) if count else 1.0
            pre = g.unique_name(out + "_pre")
            n.outputs = [pre]
            g.values[pre] = Value(pre, g.values[out].shape, g.values[out].dtype)
            theta = _theta(g, n.name, lam / levels)
            nodes.append(
                Node(
                    g.unique_name(f"{n.name}/IF"),
                    "IF",
                    [pre, theta],
                    [out],
                    # signed where calibration saw the product negative (signed operands)
                    if_attrs(ctx, params, 0.0 if sk.min >= 0 else -levels, levels),
                )
            )
            spike.add(out)
            made += 1
    g.nodes = nodes
    g.touch()
    ctx.notes.append(f"spike_products: {made} product(s) of two spike trains get a neuron of their own")
    return g
