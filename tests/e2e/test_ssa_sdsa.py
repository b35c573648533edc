"""Spikformer SSA and Spike-driven SDSA end to end through the API on their shipped zoo models, on
the first 100 digits test samples at T = 24 (no training: the ONNX files are shipped).

Both recipes are count-coded with binary spikes (one per step) up to L = 16 per neuron, so every
neuron has settled by T = 24, the recipes' own timesteps (16 steps plus the depth's latency;
measured on all 540 test samples: the accuracy is the same from T = 20 to 64). A settled count-coded SNN is the ANN with its
ReLUs quantised to L levels, so its accuracy must equal the `limit_accuracy` simulate reports,
exactly; against the float ANN the quantisation moved 2 of 540 test predictions for each model
(SSA: 537 vs 535 right, SDSA: 536 vs 538), so on 100 samples we allow 3 disagreements.
"""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from snnconvert.api import energy_report, run_calibration, run_conversion, run_simulation

DATA = resources.files("snnconvert") / "data"
ZOO = resources.files("snnconvert") / "zoo"
RECIPES = resources.files("snnconvert") / "recipes"
T, SAMPLES = 24, 100  # the recipes' timesteps


def converted(tmp_path, model: str, recipe: str, calib_samples: int = 128) -> dict:
    onnx = ZOO / f"digits_{model}.onnx"
    cal = tmp_path / "c.json"
    if not cal.exists():
        run_calibration(onnx, DATA / "digits_calib.npz", cal, samples=calib_samples)
    out = tmp_path / f"snn_{abs(hash(recipe)) % 10**6}"
    run_conversion(onnx, cal, recipe, out, portable=False)
    return {"dir": out, "sim": run_simulation(out, DATA / "digits_test.npz", T, samples=SAMPLES)}


@pytest.mark.parametrize("model, recipe", [("vit_ssa", "spikformer_ssa"), ("vit_sdsa", "sdt_sdsa")])
def test_recipe_on_its_zoo_model_settles_at_the_quantised_ann(tmp_path, model, recipe):
    r = converted(tmp_path, model, recipe)
    j = r["sim"]
    assert j["samples"] == SAMPLES
    assert j["snn_accuracy"][-1] == pytest.approx(j["limit_accuracy"])  # settled: the quantised ANN
    assert j["agreement"][-1] >= 0.97
    assert abs(j["ann_accuracy"] - j["snn_accuracy"][-1]) <= 0.03
    assert j["cosine"][-1] >= 0.99
    rep = energy_report(r["dir"], convention="spikformer")
    assert rep["convention"] == "spikformer"
    first = next(layer for layer in rep["layers"] if layer["snn_macs"] > 0)
    assert first["op"] == "Conv" and first["snn_macs"] == pytest.approx(first["ann_macs"] * T)
    # the encoding layer is the only MAC layer: every other synaptic op is fed by spikes
    assert [layer for layer in rep["layers"] if layer["snn_macs"] > 0] == [first]
    assert rep["total"]["spike_driven_fraction"] > 0.9


def test_ssa_reassociation_saves_attention_work_and_changes_no_prediction(tmp_path):
    """Q (K^T V) instead of (Q K^T) V on 16 tokens of d = 8: the attention products' ACs fall
    (each event of Q reaches d outputs instead of N); the spikes are those of the same network, so
    the predictions are the same (float rounding could flip a neuron sitting exactly at threshold;
    none does on these samples)."""
    plain = yaml.safe_load((RECIPES / "spikformer_ssa.yaml").read_text())
    plain["passes"] = [p for p in plain["passes"] if "reassociate_attention" not in p]
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(plain))
    runs = {
        name: converted(tmp_path, "vit_ssa", recipe)
        for name, recipe in (("reassociated", "spikformer_ssa"), ("plain", str(tmp_path / "plain.yaml")))
    }
    acs = {}
    for name, r in runs.items():
        rep = energy_report(r["dir"])
        acs[name] = sum(layer["snn_acs"] for layer in rep["layers"] if layer["op"] == "MatMul")
    assert runs["reassociated"]["sim"]["snn_accuracy"] == runs["plain"]["sim"]["snn_accuracy"]
    assert acs["reassociated"] < 0.75 * acs["plain"], acs
