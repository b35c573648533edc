"""Count coding is event-driven in a Linear: only the rows that received events are computed. What
the layer emits must still be, at every step, the events times the weights, plus the bias once at
step 1 (the closed form of a count-coded affine layer), for chunks with and without step 1."""

from __future__ import annotations

import numpy as np
import torch
from helpers import converted, mlp_graph, random_calibration

from snnconvert.sim.simulator import Sig, Simulator

T = 12


def test_linear_on_few_events_is_the_closed_form(monkeypatch):
    g = mlp_graph((6, 16, 16, 4))
    cal, x = random_calibration(g, n=64)
    snn, _ = converted(g, cal, [("spike_all", {"levels": 4})], "count")
    fc = next(n for n in snn.nodes if n.name == "fc2")  # fed by the neurons after fc1's ReLU
    w, b = (snn.initializers[i] for i in fc.inputs[1:])
    sparse = []
    orig = Simulator._event_rows
    monkeypatch.setattr(
        Simulator, "_event_rows", lambda self, *a: sparse.append(orig(self, *a)) or sparse[-1]
    )
    sim = Simulator(snn)
    seen: dict = {}
    state: dict = {}
    for t0, tc in ((0, 4), (4, 8)):  # a chunk with step 1, then one without
        sim.run_chunk({"x": x[:32]}, t0, tc, state, observe=lambda k, s: seen.__setitem__(k, s))
        events = seen[fc.inputs[0]].data.numpy().astype(np.float64)  # [tc, B, 16]: events x theta
        got = seen[fc.outputs[0]].data.numpy()
        want = events @ w.astype(np.float64)
        if t0 == 0:
            want[0] += b  # the constant term once, at step 1
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert any(r is not None for r in sparse), "the settled chunk must take the event-driven path"


def test_a_row_without_events_at_step_one_still_gets_the_bias():
    g = mlp_graph((5, 3))  # one Linear
    g.meta["coding"] = "count"
    sim = Simulator(g)
    fc = g.nodes[0]
    rng = np.random.default_rng(0)
    ev = np.zeros((4, 10, 5), np.float32)  # [steps, samples, features], a fifth of the rows with events
    hit = rng.random((4, 10)) < 0.2
    ev[hit] = rng.integers(-2, 3, size=(int(hit.sum()), 5))
    ins = [Sig(torch.from_numpy(ev), False)] + [Sig(sim.consts[i], True) for i in fc.inputs[1:]]
    steps = torch.arange(1, 5, dtype=torch.float32)
    assert sim._rows_apart(fc, ins, frozenset({0}))
    assert (
        sim._event_rows(fc, ins, [torch.from_numpy(ev).reshape(40, 5), *[s.data for s in ins[1:]]], 4, steps)
        is not None
    )
    (out,) = sim._affine(fc, ins, frozenset({0}), 4, steps)
    w, b = (g.initializers[i].astype(np.float64) for i in fc.inputs[1:])
    want = ev.astype(np.float64) @ w
    want[0] += b
    np.testing.assert_allclose(out.data.numpy(), want, rtol=1e-5, atol=1e-6)


def test_a_chunk_that_settles_runs_its_busy_steps_whole_and_then_only_live_rows(monkeypatch):
    """Steps 1-3 with every row live, then a few rows a step (a network settling within one chunk):
    the output is still the closed form, and the op saw the busy steps' rows and the live rows of
    the others, no more."""
    g = mlp_graph((5, 3))
    g.meta["coding"] = "count"
    sim = Simulator(g)
    fc = g.nodes[0]
    rng = np.random.default_rng(1)
    T, B = 10, 20
    ev = rng.integers(-2, 3, size=(T, B, 5)).astype(np.float32)
    ev[:3][(ev[:3] != 0).any(-1) == 0] = 1.0  # every row of steps 1-3 live
    quiet = rng.random((T - 3, B)) >= 0.15
    ev[3:][quiet] = 0.0
    seen_rows = []
    orig = Simulator._run
    monkeypatch.setattr(
        Simulator, "_run", lambda self, n, a: seen_rows.append(a[0].shape[0]) or orig(self, n, a)
    )
    ins = [Sig(torch.from_numpy(ev), False)] + [Sig(sim.consts[i], True) for i in fc.inputs[1:]]
    (out,) = sim._affine(fc, ins, frozenset({0}), T, torch.arange(1, T + 1, dtype=torch.float32))
    w, b = (g.initializers[i].astype(np.float64) for i in fc.inputs[1:])
    want = ev.astype(np.float64) @ w
    want[0] += b
    np.testing.assert_allclose(out.data.numpy(), want, rtol=1e-5, atol=1e-6)
    live_later = int((ev[3:] != 0).any(-1).sum())
    assert 3 * B in seen_rows and live_later in seen_rows and T * B not in seen_rows


def test_a_conv_on_events_adds_its_bias_at_step_one_alone():
    """A count-coded Conv (bias over its channel axis, 1) on a stream of events, two chunks: the
    events convolved (numpy, written out), plus the bias once at step 1, at every step."""
    from snnconvert.ir.build import GraphBuilder

    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.input("x", (2, 5, 5))
    w = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    bias = rng.normal(size=3).astype(np.float32)
    y = b.node(
        "Conv", [x, b.const("w", w), b.const("b", bias)],
        {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1]}, name="c",
    )  # fmt: skip
    g = b.output(y)
    g.meta["coding"] = "count"
    sim = Simulator(g)
    conv = g.nodes[0]
    T, B = 6, 4
    ev = rng.integers(-2, 3, size=(T, B, 2, 5, 5)).astype(np.float32)
    ev[3:] *= rng.random((T - 3, B, 2, 5, 5)) < 0.1  # settling
    padded = np.pad(ev.astype(np.float64), ((0, 0), (0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.zeros((T, B, 3, 5, 5))
    for i in range(5):
        for j in range(5):
            want[..., i, j] = np.einsum("tbckl,ockl->tbo", padded[..., i : i + 3, j : j + 3], w)
    want[0] += bias[:, None, None]
    for t0, tc in ((0, 2), (2, 4)):
        ins = [Sig(torch.from_numpy(ev[t0 : t0 + tc]), False)] + [
            Sig(sim.consts[i], True) for i in conv.inputs[1:]
        ]
        steps = torch.arange(t0 + 1, t0 + tc + 1, dtype=torch.float32)
        (out,) = sim._affine(conv, ins, frozenset({0}), tc, steps)
        np.testing.assert_allclose(out.data.numpy(), want[t0 : t0 + tc], rtol=1e-5, atol=1e-5)
