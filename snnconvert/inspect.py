"""`inspect`: what a model is made of and what each recipe would make of it."""

from __future__ import annotations

from typing import Any

import numpy as np

from snnconvert.ir.cost import node_cost
from snnconvert.ir.graph import Graph
from snnconvert.ir.registry import has_flag


def inspect_graph(g: Graph) -> dict[str, Any]:
    from snnconvert.passes import PASSES
    from snnconvert.passes.recipe import builtin_recipes, load_recipe

    ops: dict[str, dict[str, int]] = {}
    for n in g.nodes:
        row = ops.setdefault(n.op, {"count": 0, "macs": 0})
        row["count"] += 1
        row["macs"] += int(node_cost(g, n).get("mac", 0))
    # data moves and dtype conversions compute nothing
    compute = [
        n
        for n in g.nodes
        if not (has_flag(n.op, "moves_data", n.attrs) or has_flag(n.op, "converts", n.attrs))
    ]
    recipes = {}
    for name in sorted(builtin_recipes()):
        r = load_recipe(name)
        spiking_ops = {t for p, _ in r.passes for t in PASSES[p].spikes}
        if "*" in spiking_ops:  # fully spiking: every op's output, analog normalisations aside
            sp = [n for n in compute if not has_flag(n.op, "normalization", n.attrs)]
            spiking_ops = {"every op output (signed IF); LayerNorm, Softmax on totals"}
        else:
            sp = [n for n in compute if n.op in spiking_ops]
        # the most events a neuron of the recipe sends in one step (1: binary spikes)
        levels = [
            int(params.get("max_spikes_per_step", PASSES[p].params["max_spikes_per_step"].default))
            for p, params in r.passes
            if "max_spikes_per_step" in PASSES[p].params
        ]
        recipes[name] = {
            "coding": r.coding,
            "levels_per_event": max(levels, default=1),
            "spiking": len(sp),
            "analog": len(compute) - len(sp),
            "what": ", ".join(sorted(spiking_ops)) or "nothing",
            "spiking_nodes": [n.name for n in sp],
        }
    io = lambda names: [
        {"name": k, "shape": list(g.values[k].shape), "dtype": g.values[k].dtype} for k in names
    ]  # noqa: E731
    return {
        "inputs": io(g.inputs),
        "outputs": io(g.outputs),
        "parameters": int(sum(np.asarray(v).size for v in g.initializers.values())),
        "nodes": len(g.nodes),
        "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1]["count"])),
        "recipes": recipes,
    }
