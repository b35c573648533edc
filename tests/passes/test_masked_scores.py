"""Attention masks under the fully spiking recipe: calibration counts the masked entries (scores
plus -inf, or plus finfo.min as Hugging Face writes them) and leaves them out of the statistics;
spike_all leaves the masked scores analog, and the count-coded SNN's softmax puts exact zeros on
the masked keys at every step. Reference: numpy's masked softmax of the same scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import calibration_of, converted

from snnconvert.calibrate.file import Calibration, load_calibration
from snnconvert.calibrate.observe import calibrate
from snnconvert.data.files import Dataset
from snnconvert.ir.build import GraphBuilder
from snnconvert.ir.execute import run_graph
from snnconvert.sim.simulator import Simulator

N_TOK, D = 5, 8


def masked_attention(fill: float):
    """probs = softmax(x Wq (x Wk)^T + where(pad, fill, 0)) over the keys, for one sample [5, 8]."""
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    x = b.input("x", (N_TOK, D))
    pad = b.input("pad", (N_TOK,), dtype="bool")
    q = b.node("MatMul", [x, b.const("wq", rng.normal(size=(D, D)).astype(np.float32) / 3)])
    k = b.node("MatMul", [x, b.const("wk", rng.normal(size=(D, D)).astype(np.float32) / 3)])
    s = b.node("MatMul", [q, b.node("Transpose", [k], {"perm": [1, 0]})], name="scores")
    m = b.node("Where", [pad, b.const("fill", np.float32(fill)), b.const("zero", np.float32(0))], name="mask")
    a = b.node("Add", [s, m], name="masked")
    p = b.node("Softmax", [a], {"axis": -1}, name="probs")
    return b.output(p)


def data(n=64, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_TOK, D)).astype(np.float32)
    pad = np.zeros((n, N_TOK), dtype=bool)
    pad[:, 3:] = rng.random((n, 2)) < 0.7  # the last two keys padded in most samples
    return {"x": x, "pad": pad}


def numpy_probs(g, d):
    x = d["x"].astype(np.float64)
    q, k = x @ g.initializers["wq"], x @ g.initializers["wk"]
    s = q @ k.transpose(0, 2, 1)
    s = np.where(d["pad"][:, None, :], -np.inf, s)
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("fill", [-np.inf, np.finfo(np.float32).min])
def test_calibration_counts_masked_entries_and_keeps_them_out_of_the_sketch(fill, tmp_path):
    g = masked_attention(fill)
    d = data()
    masked: dict[str, int] = {}
    sk = calibrate(g, Dataset(d, None, "mem"), batch_size=16, masked=masked)
    n_pad = int(d["pad"].sum())
    assert masked["masked"] == n_pad * N_TOK  # each padded key is masked for every query row
    assert "scores" not in masked and "probs" not in masked
    assert sk["masked"].min > -1e6  # the sketch holds the scores, not the fill value
    assert sk["masked"].count == 64 * N_TOK * N_TOK - n_pad * N_TOK
    cal = Calibration("h", sk, masked=masked)
    cal.save(tmp_path / "c.json")
    assert json.loads((tmp_path / "c.json").read_text())["tensors"]["masked"]["masked"] == n_pad * N_TOK
    assert load_calibration(tmp_path / "c.json").masked == masked


@pytest.mark.parametrize("fill", [-np.inf, np.finfo(np.float32).min])
def test_fully_spiking_keeps_masked_scores_analog_and_masked_keys_exactly_zero(fill):
    g = masked_attention(fill)
    d = data()
    cal = calibration_of(g, d, batch_size=16)
    s, notes = converted(g, cal, [("spike_all", {"levels": 16, "percentile": 99.9})], "count")
    neurons_on = {n.inputs[0] for n in s.nodes if n.op == "IF"}
    assert "scores_pre" in neurons_on  # the unmasked scores spike
    assert not any(v.startswith("masked") for v in neurons_on)  # the masked sum does not
    assert any("masked tensor" in note for note in notes)
    T = 48
    feeds = {k: torch.from_numpy(v) for k, v in d.items()}
    sim = Simulator(s)
    dec, _ = sim.decode(sim.run_chunk(feeds, 0, T, {})[s.outputs[0]], 0, T, None)  # [T, B, 5, 5]
    assert torch.isfinite(dec).all()
    padded = torch.from_numpy(d["pad"])[:, None, :].expand(-1, N_TOK, -1)
    for t in range(T):
        assert (dec[t][padded] == 0).all(), t  # masked keys: exact zeros from the first step on
    # settled on the quantised ANN (the converted graph run as a network), masked zeros included
    limit = run_graph(s, feeds)[s.outputs[0]]
    assert torch.allclose(dec[-1], limit, atol=1e-5), float((dec[-1] - limit).abs().max())
    # and near the float64 masked softmax (q, k and the scores quantised to 16 levels)
    err = np.abs(dec[-1].numpy() - numpy_probs(g, d))
    assert err.mean() < 0.04 and err.max() < 0.3, (err.mean(), err.max())  # measured 0.022, 0.23


@pytest.mark.parametrize("fill", [-np.inf, np.finfo(np.float32).min])
def test_layer_fidelity_is_measured_over_the_unmasked_entries(fill):
    """A masked tensor's fidelity: float32 products of finfo.min overflow (and -inf * -inf is inf),
    which made its cosine NaN or 0; masked entries hold no data and are left out."""
    from snnconvert.sim.run import _Fid, fid_sums

    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 5, 5)).astype(np.float32)
    s = a + 0.1 * rng.normal(size=a.shape).astype(np.float32)
    hole = rng.random(a.shape) < 0.3
    a[hole] = s[hole] = fill
    f = _Fid()
    f.absorb(fid_sums(torch.from_numpy(s), torch.from_numpy(a)))
    sv, av = s[~hole].astype(np.float64), a[~hole].astype(np.float64)
    ref = float(sv @ av / np.sqrt((sv @ sv) * (av @ av)))  # numpy over the data entries only
    assert abs(f.cosine() - ref) < 1e-6, (f.cosine(), ref)
    assert abs(f.rel_error() - np.linalg.norm(sv - av) / np.linalg.norm(av)) < 1e-6
