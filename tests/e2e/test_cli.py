"""Whole CLI runs on the built-in example: the contract's files and keys, one-line errors with a
non-zero exit and no partial outputs, and the portable SNN run without snnconvert importable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_portable_matches_simulator, run_cli

T = 8
SAMPLES = 96


cli = run_cli


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipeline")
    ex = d / "ex"
    steps = [
        ("example", str(ex)),
        (
            "calibrate",
            str(ex / "model.onnx"),
            "--data",
            str(ex / "calib.npz"),
            "--out",
            str(d / "calib.json"),
        ),
        (
            "convert",
            str(ex / "model.onnx"),
            "--calibration",
            str(d / "calib.json"),
            "--recipe",
            "mueller2021",
            "--out",
            str(d / "snn"),
        ),
        (
            "simulate",
            str(d / "snn"),
            "--data",
            str(ex / "test.npz"),
            "--timesteps",
            str(T),
            "--samples",
            str(SAMPLES),
            "--out",
            str(d / "result.json"),
        ),
        (
            "energy-report",
            str(d / "snn"),
            "--out",
            str(d / "energy.json"),
            "--csv",
            str(d / "energy.csv"),
            "--markdown",
            str(d / "energy.md"),
        ),
    ]
    for s in steps:
        code, out, err = cli(*s)
        assert code == 0, (s[0], err)
    return d


def test_contract_outputs(pipeline):
    d = pipeline
    assert {p.name for p in (d / "ex").iterdir()} >= {"model.onnx", "calib.npz", "test.npz"}
    assert (d / "snn" / "graph.json").is_file() and (d / "snn" / "weights.npz").is_file()
    r = json.loads((d / "result.json").read_text())
    assert r["timesteps"] == T and r["samples"] == SAMPLES
    assert len(r["snn_accuracy"]) == T and len(r["agreement"]) == T and 0 <= r["ann_accuracy"] <= 1
    for layer in r["layers"]:
        assert {"name", "spikes", "firing_rate", "cosine", "rel_error"} <= set(layer)
    spiking = [layer for layer in r["layers"] if layer["domain"] == "spike"]
    assert spiking and all(layer["spikes"] > 0 for layer in spiking)
    # the converted network's own limit, plain and centred (less the ANN's mean over the samples)
    for k in ("limit_cosine", "limit_rel_error", "cosine_centred", "limit_cosine_centred"):
        assert isinstance(r[k], float), k
    assert -1 <= r["cosine_centred"] <= 1 and 0 < r["output_sample_share"] <= 1
    e = json.loads((d / "energy.json").read_text())
    assert e["constants"]["charge_other"]  # every operation charged by default (measured convention)
    for k in ("ann_macs", "snn_acs", "snn_macs", "energy_ann_pj", "energy_snn_pj"):
        assert abs(sum(layer[k] for layer in e["layers"]) - e["total"][k]) <= 1e-6 * max(1, e["total"][k])
    assert 0 < e["total"]["spike_driven_fraction"] < 1
    assert e["constants"]["mac_pj"] == 4.6 and e["constants"]["ac_pj"] == 0.9
    assert (d / "energy.csv").read_text().startswith("name,op,domain")
    assert "| name |" in (d / "energy.md").read_text()


def test_snn_dir_summary_labels_what_is_analog(pipeline):
    s = json.loads((pipeline / "snn" / "summary.json").read_text())
    g = json.loads((pipeline / "snn" / "graph.json").read_text())
    doms = {v["name"]: v.get("domain") for v in g["values"]}
    assert set(doms.values()) <= {"spike", "analog"}
    ops = {n["op"] for n in s["nodes"] if n["spiking"]}
    assert ops == {"IF"} and s["neurons"] == 2
    # Mueller 2021: only the ReLUs spike
    assert all(n["output"] == "analog" for n in s["nodes"] if n["op"] in ("Softmax", "LayerNorm", "MatMul"))
    # the non-linear analog ops on running values: those after the first neuron, by hand from the
    # graph (a value downstream of an IF changes over time; the ones before it are computed once)
    varying, want = set(), {}
    for n in g["nodes"]:
        if n["op"] == "IF" or any(i in varying for i in n["inputs"]):
            varying.update(n["outputs"])
            if n["op"] in ("Softmax", "LayerNorm"):
                want[n["op"]] = want.get(n["op"], 0) + 1
    assert s["analog_nonlinear"] == want and want


def test_portable_snn_runs_without_snnconvert(pipeline, tmp_path):
    x = np.load(pipeline / "ex" / "test.npz")["x"][:16]
    assert_portable_matches_simulator(pipeline / "snn", x, T, tmp_path)


# -- errors: one line, non-zero exit, no output left behind -----------------------------------------
def _one_line_error(code, err):
    assert code != 0
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_truncated_onnx(pipeline, tmp_path):
    bad = tmp_path / "trunc.onnx"
    bad.write_bytes((pipeline / "ex" / "model.onnx").read_bytes()[:3000])
    code, _, err = cli("inspect", str(bad))
    assert "trunc.onnx" in _one_line_error(code, err)


def test_calibration_of_another_model_is_refused(pipeline, tmp_path):
    import onnx

    m = onnx.load(str(pipeline / "ex" / "model.onnx"))
    init = m.graph.initializer[0]
    arr = onnx.numpy_helper.to_array(init).copy()
    arr.flat[0] += 1.0
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    other = tmp_path / "other.onnx"
    onnx.save(m, str(other))
    code, _, err = cli(
        "convert",
        str(other),
        "--calibration",
        str(pipeline / "calib.json"),
        "--recipe",
        "mueller2021",
        "--out",
        str(tmp_path / "snn"),
    )
    assert "another model" in _one_line_error(code, err)
    assert not (tmp_path / "snn").exists() and not list(tmp_path.glob(".snn*"))


@pytest.mark.parametrize("t", ["0", "-1", "10000000"])
def test_bad_timesteps(pipeline, t, tmp_path):
    code, _, err = cli(
        "simulate",
        str(pipeline / "snn"),
        "--data",
        str(pipeline / "ex" / "test.npz"),
        "--timesteps",
        t,
        "--out",
        str(tmp_path / "r.json"),
    )
    assert "timesteps" in _one_line_error(code, err)
    assert not (tmp_path / "r.json").exists()


def test_bad_data_files(pipeline, tmp_path):
    model = str(pipeline / "ex" / "model.onnx")
    x = np.load(pipeline / "ex" / "calib.npz")["x"]
    cases = {
        "nokey.npz": ({"pixels": x}, "missing key 'x'"),
        "shape.npz": ({"x": x[:, :, :4]}, "key 'x' has shape"),
        "nan.npz": (
            {"x": np.where(np.arange(len(x))[:, None, None, None] == 7, np.nan, x)},
            "NaN (first at sample 7)",
        ),
        "empty.npz": ({"x": x[:0]}, "zero samples"),
        "dtype.npz": ({"x": x.astype(np.complex64)}, "dtype"),
    }
    for name, (arrays, msg) in cases.items():
        np.savez(tmp_path / name, **arrays)
        code, _, err = cli(
            "calibrate", model, "--data", str(tmp_path / name), "--out", str(tmp_path / "c.json")
        )
        line = _one_line_error(code, err)
        assert msg in line and name in line, (name, line)
        assert not (tmp_path / "c.json").exists()
    code, _, err = cli(
        "calibrate",
        model,
        "--data",
        str(pipeline / "ex" / "calib.npz"),
        "--samples",
        "100000",
        "--out",
        str(tmp_path / "c.json"),
    )
    assert "larger than" in _one_line_error(code, err)


def test_unknown_recipe_and_missing_simulation(pipeline, tmp_path):
    code, _, err = cli(
        "convert",
        str(pipeline / "ex" / "model.onnx"),
        "--calibration",
        str(pipeline / "calib.json"),
        "--recipe",
        "no_such_recipe",
        "--out",
        str(tmp_path / "snn"),
    )
    assert "no_such_recipe" in _one_line_error(code, err)
    fresh = tmp_path / "fresh"
    code, _, _ = cli(
        "convert",
        str(pipeline / "ex" / "model.onnx"),
        "--calibration",
        str(pipeline / "calib.json"),
        "--recipe",
        "mueller2021",
        "--out",
        str(fresh),
    )
    assert code == 0
    code, _, err = cli("energy-report", str(fresh))
    assert "snnconvert simulate" in _one_line_error(code, err)


def test_cli_process_prints_no_traceback(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_text("this is not onnx")
    r = subprocess.run(
        [sys.executable, "-m", "snnconvert", "inspect", str(bad)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr and "x.onnx" in r.stderr
    assert Path(bad).exists()


def test_example_into_the_current_directory_keeps_what_is_there(tmp_path, monkeypatch):
    """`snnconvert example .` once failed ('cannot write (Device or resource busy)'): the directory
    was replaced whole, which the working directory cannot be. An existing directory now gets each
    file written whole and nothing else touched."""
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "model.onnx").write_bytes(b"old")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("example", ".")
    assert code == 0, err
    assert (tmp_path / "notes.txt").read_text() == "mine"
    from importlib import resources

    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.npz", "model.onnx", "notes.txt", "test.npz"]
    shipped = (resources.files("snnconvert") / "zoo" / "digits_vit.onnx").read_bytes()
    assert (tmp_path / "model.onnx").read_bytes() == shipped
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_simulate_progress_knows_its_total_before_the_first_step(pipeline, tmp_path):
    """The bar once read '0/0' during setup and counted samples against a total of 0: the total
    (samples to simulate) is set before any is counted, and the counts add up to it."""
    import shutil

    from snnconvert.api import run_simulation

    d = pipeline
    snn = shutil.copytree(d / "snn", tmp_path / "snn")  # simulate writes into its SNN directory
    calls = []
    run_simulation(
        snn, d / "ex" / "test.npz", 2, out=tmp_path / "r.json", batch_size=40, samples=SAMPLES,
        progress=lambda k, total=None: calls.append((k, total)),
    )  # fmt: skip
    assert calls[0] == (0, SAMPLES)
    # it moves within a batch too (the ANN, each chunk of steps, the limit run), ending at the total
    assert sum(k for k, _ in calls) == pytest.approx(SAMPLES)
    assert len(calls) > 1 + 2 * -(-SAMPLES // 40)


def test_simulate_says_where_its_time_went(pipeline, tmp_path):
    """execution.seconds: loading, the ANN reference, which entries reach the output (asked for or
    not), the SNN's steps, per-layer fidelity and the limit run, each measured, within the total it
    reports and within this test's own clock."""
    import shutil
    import time

    from snnconvert.api import run_simulation
    from snnconvert.ir.serialize import load_graph

    snn = shutil.copytree(pipeline / "snn", tmp_path / "snn")
    t0 = time.perf_counter()
    j = run_simulation(snn, pipeline / "ex" / "test.npz", 3, batch_size=16, samples=SAMPLES)
    wall = time.perf_counter() - t0
    sec = j["execution"]["seconds"]
    phases = ("load", "ann_reference", "reaching", "snn_steps", "layer_fidelity", "limit_run")
    assert set(sec) == {*phases, "total"}
    # (one image input, no mask: which entries reach the output is not measured by default)
    assert all(sec[k] > 0 for k in phases if k != "reaching") and sec["reaching"] == 0.0
    assert all(r["reaching_share"] is None and r["cosine_reaching"] is None for r in j["layers"])
    assert sum(sec[k] for k in phases) <= sec["total"] + 3e-3 <= wall + 4e-3  # (rounded to 1 ms)
    # and the SNN steps by op type: the graph's own ops, the neurons among them, within the steps
    by_op = j["execution"]["snn_steps_by_op"]
    assert set(by_op) <= {n.op for n in load_graph(snn).nodes} and by_op["IF"] > 0
    assert sum(by_op.values()) <= sec["snn_steps"] + 0.02
    # written beside the result, which stays the same bytes from run to run
    stored = json.loads((snn / "simulation.json").read_text())
    assert "seconds" not in stored["execution"] and "snn_steps_by_op" not in stored["execution"]
    timing = json.loads((snn / "simulation_timing.json").read_text())
    assert timing == {"seconds": sec, "snn_steps_by_op": by_op}
