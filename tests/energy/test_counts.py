"""Op counts on hand-built graphs whose answers are known by hand."""

from __future__ import annotations

import numpy as np

from snnconvert.energy.count import count_nodes
from snnconvert.ir.build import GraphBuilder
from snnconvert.passes.spikify import assign_domains


def spiking(b, x, name):
    return b.node("IF", [x, b.const(name + "_th", np.float32(1.0))], name=name)


def finish(b, out):
    g = b.output(out)
    g.meta["coding"] = "rate"
    assign_domains(g, "rate")
    return g


def by_name(rows):
    return {r.name: r for r in rows}


def test_linear_on_known_spikes():
    b = GraphBuilder()
    x = b.input("x", (4,))
    s = spiking(b, x, "s")
    w = np.array([[1, 0, 2], [0, 0, 0], [3, 4, 5], [1, 1, 0]], np.float32)  # fan-outs 2, 0, 3, 2
    y = b.node("Linear", [s, b.const("w", w), b.const("b", np.ones(3, np.float32))], name="fc")
    g = finish(b, y)
    events = {"s": np.array([2.0, 7.0, 1.0, 3.0])}  # per sample, over all steps
    rows = by_name(count_nodes(g, events, {"x": True}, timesteps=10))
    assert rows["fc"].snn_acs == 2 * 2 + 7 * 0 + 1 * 3 + 3 * 2
    assert rows["fc"].snn_macs == 0
    assert rows["fc"].ann_macs == 12
    assert rows["fc"].events_in == 13


def test_conv_fanout_counts_borders():
    """3x3 conv, pad 1, on a 4x4 map: an event at a corner reaches 4 outputs, at an edge 6, inside 9
    (per output channel)."""
    b = GraphBuilder()
    x = b.input("x", (1, 1, 4, 4), batch_axis=0)
    s = spiking(b, x, "s")
    w = np.ones((2, 1, 3, 3), np.float32)
    y = b.node(
        "Conv", [s, b.const("w", w)], {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1]}, name="c"
    )
    g = finish(b, y)
    ev = np.zeros((1, 1, 4, 4))  # per sample: the batch-of-one axis stays
    ev[0, 0, 0, 0] = 1  # corner
    ev[0, 0, 0, 2] = 2  # edge
    ev[0, 0, 1, 1] = 3  # inside
    rows = by_name(count_nodes(g, {"s": ev}, {}, timesteps=4))
    assert rows["c"].snn_acs == 2 * (1 * 4 + 2 * 6 + 3 * 9)
    assert rows["c"].ann_macs == 2 * 16 * 9


def test_attention_block_counts():
    """Q, K spike tensors: QK^T costs events_Q * N_keys + events_K * N_queries; softmax stays
    analog (MACs 0, its exps counted per execution); attn @ V with analog attn costs MACs x T."""
    b = GraphBuilder()
    q = spiking(b, b.input("q", (3, 4)), "sq")
    k = spiking(b, b.input("k", (4, 5)), "sk")
    v = b.input("v", (5, 2))
    scores = b.node("MatMul", [q, k], name="scores")
    attn = b.node("Softmax", [scores], {"axis": -1}, name="attn")
    out = b.node("MatMul", [attn, v], name="av")
    g = finish(b, out)
    events = {"sq": np.full((3, 4), 2.0), "sk": np.full((4, 5), 1.0)}
    T = 8
    rows = by_name(count_nodes(g, events, {"v": True}, timesteps=T))
    assert rows["scores"].snn_acs == 24 * 5 + 20 * 3
    assert rows["scores"].snn_macs == 0
    assert rows["attn"].snn_macs == 0 and rows["attn"].other["exp"] == 15 * T
    assert rows["av"].ann_macs == 3 * 2 * 5
    assert rows["av"].snn_macs == 3 * 2 * 5 * T
    assert rows["av"].snn_acs == 0


def test_static_analog_layer_runs_once():
    b = GraphBuilder()
    x = b.input("x", (4,))
    y = b.node("Linear", [x, b.const("w", np.ones((4, 3), np.float32))], name="enc")
    s = spiking(b, y, "s")
    g = finish(b, s)
    rows = by_name(count_nodes(g, {"s": np.ones(3)}, {"enc": True}, timesteps=50))
    assert rows["enc"].snn_macs == 12 and rows["enc"].executions == 1
    rows = by_name(count_nodes(g, {"s": np.ones(3)}, {"enc": False}, timesteps=50))
    assert rows["enc"].snn_macs == 12 * 50


def test_einsum_counts_as_the_layer_and_the_product_it_is():
    """A constant operand is a weight in any position; two spike operands cost like MatMul."""
    b = GraphBuilder()
    s = spiking(b, b.input("x", (4,)), "s")
    w = np.array([[1, 0, 2, 1], [0, 0, 3, 1], [1, 0, 4, 0]], np.float32)  # fan-outs of s: 2, 0, 3, 2
    y = b.node("Einsum", [b.const("w", w), s], {"equation": "ij,j->i"}, name="layer")
    q = spiking(b, b.input("q", (3, 4)), "sq")
    k = spiking(b, b.input("k", (4, 5)), "sk")
    scores = b.node("Einsum", [q, k], {"equation": "mk,kn->mn"}, name="scores")
    g = b.output(y, scores)
    g.meta["coding"] = "rate"
    assign_domains(g, "rate")
    events = {"s": np.array([2.0, 7.0, 1.0, 3.0]), "sq": np.full((3, 4), 2.0), "sk": np.full((4, 5), 1.0)}
    rows = by_name(count_nodes(g, events, {"x": True}, timesteps=10))
    assert rows["layer"].snn_acs == 2 * 2 + 7 * 0 + 1 * 3 + 3 * 2
    assert rows["scores"].snn_acs == 24 * 5 + 20 * 3  # as MatMul in test_attention_block_counts
    assert rows["scores"].snn_macs == 0


def test_energy_reads_the_records_the_simulator_writes():
    """The key of an op's inside events is one contract (ir.registry) for simulate and energy-report."""
    from snnconvert.ir.registry import internal_records
    from snnconvert.sim.simulator import internal_key

    records = {internal_key("p", "siexp"): 3.0, internal_key("p", "evaluations"): 1.0, "p": 2.0}
    assert internal_records(records, "p") == {"siexp": 3.0, "evaluations": 1.0}


def test_product_of_two_spike_trains_costs_an_accumulate_per_event_and_output_reached():
    """SDSA's K * V: each event of one operand adds the other's running value to every output it
    reaches (a [4] operand broadcast over 3 rows reaches 3 outputs per event)."""
    b = GraphBuilder()
    x = b.input("x", (3, 4))
    a = spiking(b, x, "a")  # [3, 4]
    r = spiking(b, b.node("ReduceMean", [x], {"axes": [0], "keepdims": 0}, name="row"), "r")  # [4]
    y = b.node("Mul", [a, r], name="prod")
    g = finish(b, y)
    ev_a = np.arange(12, dtype=np.float64).reshape(3, 4)  # per sample, over all steps
    ev_r = np.array([1.0, 0.0, 2.0, 5.0])
    rows = by_name(count_nodes(g, {"a": ev_a, "r": ev_r}, {"x": True}, timesteps=10))
    assert rows["prod"].snn_acs == ev_a.sum() + 3 * ev_r.sum()
    assert rows["prod"].snn_macs == 0 and rows["prod"].other == {}
