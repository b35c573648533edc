"""simulate's per-layer fidelity over the entries that reach the output: on a masked mean over
tokens (a sentence encoder's pooling), `cosine_reaching` / `rel_error_reaching` are the cosine and
relative error over the unmasked tokens' rows alone, recomputed here in numpy from the simulator's
decoded values and the ANN's; `reaching_share` is the unmasked share; `cosine` keeps every entry."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from helpers import calibration_of, converted

from snnconvert.data.files import Dataset
from snnconvert.ir.build import GraphBuilder
from snnconvert.ir.execute import Executor
from snnconvert.sim.run import result_json, simulate
from snnconvert.sim.simulator import Simulator

TOKENS, D, H, N, T = 6, 4, 8, 24, 12


def _encoder():
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input("x", (TOKENS, D))
    m = b.input("m", (TOKENS,))
    h = b.node("Linear", [x, b.const("w1", rng.normal(size=(D, H)).astype(np.float32)),
                          b.const("b1", rng.normal(size=H).astype(np.float32))], name="fc1")  # fmt: skip
    h = b.node("Relu", [h], name="relu")
    h = b.node("Linear", [h, b.const("w2", rng.normal(size=(H, H)).astype(np.float32)),
                          b.const("b2", rng.normal(size=H).astype(np.float32))], name="fc2")  # fmt: skip
    mm = b.node("Unsqueeze", [m], {"axes": [-1]}, name="unsq")
    y = b.node("ReduceSum", [b.node("Mul", [h, mm], name="mul")], {"axes": [0], "keepdims": 0}, name="pool")
    return b.output(y)


def test_per_layer_fidelity_over_the_unmasked_tokens():
    g = _encoder()
    rng = np.random.default_rng(1)
    m = (rng.random((N, TOKENS)) < 0.5).astype(np.float32)
    m[:, 0] = 1.0
    x = rng.normal(size=(N, TOKENS, D)).astype(np.float32)
    x[m == 0] *= 6.0  # padded tokens far outside the calibrated range: large errors there
    feeds = {"x": x, "m": m}
    cal = calibration_of(g, {"x": x * (m[..., None] != 0), "m": m})
    snn, _ = converted(
        copy.deepcopy(g), cal, [("spike_all", {"levels": 8, "max_spikes_per_step": 2})], "count"
    )
    res = simulate(snn, g, Dataset(feeds, None, "mem"), T, batch_size=10)
    layers = {r["name"]: r for r in result_json(res, snn)["layers"]}
    # the reference: decoded SNN values at T and the ANN's, over the unmasked rows, in numpy
    sim = Simulator(snn)
    outs = sim.run_chunk(feeds, 0, T, {}, keep={"fc2", "relu"})
    ann = Executor(g).run(feeds, keep={"fc2", "relu"})
    keep = m != 0
    for name in ("fc2", "relu"):
        s = sim.decode(outs[name], 0, T, None)[0][-1].numpy().astype(np.float64)
        a = ann[name].numpy().astype(np.float64)
        cos = lambda u, v: float((u * v).sum() / np.sqrt((u * u).sum() * (v * v).sum()))  # noqa: E731
        rel = lambda u, v: float(np.linalg.norm(u - v) / np.linalg.norm(v))  # noqa: E731
        r = layers[name]
        assert r["reaching_share"] == pytest.approx(keep.mean())
        assert r["cosine_reaching"] == pytest.approx(cos(s[keep], a[keep]), abs=1e-6)
        assert r["rel_error_reaching"] == pytest.approx(rel(s[keep], a[keep]), rel=1e-5)
        assert r["cosine"] == pytest.approx(cos(s, a), abs=1e-6)
    assert (
        layers["fc2"]["rel_error"] > 2 * layers["fc2"]["rel_error_reaching"]
    )  # the padding's error, left out


def test_where_autograd_cannot_take_the_model_the_reaching_figures_are_null(monkeypatch):
    import torch

    g = _encoder()
    rng = np.random.default_rng(2)
    feeds = {"x": rng.normal(size=(8, TOKENS, D)).astype(np.float32), "m": np.ones((8, TOKENS), np.float32)}
    snn, _ = converted(copy.deepcopy(g), calibration_of(g, feeds), [("spike_all", {"levels": 8})], "count")

    def no_derivative(*a, **k):
        raise RuntimeError("derivative for this op is not implemented")

    monkeypatch.setattr(torch.autograd, "grad", no_derivative)
    j = result_json(simulate(snn, g, Dataset(feeds, None, "mem"), 4, batch_size=4), snn)
    assert j["execution"]["reaching_measured"] is False
    assert all(r["cosine_reaching"] is None for r in j["layers"]) and all(
        r["cosine"] is not None for r in j["layers"]
    )
