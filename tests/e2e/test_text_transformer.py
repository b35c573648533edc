"""Mueller 2021 (and SIT) on the zoo's text transformer: int64 token input, an embedding Gather and
mean pooling (ReduceMean) through calibrate, convert, simulate and energy-report.

Tolerances. Against the ANN, measured on all 1,024 test sequences (regression figures of our own
output): mueller2021 agrees on 1,024 / 1,024 at T = 8 and T = 50 (output cosine 0.9993 / 0.9996);
sit2024 on 1,024 / 1,024 at T = 50. The key-order task gives the ANN wide margins, so the tests allow
one disagreement in 32 samples (3 pp) and an output cosine of 0.99, well below what was measured and
well above what a broken conversion gives (a wrong threshold or a dropped residual puts the logits of
six classes far apart from the ANN's)."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
from helpers import run_cli

from snnconvert.api import run_calibration, run_conversion, run_simulation
from tools.train_zoo import onnx_logits

ZOO = resources.files("snnconvert") / "zoo"
DATA = resources.files("snnconvert") / "data"
SAMPLES = 32


def _ort_labels(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ANN's predictions from onnxruntime (not our executor) and the labels, first n samples."""
    with np.load(DATA / "text_test.npz") as z:
        x, y = z["x"][:n], z["y"][:n]
    return onnx_logits((ZOO / "text_transformer.onnx").read_bytes(), x).argmax(1), y


def _check(j: dict, T: int) -> None:
    assert j["samples"] == SAMPLES and j["timesteps"] == T
    pred, y = _ort_labels(SAMPLES)
    assert j["ann_accuracy"] == pytest.approx(float((pred == y).mean()))  # our ANN is onnxruntime's
    assert j["agreement"][-1] >= (SAMPLES - 1) / SAMPLES
    assert j["ann_accuracy"] - j["snn_accuracy"][-1] <= 1 / SAMPLES + 1e-9
    assert j["cosine"][-1] >= 0.99


def test_mueller2021_api_small_T(tmp_path) -> None:
    onnx = ZOO / "text_transformer.onnx"
    run_calibration(onnx, DATA / "text_calib.npz", tmp_path / "c.json", samples=64)
    s = run_conversion(onnx, tmp_path / "c.json", "mueller2021", tmp_path / "snn", portable=False)
    assert s["neurons"] == 2  # the two feed-forward ReLUs; the rest of Mueller 2021's model stays analog
    j = run_simulation(tmp_path / "snn", DATA / "text_test.npz", 8, samples=SAMPLES)
    _check(j, 8)


@pytest.mark.parametrize("recipe", ["mueller2021", pytest.param("sit2024", marks=pytest.mark.slow)])
def test_cli_end_to_end(tmp_path, recipe: str) -> None:
    ex, T = tmp_path / "ex", 8
    steps = [
        ("example", ex, "--model", "text_transformer"),
        ("calibrate", ex / "model.onnx", "--data", ex / "calib.npz", "--out", tmp_path / "c.json"),
        ("convert", ex / "model.onnx", "--calibration", tmp_path / "c.json", "--recipe", recipe,
         "--out", tmp_path / "snn"),
        ("simulate", tmp_path / "snn", "--data", ex / "test.npz", "-T", str(T), "--samples", str(SAMPLES),
         "--out", tmp_path / "sim.json"),
        ("energy-report", tmp_path / "snn", "--out", tmp_path / "energy.json"),
    ]  # fmt: skip
    for args in steps:
        code, _, err = run_cli(*args)
        assert code == 0, (args[0], err)
    _check(json.loads((tmp_path / "sim.json").read_text()), T)
    energy = json.loads((tmp_path / "energy.json").read_text())
    assert energy["recipe"] == recipe and energy["samples"] == SAMPLES
