"""Fully spiking conversion of values a neuron must not carry, and of long softmax rows.

- RMSNorm as exports write it (x * 1/sqrt(mean(x^2) + eps)): a neuron's count is zero until it
  first fires, so a neuron on the sqrt made 1/0 = inf (Llama, count coding). The sqrt stays analog,
  non-negative values get unsigned neurons, and the simulated SNN settles on its quantised limit,
  near numpy's RMSNorm.
- SI-norm quantises a softmax row to 1/n_spike: 64 spikes cannot hold a near-uniform row of 197
  keys (ViT-Base); min_spikes_per_key raises n_spike with the row length. Reference: numpy softmax.
"""

from __future__ import annotations

import numpy as np
import torch
from helpers import calibration_of, converted

from snnconvert.energy.count import count_nodes
from snnconvert.ir.build import GraphBuilder
from snnconvert.ir.execute import run_graph
from snnconvert.passes import PassContext, run_pass
from snnconvert.sim.simulator import Simulator

D = 16


def rmsnorm_graph():
    b = GraphBuilder()
    x = b.input("x", (D,))
    sq = b.node("Pow", [x, b.const("two", np.float32(2))], name="pow")
    ms = b.node("ReduceMean", [sq], {"axes": [-1], "keepdims": 1}, name="mean")
    var = b.node("Add", [ms, b.const("eps", np.float32(1e-6))], name="var")
    rt = b.node("Sqrt", [var], name="sqrt")
    inv = b.node("Div", [b.const("one", np.float32(1)), rt], name="inv")
    y = b.node("Mul", [x, inv], name="normed")
    w = b.const("w", np.random.default_rng(1).normal(size=(D, 4)).astype(np.float32))
    out = b.node("MatMul", [y, w], name="head")
    return b.output(out)


def test_rmsnorm_fully_spiking_stays_finite_and_near_numpy():
    g = rmsnorm_graph()
    x = np.random.default_rng(0).normal(size=(64, D)).astype(np.float32)
    s, _ = converted(g, calibration_of(g, {"x": x}, 32), [("spike_all", {"levels": 16})], "count")
    neuron_in = {n.inputs[0]: n for n in s.nodes if n.op == "IF"}
    assert "sqrt" not in {n.outputs[0] for n in s.nodes if n.op == "IF"}  # the divisor stays analog
    assert "sqrt_pre" not in neuron_in and "sqrt" in s.values
    assert neuron_in["pow_pre"].attrs["lo"] == 0.0  # x^2 >= 0: an unsigned neuron
    assert neuron_in["normed_pre"].attrs["lo"] < 0  # signed data keeps a signed neuron
    T = 48
    xs = torch.from_numpy(x)
    sim = Simulator(s)
    record: dict[str, torch.Tensor] = {}
    dec, _ = sim.decode(sim.run_chunk({"x": xs}, 0, T, {}, record=record)[s.outputs[0]], 0, T, None)
    assert torch.isfinite(dec).all()
    limit = run_graph(s, {"x": xs})[s.outputs[0]]
    assert torch.allclose(dec[-1], limit, atol=1e-4 * float(limit.abs().max())), float(
        (dec[-1] - limit).abs().max()
    )
    xd = x.astype(np.float64)
    ref = xd / np.sqrt((xd**2).mean(-1, keepdims=True) + 1e-6) @ g.initializers["w"]
    cos = float((limit.numpy() * ref).sum() / np.linalg.norm(limit.numpy()) / np.linalg.norm(ref))
    assert cos > 0.99, cos  # 16 levels per neuron against float64 RMSNorm
    # the energy count runs on it (a divisor that is analog, events through the unsigned neuron)
    ev = {k: v.numpy() / 64 for k, v in record.items()}
    rows = count_nodes(s, ev, {}, T)
    assert {r.op for r in rows} >= {"IF", "Sqrt", "Div", "MatMul"}


def softmax_graph(keys: int):
    b = GraphBuilder()
    x = b.input("x", (2, keys))
    scores = b.node(
        "Mul", [x, b.const("scale", np.float32(1.0))], name="scores"
    )  # calibration observes node outputs
    return b.output(b.node("Softmax", [scores], {"axis": -1}, name="sm"))


def test_long_rows_get_spikes_per_key():
    keys = 197
    g = softmax_graph(keys)
    x = (0.3 * np.random.default_rng(0).normal(size=(32, 2, keys))).astype(np.float32)  # near uniform
    cal = calibration_of(g, {"x": x}, 32)
    ref = np.exp(x - x.max(-1, keepdims=True))
    ref /= ref.sum(-1, keepdims=True)
    cos = {}
    for per_key in (0, 3):
        ctx = PassContext(calibration=cal, coding="rate")
        s = run_pass("softmax_to_spiking", g, {"min_spikes_per_key": per_key}, ctx)
        node = next(n for n in s.nodes if n.op == "SpikingSoftmax")
        assert node.attrs["n_spike"] == (64 if per_key == 0 else 3 * keys)
        assert (per_key > 0) == any("591 input spikes" in note for note in ctx.notes)
        y = run_graph(s, {"x": torch.from_numpy(x)})[s.outputs[0]].numpy().astype(np.float64)
        cos[per_key] = float((y * ref).sum() / np.linalg.norm(y) / np.linalg.norm(ref))
    assert cos[0] < 0.9 and cos[3] > 0.99, cos


def test_energy_count_with_a_mask_operand_beside_spikes():
    """A select between spikes and a constant under a run-time boolean mask (SDPA exports): the
    count once crashed on the mask's dtype (it stood in float zeros for it). A select accumulates
    nothing; the layer reading its analog output runs its MACs at every step."""
    b = GraphBuilder()
    x = b.input("x", (D,))
    keep = b.input("keep", (D,), dtype="bool")
    h = b.node("Relu", [x], name="relu")
    sel = b.node("Where", [keep, h, b.const("zero", np.float32(0))], name="sel")
    w = b.const("w", np.ones((D, 3), dtype=np.float32))
    g = b.output(b.node("MatMul", [sel, w], name="head"))
    xs = np.abs(np.random.default_rng(0).normal(size=(16, D))).astype(np.float32)
    ks = np.ones((16, D), dtype=bool)
    s, _ = converted(g, calibration_of(g, {"x": xs, "keep": ks}, 16), [("spike_all", {"levels": 8})], "count")
    assert s.values["relu"].domain == "spike" and s.values["sel"].domain == "analog"
    T = 8
    rows = {r.op: r for r in count_nodes(s, {"relu": np.arange(D, dtype=np.float64)}, {}, T)}
    assert rows["Where"].snn_acs == 0
    assert rows["MatMul"].snn_macs == D * 3 * T and rows["MatMul"].ann_macs == D * 3


def test_energy_count_of_spikes_divided_by_a_run_time_value():
    """Mean pooling divides a spike sum by a run-time count (sentence-transformers heads): the
    count once stood in zero for the divisor and reported inf ACs (energy-report then failed to
    write JSON). Each event through x / y reaches one output."""
    b = GraphBuilder()
    x = b.input("x", (D,))
    n = b.input("n", (1,))
    h = b.node("Relu", [x], name="relu")
    q = b.node("Div", [h, n], name="mean")
    g = b.output(b.node("MatMul", [q, b.const("w", np.ones((D, 3), dtype=np.float32))], name="head"))
    for v in ("x", "n"):
        g.values[v].domain = "analog"
    g.values["relu"].domain, g.values["mean"].domain = "spike", "analog"  # as spike_all leaves them
    ev = np.arange(D, dtype=np.float64)
    rows = {r.op: r for r in count_nodes(g, {"relu": ev}, {}, 4)}
    assert rows["Div"].snn_acs == ev.sum()  # one per event (was inf)
    assert rows["MatMul"].snn_macs == D * 3 * 4  # its input is analog: MACs at every step
