"""Count coding is event-driven in its neurons too (issue M item 5): a settled neuron that receives
nothing and sends nothing does no work that step, the simulator records the updates that ran, and
the energy count charges exactly those (rate coding's neurons integrate a current every step)."""

from __future__ import annotations

import numpy as np
import torch

from snnconvert.energy.count import count_nodes
from snnconvert.ir.build import GraphBuilder
from snnconvert.ir.registry import EVALUATIONS, internal_key
from snnconvert.passes.spikify import assign_domains
from snnconvert.sim.simulator import Simulator

T = 8


def _neuron(coding: str):
    b = GraphBuilder()
    x = b.input("x", (4,))
    attrs = {"lo": -16.0, "hi": 16.0, "v0": 0.5, "max_spikes_per_step": 4, "coding": coding}
    s = b.node("IF", [x, b.const("th", np.float32(1.0))], attrs, name="s")
    g = b.output(s)
    g.meta["coding"] = coding
    assign_domains(g, coding)
    return g


def test_a_settled_neuron_costs_nothing():
    g = _neuron("count")
    # theta 1, v0 1/2, the input whole at step 1, at most 4 events a step. By hand:
    # 0 -> never runs; 0.4 -> v = 0.9 at step 1, no event, then nothing: 1 update;
    # 2.6 -> 3 events at step 1, then v = 0.1 and nothing: 1; 9.7 -> 4, 4, 2 events: 3 updates
    x = np.array([[0.0, 0.4, 2.6, 9.7]] * 3, np.float32)
    rec: dict[str, torch.Tensor] = {}
    Simulator(g).run_chunk({"x": x}, 0, T, {}, record=rec)
    runs = rec[internal_key("s", EVALUATIONS)] / 3  # per sample
    assert runs.tolist() == [0.0, 1.0, 1.0, 3.0]
    assert rec["s"].tolist() == [0.0, 0.0, 9.0, 30.0]  # the events themselves: 3 and 4 + 4 + 2, x 3 samples
    events = {k: (v / 3).numpy() for k, v in rec.items()}
    (row,) = [r for r in count_nodes(g, events, {}, T) if r.name == "s"]
    assert row.other == {"add": 5.0, "cmp": 5.0}  # IF: an add and a compare per update


def test_rate_coded_neurons_update_every_step():
    g = _neuron("rate")
    rec: dict[str, torch.Tensor] = {}
    Simulator(g).run_chunk({"x": np.ones((2, 4), np.float32)}, 0, T, {}, record=rec)
    assert internal_key("s", EVALUATIONS) not in rec
    (row,) = [r for r in count_nodes(g, {"s": (rec["s"] / 2).numpy()}, {}, T) if r.name == "s"]
    assert row.other == {"add": 4.0 * T, "cmp": 4.0 * T}
