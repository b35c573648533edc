"""A masked position's value cannot reach the output of the fully spiking SNN, even when calibration
never saw a masked score (no padding in the calibration data): the mask is found from the graph
(computed from an integer or boolean input and constants), stays analog and exact, and is applied
to the running total of the scores."""

from __future__ import annotations

import re

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


@pytest.mark.parametrize("fill", [-np.inf, np.finfo(np.float32).min])
def test_the_spiking_softmax_underflow_leaves_masked_keys_out(fill):
    """softmax_to_spiking reports the share of shifted scores below its SI-exp range; masked keys
    are not scores, so they are not counted (numpy reference over the real keys)."""
    from snnconvert.calibrate.observe import shifted_key
    from snnconvert.passes import PassContext, run_pass

    g = attention(fill)
    rng = np.random.default_rng(2)
    pad = np.zeros((64, N_TOK), bool)
    pad[:, 3:] = True
    d = {"x": 3 * rng.normal(size=(64, N_TOK, D)).astype(np.float32), "pad": pad}
    cal = calibration_of(g, d, batch_size=16)
    sk = cal.sketch(shifted_key("probs"))
    assert sk.count == 64 * N_TOK * 3  # the real keys' shifted scores only
    ctx = PassContext(calibration=cal, coding="rate")
    run_pass("softmax_to_spiking", g, {"K": 8, "range": 0}, ctx)
    # the same shifted scores in numpy, over the real keys, against the range the pass chose
    w = {k: g.initializers[k].astype(np.float64) for k in ("wq", "wk")}
    x = d["x"].astype(np.float64)
    s = (x @ w["wq"]) @ (x @ w["wk"]).transpose(0, 2, 1)
    s = s[:, :, :3]  # the real keys
    shifted = s - s.max(-1, keepdims=True)
    (note,) = [m for m in ctx.notes if "SI-exp" in m]
    lo = float(re.search(r"\[(-?[0-9.e+]+), 0\]", note).group(1))
    pct = float(re.search(r"([0-9.e+-]+)% (of them )?underflow", note).group(1))
    assert abs(pct - 100 * float((shifted < lo).mean())) < 1.0, (note, 100 * float((shifted < lo).mean()))
