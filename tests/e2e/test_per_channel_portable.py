"""The fully spiking recipe's per-channel thresholds and per-tensor levels survive the portable
SNN: the one-step torch.export program, run where snnconvert cannot be imported, decodes what the
simulator decodes (1e-4), on the shipped digits ViT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers import assert_portable_matches_simulator

from snnconvert.api import load_snn, run_calibration, run_conversion

PKG = Path(__file__).resolve().parents[2] / "snnconvert"
MODEL = PKG / "zoo" / "digits_vit.onnx"
CALIB, TEST = PKG / "data" / "digits_calib.npz", PKG / "data" / "digits_test.npz"


def test_portable_snn_with_per_channel_thresholds(tmp_path):
    run_calibration(MODEL, CALIB, tmp_path / "calib.json", samples=32)
    out = tmp_path / "snn"
    run_conversion(MODEL, tmp_path / "calib.json", "spikezip_count", out)
    snn, _ = load_snn(out)
    thetas = [np.asarray(snn.initializers[n.inputs[1]]) for n in snn.nodes if n.op == "IF"]
    assert any(t.size > 1 for t in thetas)  # per channel, not one per tensor
    assert len({int(n.attrs["hi"]) for n in snn.nodes if n.op == "IF"}) > 1  # L per tensor
    with np.load(TEST) as z:
        x = z["x"][:3]
    assert_portable_matches_simulator(out, x, 6, tmp_path)
