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


@pytest.mark.slow
@pytest.mark.parametrize(
    "model, recipe, at_16, at_24",
    [("vit_ssa", "spikformer_ssa", 532, 537), ("vit_sdsa", "sdt_sdsa", 534, 536)],
)
def test_issue_target_on_all_test_digits(tmp_path, model, recipe, at_16, at_24):
    """The issue's target, on all 540 test digits with the full calibration set: within 1.0 pp of
    the ANN at the recipe's T = 24 and at T = 16. The exact counts are a regression check of our
    own measurement (SSA ANN 535, SDSA ANN 538 right), one sample of slack for another CPU's
    float rounding."""
    onnx = ZOO / f"digits_{model}.onnx"
    run_calibration(onnx, DATA / "digits_calib.npz", tmp_path / "c.json")
    run_conversion(onnx, tmp_path / "c.json", recipe, tmp_path / "snn", portable=False)
    j = run_simulation(tmp_path / "snn", DATA / "digits_test.npz", T)
    right = [round(a * 540) for a in j["snn_accuracy"]]
    for t, want in ((16, at_16), (24, at_24)):
        assert j["ann_accuracy"] - j["snn_accuracy"][t - 1] <= 0.010 + 1e-9, (t, right[t - 1])
        assert abs(right[t - 1] - want) <= 1, (t, right[t - 1])
