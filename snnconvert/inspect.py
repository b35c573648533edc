"""`inspect`: what a model is made of and what each recipe would make of it."""

from __future__ import annotations

from typing import Any

import numpy as np

from snnconvert.ir.cost import node_cost
from snnconvert.ir.graph import Graph
from snnconvert.ir.registry import has_flag


def _events_per_step(defs: dict, params: dict) -> tuple[int, int] | None:
    """(fewest, most) events per step a pass's neurons may send, or None for a pass without neurons."""
    from snnconvert.passes.spikify import level_doublings

    if "max_spikes_per_step" not in defs:
        return None
    get = lambda k: params.get(k, defs[k].default)  # noqa: E731
    m = int(get("max_spikes_per_step"))
    if "tolerance" not in defs:
        return m, m
    return m, m << level_doublings(int(get("levels")), int(get("max_levels")), float(get("tolerance")))


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
        # the events a neuron of the recipe sends in one step (1: binary spikes): the recipe's, up to
        # 2^k times it where spike_all's tolerance may double a tensor's L k times (calibration says)
        levels = [_events_per_step(PASSES[p].params, params) for p, params in r.passes]
        levels = [x for x in levels if x is not None]
        recipes[name] = {
            "coding": r.coding,
            "levels_per_event": max((hi for _, hi in levels), default=1),
            "levels_per_event_min": max((lo for lo, _ in levels), default=1),
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
