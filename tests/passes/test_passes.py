"""Each pass alone: BN folding is exact, both normalisations give the same spikes, ReLU -> IF uses
the calibrated percentile, MaxPool -> AvgPool, recipes are validated with field paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import mlp_graph, random_calibration

from snnconvert.errors import GraphError, InputError
from snnconvert.ir.build import GraphBuilder
from snnconvert.ir.execute import run_graph
from snnconvert.passes import PassContext, run_pass
from snnconvert.passes.recipe import load_recipe, parse_recipe
from snnconvert.passes.spikify import assign_domains
from snnconvert.sim.simulator import Simulator


def calibrated(g, n=256, seed=0):
    return random_calibration(g, n, seed)


def conv_bn_graph():
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input("x", (1, 2, 6, 6), batch_axis=0)
    w = b.const("w", rng.normal(size=(4, 2, 3, 3)).astype(np.float32))
    c = b.node("Conv", [x, w], {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1]}, name="conv")
    bn = [
        b.const(k, v.astype(np.float32))
        for k, v in (
            ("s", rng.uniform(0.5, 2, 4)),
            ("bb", rng.normal(size=4)),
            ("m", rng.normal(size=4)),
            ("v", rng.uniform(0.5, 2, 4)),
        )
    ]
    h = b.node("BatchNorm", [c, *bn], {"epsilon": 1e-5}, name="bn")
    h = b.node("Relu", [h], name="relu")
    h = b.node("MaxPool", [h], {"kernel": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0]}, name="pool")
    return b.output(h)


def test_fold_batchnorm_is_exact():
    g = conv_bn_graph()
    f = run_pass("fold_batchnorm", g, {}, PassContext())
    assert [n.op for n in f.nodes] == ["Conv", "Relu", "MaxPool"]
    x = torch.randn(3, 2, 6, 6)
    torch.testing.assert_close(
        run_graph(f, {"x": x})["pool"], run_graph(g, {"x": x})["pool"], atol=1e-5, rtol=1e-5
    )


def test_maxpool_to_avgpool():
    g = run_pass("maxpool_to_avgpool", conv_bn_graph(), {}, PassContext())
    pool = g.node("pool")
    assert pool.op == "AvgPool"
    x = torch.randn(2, 2, 6, 6)
    pre = run_graph(g, {"x": x}, keep={"relu"})["relu"].squeeze(1)  # kept: sample-major [B, 1, C, H, W]
    torch.testing.assert_close(run_graph(g, {"x": x})["pool"], torch.nn.functional.avg_pool2d(pre, 2))


def test_relu_to_if_needs_normalize_first():
    with pytest.raises(GraphError, match="relu0"):
        run_pass("relu_to_if", mlp_graph(), {}, PassContext())


def test_threshold_is_the_calibrated_percentile():
    g = mlp_graph()
    cal, x = calibrated(g)
    ctx = PassContext(calibration=cal)
    s = run_pass("relu_to_if", run_pass("normalize", g, {"percentile": 99.9}, ctx), {}, ctx)
    relu_out = run_graph(g, {"x": x}, keep={"relu0"})["relu0"].numpy()
    theta = float(s.initializers[s.node("relu0").inputs[1]])
    ref = np.percentile(relu_out, 99.9)
    assert abs(theta - ref) <= 0.011 * ref  # within the sketch's relative accuracy (alpha = 0.5 %)


def convert(g, mode, p=99.0):
    cal, x = calibrated(g)
    ctx = PassContext(calibration=cal)
    s = run_pass("relu_to_if", run_pass("normalize", g, {"percentile": p, "mode": mode}, ctx), {}, ctx)
    s.meta["coding"] = "rate"
    assign_domains(s, "rate")
    return s, x


def spikes(g, x, T=40):
    rec: dict = {}
    Simulator(g).run_chunk({"x": x[:64]}, 0, T, {}, record=rec)
    return rec


def test_weight_scaling_and_threshold_balancing_give_the_same_spikes():
    g = mlp_graph((6, 16, 12, 4))
    st, x = convert(g, "threshold")
    sw, _ = convert(g, "weights")
    assert float(sw.initializers[sw.node("relu0").inputs[1]]) == 1.0  # theta folded into the weights
    a, b = spikes(st, x), spikes(sw, x)
    for k in ("relu0", "relu1"):
        same = (a[k] == b[k]).float().mean().item()
        assert same >= 0.99, (k, same)  # float rounding may flip a spike at an exact threshold
        assert abs(a[k].sum().item() - b[k].sum().item()) <= 0.001 * a[k].sum().item() + 2


def test_builtin_recipe_loads_and_bad_recipes_name_the_field(tmp_path):
    r = load_recipe("mueller2021")
    assert r.coding == "rate" and r.timesteps == 50 and [p for p, _ in r.passes][-1] == "relu_to_if"
    with pytest.raises(InputError, match=r"passes\[0\]: unknown pass 'nope'"):
        parse_recipe({"name": "x", "passes": ["nope"]}, "r.yaml")
    with pytest.raises(InputError, match=r"passes\[0\]\.normalize\.percentile: expected"):
        parse_recipe({"name": "x", "passes": [{"normalize": {"percentile": "high"}}]}, "r.yaml")
    with pytest.raises(InputError, match=r"percentile: must be in"):
        parse_recipe({"name": "x", "passes": [{"normalize": {"percentile": 120}}]}, "r.yaml")
    with pytest.raises(InputError, match="unknown field 'pases'"):
        parse_recipe({"name": "x", "pases": []}, "r.yaml")
    with pytest.raises(InputError, match="neither a built-in"):
        load_recipe(str(tmp_path / "missing.yaml"))


def test_domains_follow_the_registry_flags():
    """Moves, sums and constant scalings of spikes stay spikes; a Pad only when it pads zeros or
    copies events; x / c scales events, c / x does not."""
    b = GraphBuilder()
    s = b.node("IF", [b.input("x", (4,)), b.const("th", np.float32(1.0))], name="s")
    one = b.const("one", np.float32(2.0))
    outs = {
        "zero_pad": b.node("Pad", [s], {"pads": [1, 1]}, name="zero_pad"),
        "edge_pad": b.node("Pad", [s], {"pads": [1, 1], "mode": "edge", "value": 1.0}, name="edge_pad"),
        "one_pad": b.node("Pad", [s], {"pads": [1, 1], "value": 1.0}, name="one_pad"),
        "sum": b.node("ReduceSum", [s], {"axes": [0]}, name="sum"),
        "x_over_c": b.node("Div", [s, one], name="x_over_c"),
        "c_over_x": b.node("Div", [one, s], name="c_over_x"),
        "c_times_x": b.node("Mul", [one, s], name="c_times_x"),
        "exp": b.node("Exp", [s], name="exp"),
    }
    g = b.output(*outs.values())
    assign_domains(g, "rate")
    domains = {k: g.values[v].domain for k, v in outs.items()}
    assert domains == {
        "zero_pad": "spike",
        "edge_pad": "spike",
        "one_pad": "analog",
        "sum": "spike",
        "x_over_c": "spike",
        "c_over_x": "analog",
        "c_times_x": "spike",
        "exp": "analog",
    }
