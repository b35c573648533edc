"""SIT Spiking-Softmax on the built-in digits ViT: softmax error on its real attention rows, the
sit2024 recipe's accuracy against the ANN, and the portable artefact with spiking softmax inside.

Measured (bench/bench_spiking_softmax.py): softmax MSE on the test set's attention rows ~1e-5
(target 1e-3); sit2024 at T = 16 equals the ANN (98.52 %). Tolerance: one sample (0.185 pp)."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import torch
from helpers import assert_portable_matches_simulator

from snnconvert.api import load_model, load_snn, run_calibration, run_conversion, run_simulation
from snnconvert.ir.execute import Executor
from snnconvert.ir.registry import run_op

# the built-in ViT converted and simulated end to end: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

DATA = resources.files("snnconvert") / "data"
VIT = resources.files("snnconvert") / "zoo" / "digits_vit.onnx"
ONE_SAMPLE = 1 / 540


@pytest.fixture(scope="module")
def sit(tmp_path_factory):
    d = tmp_path_factory.mktemp("sit")
    run_calibration(VIT, DATA / "digits_calib.npz", d / "c.json")
    run_conversion(VIT, d / "c.json", "sit2024", d / "snn")
    return d


def test_softmax_mse_on_real_attention_rows(sit):
    """Every attention row of the 540 test samples, through the tables the recipe picked."""
    ann = load_model(VIT)
    snn, _ = load_snn(sit / "snn")
    spiking = {n.name: n for n in snn.nodes if n.op == "SpikingSoftmax"}
    softmax = [n for n in ann.nodes if n.op == "Softmax"]
    assert len(spiking) == len(softmax) == 2
    x = np.load(DATA / "digits_test.npz")["x"]
    scores = Executor(ann).run({ann.inputs[0]: x}, keep={n.inputs[0] for n in softmax})
    for n in softmax:
        s = scores[n.inputs[0]].double()
        ours = run_op("SpikingSoftmax", spiking[n.name].attrs, [s])[0]
        mse = float(((ours - torch.softmax(s, -1)) ** 2).mean())
        assert mse <= 1e-4, (n.name, mse)  # issue target 1e-3; SIT reported 0.013991
        assert ours.min() >= 0 and float((ours.sum(-1) - 1).abs().max()) <= 0.5  # rounded, not floored
        info = snn.meta["spiking_softmax"][n.name]
        assert info["table_range"][0] <= -info["range_needed"] or info["table_range"][0] == -16.0


def test_sit2024_matches_the_ann(sit):
    j = run_simulation(sit / "snn", DATA / "digits_test.npz", 16)
    assert j["samples"] == 540 and j["ann_accuracy"] >= 0.98
    assert j["ann_accuracy"] - j["snn_accuracy"][-1] <= ONE_SAMPLE + 1e-9
    rows = [layer for layer in j["layers"] if layer["op"] == "SpikingSoftmax"]
    assert len(rows) == 2
    for layer in rows:
        inside = layer["internal_spikes_per_sample"]
        assert inside["siexp"] > 0 and inside["sinorm"] > 0
        assert layer["spikes_per_sample"] == pytest.approx(inside["siexp"] + inside["sinorm"])


def test_portable_artefact_with_spiking_softmax(sit, tmp_path):
    x = np.load(DATA / "digits_test.npz")["x"][:8]
    assert_portable_matches_simulator(sit / "snn", x, 4, tmp_path)


def test_fully_spiking_with_spiking_softmax(tmp_path):
    """Count coding, every op output spiking and the softmax too: by T = 8 the SNN has settled on
    the converted network's own output, and rows whose inputs stopped changing are not re-evaluated
    (fewer softmax evaluations than elements x T). The bound on the limit is a regression check of
    our own figure (measured 97.59 %, ANN 98.52 %; 98.15 % before the per-sample IR, when the CLS
    token was a run-time node with a neuron of its own rather than a constant row of the Concat)."""
    run_calibration(VIT, DATA / "digits_calib.npz", tmp_path / "c.json")
    run_conversion(
        VIT, tmp_path / "c.json", "spikezip_count_spiking_softmax", tmp_path / "snn", portable=False
    )
    T = 8
    j = run_simulation(tmp_path / "snn", DATA / "digits_test.npz", T)
    assert abs(j["snn_accuracy"][-1] - j["limit_accuracy"]) <= ONE_SAMPLE + 1e-9
    assert j["ann_accuracy"] - j["limit_accuracy"] <= 5 * ONE_SAMPLE + 1e-9
    events = np.load(tmp_path / "snn" / "events.npz")
    snn, _ = load_snn(tmp_path / "snn")
    for n in (n for n in snn.nodes if n.op == "SpikingSoftmax"):
        evals = float(events[n.outputs[0] + "#evaluations"].sum())
        elements = snn.values[n.outputs[0]].numel
        assert elements <= evals < 0.75 * elements * T
