"""Folding BatchNorm into the preceding linear/conv layer (inference-time BN is affine)."""

from __future__ import annotations

from typing import Any

import numpy as np

from snnconvert.ir.graph import Graph, Node, Value
from snnconvert.passes.registry import PassContext, register_pass


@register_pass("fold_batchnorm")
def fold_batchnorm(g: Graph, params: dict[str, Any], ctx: PassContext) -> Graph:
    """Fold every BatchNorm that directly follows a Conv/Linear (whose output it alone reads)."""
    g = g.copy()
    for bn in [n for n in g.nodes if n.op == "BatchNorm"]:
        src = g.producer(bn.inputs[0])
        via = _token_transpose(g, src)  # tokens [.., N, D] -> [.., D, N] for BN, as MST writes it
        if via is not None and len(g.consumers(bn.inputs[0])) == 1:
            src = g.producer(via.inputs[0])
        if src is None or src.op not in ("Conv", "Linear") or len(g.consumers(bn.inputs[0])) != 1:
            ctx.notes.append(
                f"fold_batchnorm: '{bn.name}' does not follow a Conv/Linear; kept as an analog affine op"
            )
            continue
        scale, bias, mean, var = (g.initializers[i].astype(np.float64) for i in bn.inputs[1:5])
        k = scale / np.sqrt(var + bn.attrs.get("epsilon", 1e-5))
        w = g.initializers[src.inputs[1]].astype(np.float64)
        b = g.initializers[src.inputs[2]].astype(np.float64) if len(src.inputs) > 2 else np.zeros_like(mean)
        if src.op == "Conv":
            w = w * k.reshape((-1,) + (1,) * (w.ndim - 1))
        else:  # Linear weight is [in, out]; BN over axis 1 = the feature axis only for 2-D inputs
            if via is None and len(g.values[src.outputs[0]].shape) != 2:
                ctx.notes.append(
                    f"fold_batchnorm: '{bn.name}' normalises axis 1 of a >2-D Linear output; kept"
                )
                continue
            w = w * k.reshape(1, -1)
        b = (b - mean) * k + bias
        wname, bname = g.unique_name(src.name + "_w_bn"), g.unique_name(src.name + "_b_bn")
        g.initializers[wname] = w.astype(np.float32)
        g.initializers[bname] = b.astype(np.float32)
        src.inputs = [src.inputs[0], wname, bname]
        if via is not None:  # the Linear's output is no longer the ANN's tensor: a name of its own
            v = g.values.pop(src.outputs[0])
            mid = g.unique_name(v.name + "_bn")
            g.values[mid] = Value(mid, v.shape, v.dtype)
            src.outputs, via.inputs = [mid], [mid]
        # the Conv/Linear (or the transpose after it) now produces the BN's output directly
        last = via if via is not None else src
        old = last.outputs[0]
        last.outputs = [bn.outputs[0]]
        g.nodes.remove(bn)
        del g.values[old]
    g.remove_unused()
    return g


def _token_transpose(g: Graph, n: Node | None) -> Node | None:
    """A Transpose that moves a Linear's feature axis (its last) to axis 1, where BatchNorm normalises,
    read by nothing else: the BN then scales the Linear's output features and folds into it."""
    if n is None or n.op != "Transpose" or len(g.consumers(n.inputs[0])) != 1:
        return None
    src, perm = g.producer(n.inputs[0]), list(n.attrs.get("perm", []))
    ok = src is not None and src.op == "Linear" and len(perm) > 2 and perm[1] == len(perm) - 1
    return n if ok else None
