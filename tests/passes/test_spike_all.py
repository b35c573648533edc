"""spike_all (fully spiking, count coding): threshold choice against numpy on the raw calibration
activations, and the simulated SNN against the quantised ANN (the converted graph run as an ANN)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import converted, mlp_graph, random_calibration

from snnconvert.ir.execute import run_graph
from snnconvert.sim.simulator import Simulator


def calibrated(g, n=512, seed=0):
    return random_calibration(g, n, seed, batch_size=128)


def spike_all(g, cal, **params):
    return converted(g, cal, [("spike_all", params)], "count")[0]


def sq_error(x, theta, lo, hi):
    """numpy: squared error of the count quantiser theta*clip(round(x/theta), lo, hi) over x."""
    return float(((x - theta * np.clip(np.round(x / theta), lo, hi)) ** 2).sum())


@pytest.mark.parametrize("levels", [4, 16])
def test_mse_threshold_minimises_the_quantisation_error_of_the_raw_activations(levels):
    g = mlp_graph((6, 16, 12, 4))
    cal, x = calibrated(g)
    pct = spike_all(g, cal, levels=levels, percentile=99.9)
    mse = spike_all(g, cal, levels=levels, threshold="mse")
    ifs = [n for n in mse.nodes if n.op == "IF"]
    assert len(ifs) >= 3  # fc0, relu0, fc1, relu1 (the output stays analog)
    acts = run_graph(g, {"x": x}, keep={n.outputs[0] for n in ifs})
    for n in ifs:
        a = acts[n.outputs[0]].numpy().astype(np.float64).ravel()
        lo, hi = n.attrs["lo"], n.attrs["hi"]
        th_mse = float(mse.initializers[n.inputs[1]])
        th_pct = float(pct.initializers[pct.node(n.name).inputs[1]])
        # brute force over a fine grid on the raw values (the pass only sees a 0.5 %-accurate histogram)
        grid = np.abs(a).max() / hi * np.geomspace(1 / 64, 1, 1500)
        best = min(sq_error(a, t, lo, hi) for t in grid)
        e_mse, e_pct = sq_error(a, th_mse, lo, hi), sq_error(a, th_pct, lo, hi)
        assert e_mse <= 1.03 * best, (n.name, e_mse, best)
        assert e_mse <= e_pct * 1.001, (n.name, e_mse, e_pct)


@pytest.mark.parametrize("threshold", ["percentile", "mse"])
def test_multi_spike_snn_equals_quantised_ann_and_settles_sooner(threshold):
    """The converted graph run as an ANN is the quantised ANN; with m = L spikes per step every
    neuron settles at step 1 (no synaptic delay), with m = 1 within a few times L steps."""
    g = mlp_graph((6, 16, 12, 4))
    cal, x = calibrated(g)
    xs = torch.from_numpy(x[:64])
    L = 8
    settled = {}
    for m in (1, 2, L):
        s = spike_all(g, cal, levels=L, max_spikes_per_step=m, threshold=threshold)
        ref = run_graph(s, {"x": xs})[s.outputs[0]]
        sim = Simulator(s)
        T = 4 * L
        dec, _ = sim.decode(sim.run_chunk({"x": xs}, 0, T, {})[s.outputs[0]], 0, T, None)
        err = (dec - ref).abs().flatten(1).amax(1)  # [T]
        assert err[-1] <= 1e-5 * (1 + ref.abs().max()), (m, err[-1])
        ok = (err <= 1e-5 * (1 + ref.abs().max())).numpy()
        settled[m] = int(len(ok) - np.argmin(ok[::-1])) + 1 if not ok.all() else 1
    assert settled[L] == 1
    assert settled[2] < settled[1]
    assert settled[1] <= 3 * L
