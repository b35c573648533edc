"""Spiking attention: SSA's reassociation Q K^T V -> Q (K^T V) against numpy, and the simulator's
products of two spike streams (Hadamard Mul, the MatMul chain) against their closed forms.

Closed forms (independent of the simulator): an IF neuron fed a constant x >= 0 with membrane
starting at theta/2 and at most one spike per step has, after t steps,
- count coding (the input arrives at step 1): min(t, clip(round(x/theta), 0, L)) spikes;
- rate coding (the input arrives every step): floor(t*x/theta + 1/2) spikes (0 <= x <= theta),
so its running value is A_t = theta*count (count) or theta*count/t (rate). A product of two spike
trains must decode to the product of the running values, A_t * B_t, at every step: that is the
running-sum product of methods.md, whose increments are a(t)B(t-1) + A(t-1)b(t) + a(t)b(t).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import calibration_of, converted

from snnconvert.ir.build import GraphBuilder
from snnconvert.ir.execute import run_graph
from snnconvert.passes import PassContext, run_pass
from snnconvert.passes.spike_attention import chain_macs
from snnconvert.sim.simulator import Simulator

RTOL, ATOL = 1e-5, 1e-6  # float32 sums of 8-16 terms of O(1): rounding only


def chain_graph(h: int, n: int, d: int, e: int, scale_between: bool = False):
    """(Q K^T) V * s with Q [h, N, d], K [h, N, d], V [h, N, e]; the scale after the chain (as the
    zoo's SSA exports it) or between the two products."""
    b = GraphBuilder()
    q, k, v = b.input("q", (h, n, d)), b.input("k", (h, n, d)), b.input("v", (h, n, e))
    kt = b.node("Transpose", [k], {"perm": [0, 2, 1]}, name="kt")
    s = b.const("s", np.float32(0.125))
    scores = b.node("MatMul", [q, kt], name="scores")
    if scale_between:
        scores = b.node("Mul", [scores, s], name="scaled")
        out = b.node("MatMul", [scores, v], name="attn")
    else:
        out = b.node("Mul", [b.node("MatMul", [scores, v], name="attn"), s], name="out")
    return b.output(out)


def feeds(g, seed=0, batch=5):
    rng = np.random.default_rng(seed)
    return {i: rng.random((batch, *g.values[i].shape), dtype=np.float32) for i in g.inputs}


def reassociate(g):
    ctx = PassContext()
    return run_pass("reassociate_attention", g, {}, ctx), ctx.notes


@pytest.mark.parametrize("scale_between", [False, True])
def test_reassociation_equals_the_chain_in_numpy_when_n_exceeds_d(scale_between):
    g = chain_graph(h=3, n=16, d=8, e=8, scale_between=scale_between)
    r, notes = reassociate(g)
    mm = [n for n in r.nodes if n.op == "MatMul"]
    # the inner product is now K^T V (its operands: the transposed keys and the values)
    assert len(mm) == 2 and mm[0].inputs == ["kt", "v"] and mm[1].inputs[0] == "q", [n.inputs for n in mm]
    assert "A [16, 8], B [8, 16], C [16, 8], 4096 -> 2048 products" in notes[0]
    f = feeds(g)
    q, k, v = (f[i].astype(np.float64) for i in ("q", "k", "v"))
    want = q @ (k.transpose(0, 1, 3, 2) @ v) * 0.125  # numpy, float64
    got = run_graph(r, f)[r.outputs[0]].numpy()
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got, run_graph(g, f)[g.outputs[0]].numpy(), rtol=RTOL, atol=ATOL)
    assert r.outputs == g.outputs and r.values[r.outputs[0]].shape == (3, 16, 8)


@pytest.mark.parametrize("n, d", [(8, 8), (4, 8)])
def test_reassociation_left_alone_when_n_is_not_above_d(n, d):
    g = chain_graph(h=2, n=n, d=d, e=d)
    r, notes = reassociate(g)
    assert [x.inputs for x in r.nodes] == [x.inputs for x in g.nodes]
    assert "kept as (A B) C" in notes[0]


def test_chain_products_fall_by_n_over_d():
    before, after = chain_macs(16, 8, 16, 8)
    assert (before, after) == (2 * 16 * 16 * 8, 2 * 16 * 8 * 8)


def test_reassociation_leaves_a_shared_inner_product():
    """The scores feed a second consumer too: rewriting would compute them twice, so it is kept."""
    b = GraphBuilder()
    q, k, v = b.input("q", (16, 4)), b.input("k", (4, 16)), b.input("v", (16, 4))
    scores = b.node("MatMul", [q, k], name="scores")
    out = b.node("MatMul", [scores, v], name="attn")
    g = b.output(out, b.node("Relu", [scores], name="side"))
    r, _ = reassociate(g)
    assert [x.inputs for x in r.nodes] == [x.inputs for x in g.nodes]


# -- products of spike streams ------------------------------------------------------------------------
def spiking_product_graph(kind: str):
    """Two or three ReLUs (-> IF neurons) and their product: Hadamard a*b, or the chain q (k^T v)."""
    b = GraphBuilder()
    if kind == "hadamard":
        a, c = b.input("a", (4, 6)), b.input("b", (1, 6))  # broadcast over tokens, as SDSA's Q * mask
        out = b.node("Mul", [b.node("Relu", [a], name="ra"), b.node("Relu", [c], name="rb")], name="prod")
    else:
        q, k, v = b.input("q", (16, 4)), b.input("k", (4, 16)), b.input("v", (16, 4))
        kv = b.node("MatMul", [b.node("Relu", [k], name="rk"), b.node("Relu", [v], name="rv")], name="kv")
        out = b.node("MatMul", [b.node("Relu", [q], name="rq"), kv], name="prod")
    return b.output(out)


def closed_form_running(x: np.ndarray, theta: float, T: int, coding: str, L: int) -> np.ndarray:
    """[T, ...]: an IF neuron's running value for a constant input x >= 0 (see the module doc)."""
    t = np.arange(1, T + 1).reshape((-1,) + (1,) * x.ndim)
    if coding == "count":
        return theta * np.minimum(t, np.clip(np.floor(x / theta + 0.5), 0, L))
    return theta * np.floor(t * np.minimum(x, theta) / theta + 0.5) / t


@pytest.mark.parametrize("coding", ["count", "rate"])
@pytest.mark.parametrize("kind", ["hadamard", "chain"])
def test_products_of_spike_streams_decode_to_the_product_of_running_values(kind, coding):
    g = spiking_product_graph(kind)
    rng = np.random.default_rng(1)
    f = {i: rng.random((3, *g.values[i].shape), dtype=np.float32) for i in g.inputs}
    cal = calibration_of(g, f)
    L = 8
    relu = {"v0": 0.5, "levels": L} if coding == "count" else {"v0": 0.5}
    snn, _ = converted(g, cal, [("normalize", {"percentile": 100.0}), ("relu_to_if", relu)], coding)
    assert snn.values["prod"].domain == "analog"  # a product of spikes is a running-sum product
    T = 20
    sim = Simulator(snn)
    dec, _ = sim.decode(sim.run_chunk(f, 0, T, {})["prod"], 0, T, None)
    # the neurons' own running values, from the closed form, then the product in numpy
    run = {}
    for n in snn.nodes:
        if n.op == "IF":
            theta = float(snn.initializers[n.inputs[1]])
            run[n.inputs[0]] = closed_form_running(f[n.inputs[0]].astype(np.float64), theta, T, coding, L)
    if kind == "hadamard":
        want = run["a"] * run["b"]
    else:
        want = run["q"] @ (run["k"] @ run["v"])
    np.testing.assert_allclose(dec.numpy(), want, rtol=1e-4, atol=1e-5)


def test_spike_products_puts_a_neuron_after_a_product_of_spikes_only():
    """SDSA's Q * mask: a product of two spike trains gets a neuron (its output spikes); a product
    of a spike train with an analog value does not."""
    b = GraphBuilder()
    a, c, x = b.input("a", (4, 6)), b.input("b", (1, 6)), b.input("x", (4, 6))
    ra, rb = b.node("Relu", [a], name="ra"), b.node("Relu", [c], name="rb")
    prod = b.node("Mul", [ra, rb], name="prod")
    mixed = b.node("Mul", [ra, x], name="mixed")
    g = b.output(b.node("Add", [prod, mixed], name="out"))
    f = feeds(g, batch=64)
    cal = calibration_of(g, f)
    passes = [
        ("normalize", {"percentile": 99.9}),
        ("relu_to_if", {"v0": 0.5, "levels": 16}),
        ("spike_products", {"percentile": 99.9, "levels": 16}),
    ]
    snn, notes = converted(g, cal, passes, "count")
    assert snn.values["prod"].domain == "spike" and snn.values["mixed"].domain == "analog"
    assert snn.producer("prod").op == "IF"
    assert any("1 product(s)" in s for s in notes)
    # settled, the neuron quantises the product to 16 levels of its 99.9th percentile
    theta = float(snn.initializers[snn.producer("prod").inputs[1]])
    prod_ann = (np.maximum(f["a"], 0) * np.maximum(f["b"], 0)).astype(np.float64)
    lam = np.percentile(prod_ann, 99.9)
    assert theta == pytest.approx(lam / 16, rel=0.02)  # the calibration sketch is ~0.5 % accurate
    sim = Simulator(snn)
    dec, _ = sim.decode(sim.run_chunk(f, 0, 40, {}, keep={"prod"})["prod"], 0, 40, None)
    settled = {}
    for v, i in (("ra", "a"), ("rb", "b")):
        th = float(snn.initializers[snn.producer(v).inputs[1]])
        settled[i] = th * np.clip(np.floor(f[i] / th + 0.5), 0, 16)
    want = theta * np.clip(np.floor(settled["a"] * settled["b"] / theta + 0.5), 0, 16)
    np.testing.assert_allclose(dec[-1].numpy(), want, rtol=1e-4, atol=1e-5)
