"""Which entries of a value can reach the output (Executor.reaching), against what the graph's
structure says by hand: a masked mean over tokens reads only the unmasked tokens' rows; a
CLS-style readout (Gather of token 0) only row 0; a value after a Round reaches nowhere."""

from __future__ import annotations

import numpy as np
import torch

from snnconvert.ir.build import GraphBuilder
from snnconvert.ir.execute import Executor

TOKENS, D, H = 5, 3, 4


def _graph(readout: str):
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input("x", (TOKENS, D))
    m = b.input("m", (TOKENS,))
    w = b.const("w", rng.normal(size=(D, H)).astype(np.float32))
    h = b.node("Linear", [x, w, b.const("b", np.zeros(H, np.float32))], name="fc")
    if readout == "masked_mean":
        mm = b.node("Unsqueeze", [m], {"axes": [-1]}, name="unsq")
        y = b.node(
            "ReduceSum", [b.node("Mul", [h, mm], name="mul")], {"axes": [0], "keepdims": 0}, name="pool"
        )
    elif readout == "cls":
        y = b.node("Gather", [h, b.const("i", np.array(0, np.int64))], {"axis": 0}, name="cls")
    else:
        y = b.node("Round", [h], name="round")
    return b.output(y)


def _feeds(n: int = 6):
    rng = np.random.default_rng(1)
    m = (rng.random((n, TOKENS)) < 0.6).astype(np.float32)
    m[:, 0] = 1.0  # every sample keeps a token
    return {"x": rng.normal(size=(n, TOKENS, D)).astype(np.float32), "m": m}


def test_a_masked_mean_reads_the_unmasked_tokens_rows_alone():
    feeds = _feeds()
    r = Executor(_graph("masked_mean")).reaching(feeds, ["fc"])["fc"]
    want = np.broadcast_to(feeds["m"][:, :, None] != 0, (6, TOKENS, H))
    np.testing.assert_array_equal(r.numpy(), want)


def test_a_cls_readout_reads_row_zero_alone():
    r = Executor(_graph("cls")).reaching(_feeds(), ["fc"])["fc"]
    want = np.zeros((6, TOKENS, H), bool)
    want[:, 0] = True
    np.testing.assert_array_equal(r.numpy(), want)


def test_a_value_behind_a_round_reaches_nowhere():
    r = Executor(_graph("round")).reaching(_feeds(), ["fc"])["fc"]
    assert r.shape == (6, TOKENS, H) and not bool(r.any())


def test_reaching_leaves_no_gradient_state_behind():
    g = _graph("masked_mean")
    ex = Executor(g)
    ex.reaching(_feeds(), ["fc"])
    assert not torch.is_grad_enabled() or all(not t.requires_grad for t in ex.consts.values())


def test_every_output_counts():
    """A second output that reads every token: then every row of fc reaches, though the first output
    (a CLS readout) reads row 0 alone."""
    g = _graph("cls")
    g.outputs.append("fc")
    r = Executor(g).reaching(_feeds(), ["fc"])["fc"]
    assert bool(r.all())


def test_a_model_autograd_cannot_take_is_not_measured(monkeypatch):
    """Where torch has no derivative for an op (here: any, by a patched autograd), reaching is {}, not
    an error; simulate then reports the reaching figures as null."""

    def no_derivative(*a, **k):
        raise RuntimeError("derivative for this op is not implemented")

    monkeypatch.setattr(torch.autograd, "grad", no_derivative)
    assert Executor(_graph("masked_mean")).reaching(_feeds(), ["fc"]) == {}
