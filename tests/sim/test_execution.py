"""How simulate runs must not change what it finds: time chunks, batch sizes and processes give the
same result; the memory plan fits its budget or refuses before any work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import run_cli

from snnconvert.errors import InputError
from snnconvert.sim.budget import MAX_CHUNK, Footprint, parse_budget, plan

T = 6
SAMPLES = 24


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The built-in ViT converted with mueller2021 (rate) and spikezip_count (count)."""
    from snnconvert.api import run_calibration, run_conversion, write_example

    d = tmp_path_factory.mktemp("execution")
    write_example(d / "ex")
    run_calibration(d / "ex/model.onnx", d / "ex/calib.npz", d / "calib.json", samples=64)
    for recipe in ("mueller2021", "spikezip_count"):  # no portable artefact: not what is tested here
        run_conversion(d / "ex/model.onnx", d / "calib.json", recipe, d / recipe, portable=False)
    return d


def _run(example, recipe: str, **kw):
    from snnconvert.api import load_snn
    from snnconvert.data.files import load_dataset
    from snnconvert.sim.run import result_json, simulate

    snn, ann = load_snn(example / recipe)
    res = simulate(snn, ann, load_dataset(example / "ex/test.npz", snn), T, samples=SAMPLES, **kw)
    j = result_json(res, snn)
    return j, j.pop("execution"), res.events


@pytest.mark.parametrize("recipe", ["mueller2021", "spikezip_count"])
def test_time_chunks_and_batches_do_not_change_the_result(example, recipe):
    """Running totals are summed step after step whatever the chunk, so spikes are the same; the
    fidelity sums differ only by float32 reduction order over a different batch (1e-6)."""
    ref, how, ev = _run(example, recipe, time_chunk=T, batch_size=SAMPLES)
    assert how["time_chunk"] == T and how["batch_size"] == SAMPLES
    for chunk, batch in ((1, SAMPLES), (4, 7)):
        got, how, ev2 = _run(example, recipe, time_chunk=chunk, batch_size=batch)
        assert (how["time_chunk"], how["batch_size"]) == (chunk, batch)
        assert got["snn_accuracy"] == ref["snn_accuracy"] and got["agreement"] == ref["agreement"]
        for k in ev:
            assert torch.equal(ev[k], ev2[k]), k  # the same spikes, element by element
        np.testing.assert_allclose(got["cosine"], ref["cosine"], rtol=1e-6, atol=1e-7)
        for a, b in zip(got["layers"], ref["layers"], strict=True):
            assert a["spikes"] == b["spikes"], a["name"]
            assert a["cosine"] == pytest.approx(b["cosine"], abs=1e-6), a["name"]


@pytest.mark.parametrize("recipe", ["mueller2021", "spikezip_count"])
def test_limit_and_centred_cosines_are_numpys(example, recipe):
    """limit_cosine / limit_rel_error: the converted graph with every neuron settled (the neuron ops
    run as what they converge to) against the ANN, over all output entries, by numpy (1e-5); the
    centred cosines (less the ANN's mean over all samples) of the limit and of the SNN at T, and
    the ANN output's sample-dependent share, likewise; the same through batches of 7 (the centring
    is exact from running sums, not a per-batch mean)."""
    from snnconvert.api import load_snn
    from snnconvert.data.files import load_dataset
    from snnconvert.ir.execute import run_graph

    snn, ann = load_snn(example / recipe)
    _, feeds, _ = next(load_dataset(example / "ex/test.npz", snn).batches(SAMPLES))
    s = run_graph(snn, feeds)[snn.outputs[0]].numpy().astype(np.float64).ravel()
    a = run_graph(ann, feeds)[ann.outputs[0]].numpy().astype(np.float64).ravel()
    cos = s @ a / np.sqrt((s @ s) * (a @ a))
    rel = np.linalg.norm(s - a) / np.linalg.norm(a)
    # centred: both outputs less the ANN's mean over all samples (per output position)
    from snnconvert.ir.execute import sample_rows
    from snnconvert.sim.simulator import Simulator

    sim = Simulator(snn)
    dec, _ = sim.decode(sim.run_chunk(feeds, 0, T, {})[snn.outputs[0]], 0, T, None)
    snn_t = sample_rows(snn, snn.outputs[0], dec, lead=2)[-1].numpy().astype(np.float64)
    a2 = a.reshape(SAMPLES, -1)
    mu = a2.mean(0)

    def ccos(x):
        x, y = x.reshape(SAMPLES, -1) - mu, a2 - mu
        return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))

    share = ((a2 - mu) ** 2).sum() / (a2**2).sum()
    for batch in (SAMPLES, 7):
        j, _, _ = _run(example, recipe, batch_size=batch)
        assert j["limit_cosine"] == pytest.approx(cos, abs=1e-5)
        assert j["limit_rel_error"] == pytest.approx(rel, rel=1e-4, abs=1e-6)
        assert j["limit_cosine_centred"] == pytest.approx(ccos(s), abs=1e-5)
        assert j["cosine_centred"] == pytest.approx(ccos(snn_t), abs=1e-5)
        assert j["output_sample_share"] == pytest.approx(share, rel=1e-5)


def test_plan_halves_the_batch_then_the_chunk_until_it_fits():
    fp = Footprint(fixed=100, per_sample=10, per_step=1)  # bytes: 100 + 10 B + B * chunk
    p = plan(fp, samples=1000, batch_size=64, timesteps=50, budget=100 + 64 * 10 + 64 * MAX_CHUNK)
    assert (p.batch, p.chunk) == (64, MAX_CHUNK)  # fits as asked
    p = plan(fp, samples=1000, batch_size=64, timesteps=50, budget=100 + 8 * 10 + 8 * MAX_CHUNK)
    assert (p.batch, p.chunk) == (8, MAX_CHUNK) and p.estimate <= p.budget
    p = plan(fp, samples=1000, batch_size=64, timesteps=50, budget=100 + 10 + 4)
    assert (p.batch, p.chunk) == (1, 4)
    assert plan(fp, 1000, 64, 3, 10**9).chunk == 3  # never more steps than asked for
    with pytest.raises(InputError, match="too small for this model"):
        plan(fp, 1000, 64, 50, 100 + 10)


def test_the_reaching_pass_runs_only_where_it_fits_beside_the_kept_ann_values():
    """Keeping the ANN's values needs need + B * ann_kept; the gradient pass that finds the entries
    reaching the output needs fixed + B * (ann_kept + reaching), before the SNN's state exists."""
    fp = Footprint(fixed=100, per_sample=10, per_step=1, ann_kept=20, reaching=50)
    need = 100 + 4 * 10 + 4 * 16  # batch 4, chunk 16
    p = plan(fp, samples=4, batch_size=4, timesteps=16, budget=need + 4 * 20)
    assert p.keep_ann and not p.reaching_fits  # 284 B: the values fit, the pass (380 B) does not
    p = plan(fp, samples=4, batch_size=4, timesteps=16, budget=100 + 4 * 70)
    assert p.keep_ann and p.reaching_fits
    p = plan(fp, samples=4, batch_size=4, timesteps=16, budget=100 + 4 * 70 - 1)
    assert p.keep_ann and not p.reaching_fits
    p = plan(fp, samples=4, batch_size=4, timesteps=16, budget=need)
    assert not p.keep_ann and not p.reaching_fits


def test_the_plan_does_not_grow_with_T(example):
    """The chunk is capped, so the planned memory at T = 400 is that at T = 50 (the per-step
    metrics, a few floats a step, are all that grows)."""
    from snnconvert.api import load_snn
    from snnconvert.data.files import load_dataset
    from snnconvert.sim.run import simulate

    snn, ann = load_snn(example / "mueller2021")
    ds = load_dataset(example / "ex/test.npz", snn)
    plans = [simulate(snn, ann, ds, t, samples=2).plan for t in (50, 400)]
    assert plans[0].chunk == plans[1].chunk == MAX_CHUNK
    assert abs(plans[0].estimate - plans[1].estimate) < 0.05 * plans[0].estimate  # the RSS baseline moves


@pytest.mark.parametrize(
    "text,expect",
    [
        ("6G", 6 * 2**30),
        ("512M", 512 * 2**20),
        ("2.5GB", int(2.5 * 2**30)),
        ("8GiB", 8 * 2**30),
        ("1000", 1000),
    ],
)
def test_budget_sizes(text, expect):
    assert parse_budget(text) == expect


@pytest.mark.parametrize("text", ["", "abc", "-1G", "0", "5X"])
def test_bad_budget_is_a_one_line_error(text):
    with pytest.raises(InputError, match="--memory-budget"):
        parse_budget(text)


def test_a_budget_too_small_fails_before_any_work(example, tmp_path):
    snn = shutil.copytree(example / "mueller2021", tmp_path / "snn")
    code, _, err = run_cli(
        "simulate", snn, "--data", example / "ex/test.npz", "-T", 4, "--memory-budget", "1M"
    )
    assert code != 0 and "--memory-budget" in err and "too small" in err
    assert len(err.strip().splitlines()) == 1
    assert not (snn / "simulation.json").exists() and not (snn / "events.npz").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_gives_the_cpu_result(example):
    """--device cuda: the same accuracies, and fidelity within float32 kernel differences."""
    cpu, _, _ = _run(example, "mueller2021")
    gpu, _, _ = _run(example, "mueller2021", device="cuda")
    assert abs(gpu["snn_accuracy"][-1] - cpu["snn_accuracy"][-1]) <= 2 / SAMPLES
    np.testing.assert_allclose(gpu["cosine"], cpu["cosine"], atol=2e-3)


def test_two_torchrun_processes_give_the_one_process_json(example, tmp_path):
    """gloo, 2 processes, each simulating every other batch: the merged JSON equals one process's
    (per-batch sums are gathered and added in batch order; event counts are integers)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same kernels in every process
    env.pop("WORLD_SIZE", None)
    outs = []
    for launcher in (
        [sys.executable, "-m", "snnconvert"],
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "snnconvert",
        ],
    ):
        snn = shutil.copytree(example / "mueller2021", tmp_path / f"snn{len(outs)}")
        out = tmp_path / f"r{len(outs)}.json"
        args = ["simulate", str(snn), "--data", str(example / "ex/test.npz"), "-T", str(T)]
        args += ["--samples", str(SAMPLES), "--batch-size", "12", "--out", str(out)]
        r = subprocess.run(launcher + args, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        j = json.loads(out.read_text())
        outs.append((j.pop("execution"), j, np.load(snn / "events.npz")))
    (how1, one, ev1), (how2, two, ev2) = outs
    assert how1["processes"] == 1 and how2["processes"] == 2
    assert one == two
    assert sorted(ev1.files) == sorted(ev2.files)
    for k in ev1.files:
        np.testing.assert_array_equal(ev1[k], ev2[k])
