"""qcfs_to_if on hand-built graphs against a numpy QCFS (Bu et al. 2022), and BatchNorm folding through
the token transpose MST writes (Linear -> Transpose -> BatchNorm -> Transpose)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnconvert.errors import GraphError
from snnconvert.ir.build import GraphBuilder
from snnconvert.ir.execute import Executor
from snnconvert.passes import PassContext, run_pass
from snnconvert.passes.spikify import assign_domains
from snnconvert.sim.simulator import Simulator

LAM, L = 1.7, 8


def qcfs(x: np.ndarray, lam: float, levels: int) -> np.ndarray:
    """The QCFS activation, written from Bu et al.'s equation: lam * clip(floor(x L / lam + 1/2) / L, 0, 1)."""
    return lam * np.clip(np.floor(x * levels / lam + 0.5) / levels, 0.0, 1.0)


def qcfs_chain(b: GraphBuilder, v: str, tag: str = "") -> str:
    """QCFS as torch's exporter writes it: Div, Mul, Add, Floor, Clip, Mul, Div; returns its output."""
    lam, lv = b.const("lam", np.float32(LAM)), b.const("L", np.float32(L))
    z = b.node("Add", [b.node("Mul", [b.node("Div", [v, lam]), lv]), b.const("half", np.float32(0.5))])
    q = b.node("Clip", [b.node("Floor", [z], name=f"floor{tag}")], {"min": 0.0, "max": float(L)})
    return b.node("Div", [b.node("Mul", [q, lam]), lv], name=f"y{tag}")


def qcfs_graph(n: int, scale: float | None = None):
    """x -> [x * scale] -> QCFS."""
    b = GraphBuilder()
    x = b.input("x", (1, n), batch_axis=0)
    h = b.node("Mul", [x, b.const("scale", np.float32(scale))], name="scaled") if scale else x
    return b.output(qcfs_chain(b, h))


def convert(g, **params):
    ctx = PassContext(coding="rate")
    g = run_pass("qcfs_to_if", g, params, ctx)
    assign_domains(g, "rate")
    return g, ctx


def rate(g, x: np.ndarray, T: int) -> np.ndarray:
    """The decoded output (running mean of the events) after T steps, x held constant."""
    sim = Simulator(g)
    out = sim.run_chunk({"x": torch.from_numpy(x)}, 0, T, {})[g.outputs[0]]
    dec, _ = sim.decode(out, 0, T, None)
    return dec[-1].double().numpy().reshape(x.shape)


def test_the_pattern_becomes_one_if_neuron_with_theta_lambda_and_v0_half():
    g, _ = convert(qcfs_graph(4))
    assert [n.op for n in g.nodes] == ["IF"]
    (n,) = g.nodes
    assert n.outputs == ["y"] and n.inputs[0] == "x"
    assert float(g.initializers[n.inputs[1]]) == pytest.approx(LAM)
    assert n.attrs["v0"] == 0.5 and n.attrs["lo"] == 0.0 and n.attrs["hi"] == 1.0
    assert g.meta["qcfs_levels"] == {"y": L}


def test_if_rate_equals_qcfs_at_t_equal_l_and_converges_to_it():
    """Constant input: the count after T steps from v0 = theta/2 is floor(T x / theta + 1/2), so at
    T = L the rate is QCFS itself (float32 rounding only); at large T it is clip(x, 0, lam), which
    QCFS is within lam / (2L) of, plus the IF's own 1/T rounding."""
    x = np.random.default_rng(0).uniform(-0.5, 2.2, size=(3, 300)).astype(np.float32)
    g, _ = convert(qcfs_graph(300))
    ref = qcfs(x.astype(np.float64), LAM, L)
    np.testing.assert_allclose(rate(g, x, L), ref, atol=1e-5 * LAM)
    T = 1024
    assert np.abs(rate(g, x, T) - ref).max() <= LAM / (2 * L) + LAM / T + 1e-6


def test_exact_in_expectation_for_other_t_only_with_v0_half():
    """Bu et al.'s Theorem 2: for x uniform over [0, lam], the mean of the IF rate at any T equals the
    mean of QCFS (both lam / 2) when the membrane starts at theta / 2; from 0 it is lam (T-1)/(2T)."""
    n, T = 20000, 5
    x = np.random.default_rng(1).uniform(0.0, LAM, size=(1, n)).astype(np.float32)
    g, _ = convert(qcfs_graph(n))
    err = rate(g, x, T) - qcfs(x.astype(np.float64), LAM, L)
    assert abs(err.mean()) < 0.01 * LAM  # standard error ~0.0015 lam
    g.nodes[0].attrs["v0"] = 0.0
    biased = rate(g, x, T) - qcfs(x.astype(np.float64), LAM, L)
    assert biased.mean() == pytest.approx(-LAM / (2 * T), abs=0.01 * LAM)


def test_a_scaling_before_the_chain_becomes_the_neurons_input_gain():
    """The scores' scale (q.k^T * s) is read into the chain; the neuron gets the current s * x."""
    x = np.random.default_rng(2).uniform(0, 6, size=(2, 50)).astype(np.float32)
    g, _ = convert(qcfs_graph(50, scale=0.25))
    assert [n.op for n in g.nodes] == ["Mul", "IF"]
    assert float(g.initializers[g.nodes[0].inputs[1]]) == pytest.approx(0.25)
    np.testing.assert_allclose(rate(g, x, L), qcfs(0.25 * x.astype(np.float64), LAM, L), atol=1e-5)


def test_floor_that_is_not_qcfs_is_kept_and_a_graph_without_qcfs_is_refused():
    b = GraphBuilder()
    x = b.input("x", (1, 4), batch_axis=0)
    g = b.output(b.node("Floor", [x], name="plain"))
    with pytest.raises(GraphError, match="qcfs_to_if: the model has no QCFS"):
        convert(g)
    b = GraphBuilder()
    x = b.input("x", (1, 4), batch_axis=0)
    g, ctx = convert(b.output(qcfs_chain(b, x), b.node("Floor", [x], name="plain")))
    assert sorted(n.op for n in g.nodes) == ["Floor", "IF"]
    assert any("'plain' is not a QCFS activation" in m for m in ctx.notes)


def test_masking_makes_masked_neurons_only_where_spikes_enter_a_layer():
    """x -> QCFS -> Linear -> QCFS -> output: the first neuron feeds a synaptic layer (masked, its kept
    spikes weighted 1/(1-r)); the second is the output's (left alone)."""
    b = GraphBuilder()
    x = b.input("x", (1, 6), batch_axis=0)
    w = np.random.default_rng(3).normal(size=(6, 5)).astype(np.float32)
    h = b.node("Linear", [qcfs_chain(b, x, "_a"), b.const("w", w)], name="fc")
    g, ctx = convert(b.output(qcfs_chain(b, h, "_b")), masking_ratio=0.75, seed=3)
    ops = {n.name: n.op for n in g.nodes}
    assert ops["y_a"] == "MaskedIF" and ops["y_b"] == "IF"
    rescale = next(n for n in g.nodes if n.op == "Mul")
    assert rescale.outputs == ["y_a"] and float(g.initializers[rescale.inputs[1]]) == pytest.approx(4.0)
    masked = next(n for n in g.nodes if n.op == "MaskedIF")
    assert masked.attrs["masking_ratio"] == 0.75 and masked.attrs["seed"] == 3
    assert g.values["y_a"].domain == "spike"  # a constant scaling of spikes is still spikes
    assert any("Random Spike Masking drops 75%" in m for m in ctx.notes)


def test_batchnorm_after_a_token_linear_folds_through_the_transpose():
    rng = np.random.default_rng(4)
    b = GraphBuilder()
    x = b.input("x", (1, 5, 6), batch_axis=0)
    h = b.node(
        "Linear",
        [x, b.const("w", rng.normal(size=(6, 4)).astype(np.float32)), b.const("b", np.ones(4, np.float32))],
    )
    t = b.node("Transpose", [h], {"perm": [0, 2, 1]})
    bn = [b.const(k, rng.uniform(0.5, 2, size=4).astype(np.float32)) for k in ("g", "beta", "mean", "var")]
    y = b.node("Transpose", [b.node("BatchNorm", [t, *bn], {"epsilon": 1e-5})], {"perm": [0, 2, 1]}, name="y")
    g = b.output(y)
    ctx = PassContext()
    folded = run_pass("fold_batchnorm", g, {}, ctx)
    assert [n.op for n in folded.nodes] == ["Linear", "Transpose", "Transpose"] and not ctx.notes
    assert h not in folded.values  # the Linear's output is no longer the ANN's tensor of that name
    xs = rng.normal(size=(3, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(
        Executor(folded).run({"x": xs})["y"], Executor(g).run({"x": xs})["y"], atol=1e-5
    )
