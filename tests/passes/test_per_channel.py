"""spike_all's per-channel thresholds and per-tensor L (issue M item 2), against numpy on the raw
calibration activations: theta_c is the channel's max |x| / L, the converted graph run as an ANN
is numpy's per-channel quantised forward, and `tolerance` picks the smallest L that meets it."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from helpers import converted, mlp_graph, random_calibration

from snnconvert.ir.execute import run_graph
from snnconvert.passes.spikify import relative_error


def outlier_mlp():
    """An MLP whose first layer has one output channel 30x the others' range (BERT-style)."""
    g = mlp_graph((6, 16, 12, 4))
    w = g.initializers["w0"].copy()
    w[:, 3] *= 30.0
    g.initializers["w0"] = w
    return g


def spike_all(g, cal, **params):
    return converted(g, cal, [("spike_all", params)], "count")[0]


def neurons(s):
    return [n for n in s.nodes if n.op == "IF"]


def quantise(x, theta, lo, hi):
    return theta * np.clip(np.round(x / theta), lo, hi)


@pytest.fixture(scope="module")
def calibrated():
    g = outlier_mlp()
    cal, x = random_calibration(g, 512, 0, batch_size=128)
    return g, cal, x


def test_per_channel_theta_is_the_channels_max_over_L(calibrated):
    g, cal, x = calibrated
    s = spike_all(g, cal, levels=8, per_channel=True)
    ifs = neurons(s)
    assert len(ifs) == 4  # fc0, relu0, fc1, relu1 (the output stays analog)
    acts = run_graph(g, {"x": x}, keep={n.outputs[0] for n in ifs})
    for n in ifs:
        a = acts[n.outputs[0]].numpy().astype(np.float64)  # [N, C]
        theta = np.asarray(s.initializers[n.inputs[1]])
        assert theta.shape == (a.shape[1],), n.name
        cmax = np.abs(a).max(0)
        floor = 1e-6 * cmax.max()  # a channel that never fired (ReLU) gets a tiny theta, not 0
        np.testing.assert_allclose(theta, np.maximum(cmax, floor) / 8, rtol=1e-6, err_msg=n.name)
    # the outlier channel keeps its range; one theta per tensor would give every channel its theta
    th0 = np.asarray(s.initializers[s.node("fc0/IF").inputs[1]])
    assert th0[3] > 10 * np.median(th0)


def test_converted_graph_is_numpys_per_channel_quantised_forward(calibrated):
    g, cal, x = calibrated
    s = spike_all(g, cal, levels=8, per_channel=True)
    ifs = {n.outputs[0]: n for n in neurons(s)}
    w = {k: np.asarray(v, np.float64) for k, v in s.initializers.items()}
    h = x.astype(np.float64)
    for i in range(3):  # Linear -> IF -> IF(ReLU) twice, then the analog output Linear
        h = h @ w[f"w{i}"] + w[f"b{i}"]
        if i == 2:
            break
        for n in (s.node(f"fc{i}/IF"), s.node(f"relu{i}")):
            assert n.outputs[0] in ifs
            h = quantise(h, w[n.inputs[1]], n.attrs["lo"], n.attrs["hi"])
    ours = run_graph(s, {"x": x})[s.outputs[0]].numpy()
    np.testing.assert_allclose(ours, h, rtol=1e-4, atol=1e-4)


def test_per_channel_beats_one_theta_on_an_outlier_channel(calibrated):
    g, cal, x = calibrated
    ann = run_graph(g, {"x": x})[g.outputs[0]].numpy()

    def err(**p):
        s = spike_all(g, cal, levels=8, **p)
        return float(np.linalg.norm(run_graph(s, {"x": x})[s.outputs[0]].numpy() - ann) / np.linalg.norm(ann))

    assert err(per_channel=True) < 0.5 * err(threshold="mse")


@pytest.mark.parametrize("per_channel", [False, True])
def test_tolerance_picks_the_smallest_L_that_meets_it(calibrated, per_channel):
    g, cal, x = calibrated
    levels, m, tol = 4, 2, 0.02
    s = spike_all(
        g, cal, levels=levels, max_spikes_per_step=m, per_channel=per_channel, threshold="mse", tolerance=tol
    )
    chosen = set()
    for n in neurons(s):
        L = int(n.attrs["hi"])
        chosen.add(L)
        assert L % levels == 0 and (L // levels) & (L // levels - 1) == 0  # levels * 2^k
        assert n.attrs["max_spikes_per_step"] == m * L // levels  # as many steps to settle
        sk = cal.sketch(n.outputs[0])
        th = np.asarray(s.initializers[n.inputs[1]])
        assert relative_error(sk, th, n.attrs["lo"], L) <= tol, n.name
        if levels < L:  # at L / 2 (the pass's own threshold rule) the estimate missed the tolerance
            half = spike_all(
                g, cal, levels=L // 2, max_spikes_per_step=m, per_channel=per_channel, threshold="mse"
            )
            hn = half.node(n.name)
            lo = hn.attrs["lo"]
            assert relative_error(sk, np.asarray(half.initializers[hn.inputs[1]]), lo, L // 2) > tol
    assert max(chosen) > levels  # the tolerance raised some tensor's L


def test_relative_error_against_numpy(calibrated):
    """One theta: exact on the histogram, so numpy's on the raw values within the sketch's 0.5 %
    resolution. Per channel: an estimate (which channel a histogram value came from is unknown),
    within a factor of 1.5 of numpy's on these activations."""
    g, cal, x = calibrated
    s = spike_all(g, cal, levels=8, per_channel=True)
    acts = run_graph(g, {"x": x}, keep={n.outputs[0] for n in neurons(s)})
    for n in neurons(s):
        a = acts[n.outputs[0]].numpy().astype(np.float64)
        lo, hi, sk = n.attrs["lo"], n.attrs["hi"], cal.sketch(n.outputs[0])
        th = np.asarray(s.initializers[n.inputs[1]], np.float64)
        rms = np.sqrt((a**2).sum())
        true_pc = np.sqrt(((a - quantise(a, th, lo, hi)) ** 2).sum()) / rms
        est = relative_error(sk, th, lo, hi)
        assert true_pc / 1.5 <= est <= 1.5 * true_pc, (n.name, est, true_pc)
        one = float(np.abs(a).max()) / hi / 3
        exact = np.sqrt(((a - quantise(a, one, lo, hi)) ** 2).sum()) / rms
        assert relative_error(sk, np.asarray(one), lo, hi) == pytest.approx(exact, rel=0.02), n.name


def test_a_calibration_without_per_channel_maxima_keeps_one_theta_and_says_so(calibrated):
    """A calibration file written before per-channel maxima were recorded (the field is optional)."""
    g, cal, x = calibrated
    cal = copy.deepcopy(cal)  # the module's fixture stays as it is
    for name in list(cal.sketches):
        cal.sketches[name]._channel_max_abs = None
    s, notes = converted(g, cal, [("spike_all", {"levels": 8, "per_channel": True})], "count")
    assert all(np.asarray(s.initializers[n.inputs[1]]).size == 1 for n in neurons(s))
    assert any("keep one threshold" in m and "rerun `snnconvert calibrate`" in m for m in notes), notes


def conv1d_graph():
    """A 1-d conv front end (Whisper's, wav2vec2's): Conv1d -> Gelu on [1, C, L] per sample, then the
    feature map turned token-major ([1, L, C]) and a Linear: the channels are axis 1 before the
    transpose and the last axis after it."""
    from snnconvert.ir.build import GraphBuilder

    rng = np.random.default_rng(5)
    b = GraphBuilder()
    x = b.input("x", (1, 2, 9), batch_axis=0)
    w = rng.normal(size=(4, 2, 3)).astype(np.float32)
    w[2] *= 20.0  # one channel 20x the others' range
    conv = b.node("Conv", [x, b.const("w", w), b.const("b", np.zeros(4, np.float32))],
                  {"strides": [1], "pads": [1, 1], "dilations": [1]}, name="conv")  # fmt: skip
    act = b.node("Gelu", [conv], name="gelu")
    tok = b.node("Transpose", [act], {"perm": [0, 2, 1]}, name="tok")
    y = b.node("Linear", [tok, b.const("w2", rng.normal(size=(4, 3)).astype(np.float32))], name="fc")
    return b.output(y)


def test_a_conv1d_feature_maps_channels_are_axis_1_and_a_token_major_values_the_last():
    from snnconvert.calibrate.observe import channel_axis

    g = conv1d_graph()
    assert [channel_axis(g, v) for v in ("conv", "gelu", "tok", "fc")] == [1, 1, 2, 2]
    cal, x = random_calibration(g, 256, 1, batch_size=64)
    s = spike_all(copy.deepcopy(g), cal, levels=8, per_channel=True)
    acts = run_graph(g, {"x": x}, keep={"conv", "gelu"})
    for v in ("conv", "gelu"):
        node = next(n for n in s.nodes if n.op == "IF" and n.outputs[0] == v)
        theta = np.asarray(s.initializers[node.inputs[1]])
        a = acts[v].numpy().astype(np.float64)  # [N, 1, C, L]
        cmax = np.abs(a).max(axis=(0, 1, 3))  # per channel, over samples and positions
        assert theta.shape == (1, 4, 1), v
        np.testing.assert_allclose(theta.reshape(4), np.maximum(cmax, 1e-6 * cmax.max()) / 8, rtol=1e-6)
