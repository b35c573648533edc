"""A masked position's value cannot reach the output of the fully spiking SNN, even when calibration
never saw a masked score (no padding in the calibration data): the mask is found from the graph
(computed from an integer or boolean input and constants), stays analog and exact, and is applied
to the running total of the scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import calibration_of, converted

from snnconvert.ir.build import GraphBuilder
from snnconvert.passes.spikify import structural_values
from snnconvert.sim.simulator import Simulator

N_TOK, D, T = 5, 8, 8


def attention(fill: float):
    """out = softmax(q k^T + where(pad, fill, 0)) v for one sample [5, 8]."""
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input("x", (N_TOK, D))
    pad = b.input("pad", (N_TOK,), dtype="bool")

    def proj(name):
        return b.node(
            "MatMul", [x, b.const(name, rng.normal(size=(D, D)).astype(np.float32) / 3)], name=name[1]
        )

    q, k, v = proj("wq"), proj("wk"), proj("wv")
    s = b.node("MatMul", [q, b.node("Transpose", [k], {"perm": [1, 0]})], name="scores")
    m = b.node("Where", [pad, b.const("fill", np.float32(fill)), b.const("zero", np.float32(0))], name="mask")
    p = b.node("Softmax", [b.node("Add", [s, m], name="masked")], {"axis": -1}, name="probs")
    return b.output(b.node("MatMul", [p, v], name="out"))


@pytest.mark.parametrize("fill", [-np.inf, np.finfo(np.float32).min])
def test_a_masked_token_cannot_reach_the_output(fill):
    g = attention(fill)
    assert structural_values(g) == {"mask"}  # from the boolean input and constants alone
    rng = np.random.default_rng(1)
    calib = {"x": rng.normal(size=(64, N_TOK, D)).astype(np.float32), "pad": np.zeros((64, N_TOK), bool)}
    cal = calibration_of(g, calib, batch_size=16)
    assert not cal.masked  # calibration never saw a masked score
    s, _ = converted(g, cal, [("spike_all", {"levels": 16, "percentile": 99.9})], "count")
    neurons_on = {n.inputs[0] for n in s.nodes if n.op == "IF"}
    assert not neurons_on & {"mask", "masked"}
    assert {"q", "k", "v", "scores"} <= {n.outputs[0].removesuffix("_pre") for n in s.nodes} and neurons_on

    x = rng.normal(size=(16, N_TOK, D)).astype(np.float32)
    pad = np.zeros((16, N_TOK), bool)
    pad[:, 3:] = True  # the last two tokens are padding
    other = x.copy()
    other[:, 3:] = 50 * rng.normal(size=(16, 2, D))  # anything at all in the padded tokens
    sim = Simulator(s)
    outs = [sim.run_chunk({"x": a, "pad": pad}, 0, T, {})[s.outputs[0]] for a in (x, other)]
    dec = [sim.decode(o, 0, T, None)[0] for o in outs]  # [T, 16, tokens, D]
    # the real tokens' outputs are the same, to the bit, at every step
    assert torch.equal(dec[0][:, :, :3], dec[1][:, :, :3])
    assert not torch.equal(dec[0][:, :, 3:], dec[1][:, :, 3:])  # (the padded queries themselves do change)
