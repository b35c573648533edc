"""Count coding's analog work is event-driven per row (issue M item 5): a LayerNorm on running
totals is charged, per row, for the steps at which its input row received events (step 1 always),
and the output is what the dense evaluation gives. Reference by hand: an IF neuron with one event
per step and threshold 1 fed a constant k sends exactly one event at each of steps 1..k."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnconvert.energy.count import count_nodes
from snnconvert.ir.build import GraphBuilder
from snnconvert.ir.execute import run_graph
from snnconvert.ir.registry import EVALUATIONS, internal_key
from snnconvert.passes.spikify import assign_domains
from snnconvert.sim.simulator import Simulator

T, N, D, L = 12, 4, 3, 16


def _graph():
    b = GraphBuilder()
    x = b.input("x", (N, D))
    count = {"coding": "count", "lo": 0.0, "hi": float(L), "v0": 0.5, "max_spikes_per_step": 1}
    s = b.node("IF", [x, b.const("th", np.float32(1.0))], name="s", attrs=count)
    ln = b.node(
        "LayerNorm",
        [s, b.const("g", np.ones(D, np.float32)), b.const("b", np.zeros(D, np.float32))],
        name="ln",
    )
    signed = {**count, "lo": -float(L), "max_spikes_per_step": L}
    out = b.node("IF", [ln, b.const("th2", np.float32(0.05))], name="o", attrs=signed)
    g = b.output(out)
    g.meta["coding"] = "count"
    assign_domains(g, "count")
    return g


# row r of sample 0 needs k steps: its elements are integers (v0 = 1/2 rounds them exactly)
K = np.array([[1, 1, 1], [3, 2, 0], [7, 7, 5], [20, 1, 1]], np.float32)


def _run(g, x, chunk):
    sim, state, rec = Simulator(g), {}, {}
    for t0 in range(0, T, chunk):
        sim.run_chunk({"x": torch.from_numpy(x)}, t0, min(chunk, T - t0), state, record=rec)
    return rec


@pytest.mark.parametrize("chunk", [T, 5, 1])
def test_a_row_is_evaluated_only_at_steps_with_input_events(chunk):
    g = _graph()
    x = np.stack([K, K[::-1] + 1])  # two samples
    rec = _run(g, x, chunk)
    runs = rec[internal_key(g.node("ln").outputs[0], EVALUATIONS)].numpy()  # [N], summed over samples
    # by hand: row r is evaluated at step 1 and at each step one of its neurons fires (steps 1..k)
    want = sum(np.clip(xs.max(1), 1, T) for xs in x)
    np.testing.assert_array_equal(runs, want)


def test_the_energy_count_charges_those_evaluations_and_the_output_is_the_dense_ones():
    g = _graph()
    x = K[None]
    rec = _run(g, x, T)
    events = {k: v.numpy() for k, v in rec.items()}  # one sample: per-sample records as simulate writes
    row = next(r for r in count_nodes(g, events, {}, T) if r.op == "LayerNorm")
    steps = float(np.clip(K.max(1), 1, T).mean())  # mean over rows of the steps each was evaluated
    for kind, ann in row.ann_other.items():
        assert row.other[kind] == pytest.approx(ann * steps), kind
    assert steps < T  # settled rows cost nothing: less than T dense evaluations
    # settled: the SNN's output is the converted graph run as an ANN (where LayerNorm ran densely)
    sim = Simulator(g)
    dec, _ = sim.decode(sim.run_chunk({"x": torch.from_numpy(x)}, 0, 2 * L, {})["o"], 0, 2 * L, None)
    ref = run_graph(g, {"x": x})["o"]
    np.testing.assert_allclose(dec[-1].numpy(), ref.numpy(), atol=1e-5)
