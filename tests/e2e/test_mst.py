"""MST end to end through the API on the shipped digits_vit_qcfs.onnx, a few samples: every QCFS becomes
an IF neuron, the first of them reproduces the ANN exactly at T = L (its input is constant), the
SNN agrees with the ANN, and Random Spike Masking (mst2023, r = 0.75) delivers fewer spikes and costs
fewer accumulates. Figures from our own runs are regression checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import assert_portable_matches_simulator

from snnconvert.api import load_snn, run_calibration, run_conversion, run_energy_report, run_simulation
from snnconvert.passes.recipe import builtin_recipes

PKG = Path(__file__).resolve().parents[2] / "snnconvert"
MODEL = PKG / "zoo" / "digits_vit_qcfs.onnx"
CALIB, TEST = PKG / "data" / "digits_calib.npz", PKG / "data" / "digits_test.npz"
SAMPLES = 24


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[float, Path]:
    d = tmp_path_factory.mktemp("mst")
    run_calibration(MODEL, CALIB, d / "calib.json", samples=32)
    recipe = yaml.safe_load(builtin_recipes()["mst2023"].read_text())
    assert recipe["passes"][-1] == {"qcfs_to_if": {"masking_ratio": 0.75, "seed": 0, "rescale": True}}
    recipe["passes"][-1]["qcfs_to_if"]["masking_ratio"] = 0.0
    (d / "r0.yaml").write_text(yaml.safe_dump(recipe))
    out = {}
    for r, name in ((0.0, str(d / "r0.yaml")), (0.75, "mst2023")):
        out[r] = d / f"snn{r}"
        run_conversion(MODEL, d / "calib.json", name, out[r], portable=False)
    return out


def test_every_qcfs_is_an_if_neuron_and_token_batchnorms_fold(converted):
    snn, ann = load_snn(converted[0.0])
    ops = [n.op for n in snn.nodes]
    assert ops.count("Floor") == 0 and ops.count("IF") == ann_ops(ann).count("Floor") == 21
    assert ops.count("BatchNorm") == 5  # the 4 after fc1/fc2 folded; the pre-norms stay affine analog
    masked, _ = load_snn(converted[0.75])
    kinds = [n.op for n in masked.nodes]
    # per block: the norms' neurons, q, k, v, the scores, attn.v and fc1's are masked; the
    # projections' and fc2's (they enter the residual sum) and the head's input are not
    assert kinds.count("MaskedIF") == 16 and kinds.count("IF") == 5


def ann_ops(g):
    return [n.op for n in g.nodes]


def test_the_first_neuron_is_exact_at_t_equal_l_and_the_snn_agrees(converted):
    """The first block's norm neuron sees a constant current (BN of the static embedding), so at
    T = L = 8 its rate is the ANN's QCFS output to float rounding."""
    j = run_simulation(converted[0.0], TEST, 8, samples=SAMPLES)
    first = next(layer for layer in j["layers"] if layer["op"] == "IF")
    assert first["rel_error"] < 1e-5
    j = run_simulation(converted[0.0], TEST, 16, samples=SAMPLES)
    assert j["agreement"][-1] >= 0.9  # regression check: 95.93 % at T = 16 on all 540 (ANN 96.48 %)


def test_random_spike_masking_delivers_fewer_spikes_and_accumulates(converted):
    acs = {}
    for r, d in converted.items():
        run_simulation(d, TEST, 16, samples=SAMPLES)
        acs[r] = run_energy_report(d)["total"]["snn_acs"]
    assert acs[0.75] < 0.5 * acs[0.0]  # regression check: 0.26x on all 540 at T = 128


@pytest.mark.slow
def test_the_portable_snn_masks_as_the_simulator_does(converted, tmp_path):
    """The masks come from the neurons' own step counts, so the one-step torch.export program draws
    the same ones as the simulator."""
    out = tmp_path / "snn"
    run_conversion(MODEL, converted[0.75].parent / "calib.json", "mst2023", out)
    with np.load(TEST) as z:
        x = z["x"][:3]
    assert_portable_matches_simulator(out, x, 12, tmp_path)


def test_the_masking_ratio_is_a_setting_of_the_recipe(converted, tmp_path):
    """`convert --set masking_ratio=0.5` reaches every masked neuron, and their kept spikes weigh 2."""
    run_conversion(
        MODEL, converted[0.75].parent / "calib.json", "mst2023", tmp_path / "snn", portable=False,
        overrides=["masking_ratio=0.5"],
    )  # fmt: skip
    snn, _ = load_snn(tmp_path / "snn")
    masked = [n for n in snn.nodes if n.op == "MaskedIF"]
    assert len(masked) == 16 and {n.attrs["masking_ratio"] for n in masked} == {0.5}
    weights = {float(snn.initializers[n.inputs[1]]) for n in snn.nodes if n.name.endswith("/rescale")}
    assert weights == {2.0}
