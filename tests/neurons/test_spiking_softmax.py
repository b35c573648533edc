"""Spiking-Softmax wired in: the IR op against a numpy step-by-step reference, the calibrated range,
the pass, the simulator's record of the spikes inside, and their energy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnconvert.calibrate.file import Calibration
from snnconvert.calibrate.observe import calibrate, shifted_key
from snnconvert.data.files import Dataset
from snnconvert.energy.count import count_nodes
from snnconvert.errors import GraphError
from snnconvert.ir.build import GraphBuilder
from snnconvert.ir.execute import Executor
from snnconvert.ir.registry import run_op
from snnconvert.ir.serialize import load_graph, save_graph
from snnconvert.ir.validate import validate
from snnconvert.neurons.fewspike import covering_table, si_norm, si_norm_counts, table_entry
from snnconvert.passes import PassContext, run_pass
from snnconvert.passes.softmax import fraction_below
from snnconvert.passes.spikify import assign_domains
from snnconvert.sim.simulator import Simulator, internal_key
from tools.fit_siexp import siexp_numpy


def _numpy_spiking_softmax(x: np.ndarray, entry: dict, n_spike: int, v0: float):
    """Independent reference along the last axis: numpy SI-exp recurrence, SI-norm stepped in time."""
    xs = x - x.max(axis=-1, keepdims=True)
    lo = float(entry["range"][0])
    e = siexp_numpy(xs.ravel(), entry["T"], entry["h"], entry["d"], lo).reshape(x.shape)
    vth = e.sum(axis=-1, keepdims=True)
    v = v0 * vth * np.ones_like(e)
    count = np.zeros(e.shape, dtype=np.int64)
    for _ in range(n_spike):
        v = v + e
        z = v >= vth
        v = v - vth * z
        count += z
    return count / n_spike, e


def _attrs(entry: dict, n_spike: int = 64, v0: float = 0.5) -> dict:
    return {
        "axis": -1,
        "n_spike": n_spike,
        "v0": v0,
        "lo": float(entry["range"][0]),
        "T": list(entry["T"]),
        "h": list(entry["h"]),
        "d": list(entry["d"]),
    }


@pytest.mark.parametrize("v0", [0.0, 0.5])
@pytest.mark.parametrize("n_spike", [1, 7, 64])
def test_si_norm_closed_form_equals_step_by_step(v0, n_spike):
    g = torch.Generator().manual_seed(n_spike)
    e = torch.rand((300, 13), generator=g, dtype=torch.float64) ** 3  # uneven rows, some tiny weights
    e[0] = 0.0  # a silent row never fires
    stepped = si_norm(e, dim=-1, n_spike=n_spike, v0=v0)
    closed = si_norm_counts(e, dim=-1, n_spike=n_spike, v0=v0)
    diff = (stepped.double() - closed).abs()
    assert float(diff.max()) <= 1.0  # only float rounding at an exact threshold may differ
    assert float((diff == 0).double().mean()) >= 0.999
    assert int(stepped[0].sum()) == 0 and int(closed[0].sum()) == 0
    assert int(closed.max()) <= n_spike


@pytest.mark.parametrize("K,R", [(8, 4.0), (12, 8.0), (16, 2.0)])
def test_op_matches_numpy_reference(K, R):
    entry = table_entry(K, R)
    rng = np.random.default_rng(K)
    x = rng.normal(scale=R / 6, size=(3, 4, 9, 17))  # rows mostly within the table's range
    probs = run_op("SpikingSoftmax", _attrs(entry, 64, 0.0), [torch.from_numpy(x)])[0].numpy()
    ref, e = _numpy_spiking_softmax(x, entry, 64, 0.0)
    assert float(np.mean(probs == ref)) >= 0.999
    assert float(np.max(np.abs(probs - ref))) <= 1 / 64 + 1e-12
    # what the op approximates: |probs - softmax| within quantisation + the exp fit's error
    sm = torch.softmax(torch.from_numpy(x), -1).numpy()
    assert float(np.mean((probs - sm) ** 2)) < 1e-3


def test_op_events_count_spikes_inside():
    from snnconvert.ir.registry import get

    entry = table_entry(12, 8.0)
    x = torch.randn(5, 3, 11, dtype=torch.float64)
    a = get("SpikingSoftmax").with_defaults(_attrs(entry))
    probs, ev = get("SpikingSoftmax").events(a, x)
    assert torch.equal(probs, run_op("SpikingSoftmax", a, [x])[0])
    xs = (x - x.amax(-1, keepdim=True)).numpy().ravel()
    lo = entry["range"][0]
    # SI-exp spikes: replay the recurrence and count the steps that fire
    v, n = xs.copy(), np.zeros_like(xs)
    for t in range(12):
        z = (v >= entry["T"][t]) & (xs >= lo)
        v = v - entry["h"][t] * z
        n += z
    np.testing.assert_array_equal(ev["siexp"].numpy().ravel(), n)
    np.testing.assert_array_equal(ev["sinorm"].numpy(), (probs * 64).round().numpy())


def _softmax_graph(width=6, tokens=5):
    """x [N, tokens, width] -> Linear -> Relu -> scores = h @ h^T / sqrt(width) -> Softmax -> @ h."""
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.input("x", (tokens, width))
    w = b.const("w", (rng.normal(size=(width, width)) / np.sqrt(width)).astype(np.float32))
    bias = b.const("b", np.full(width, 0.2, np.float32))
    h = b.node("Linear", [x, w, bias], name="fc")
    r = b.node("Relu", [h], name="relu")
    t = b.node("Transpose", [r], {"perm": [1, 0]}, name="tr")
    s = b.node("MatMul", [r, t], name="qk")
    c = b.const("c", np.asarray(0.2, np.float32))
    s2 = b.node("Mul", [s, c], name="scale")
    p = b.node("Softmax", [s2], {"axis": -1}, name="sm")
    o = b.node("MatMul", [p, r], name="av")
    return b.output(o)


def _calibration(g, n=200, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 5, 6)).astype(np.float32)
    sk = calibrate(g, Dataset({"x": x}, None, "synthetic.npz"), batch_size=64)
    return Calibration("h", sk), x


def test_calibration_records_row_max_shifted_scores():
    g = _softmax_graph()
    cal, x = _calibration(g)
    key = shifted_key("sm")
    assert key in cal.sketches
    scores = Executor(g).run({"x": x}, keep={"scale"})["scale"].numpy().astype(np.float64)
    shifted = scores - scores.max(-1, keepdims=True)
    s = cal.sketches[key]
    assert s.count == shifted.size and s.max == 0.0
    for p in (0.1, 1.0, 10.0, 50.0):
        # between the two order statistics around rank p, widened by the sketch's relative error (0.5 %)
        a = float(np.percentile(shifted, p, method="lower"))
        b = float(np.percentile(shifted, p, method="higher"))
        v = float(s.percentile(p))
        assert min(a, b) * 1.011 - 1e-9 <= v <= max(a, b) * 0.989 + 1e-9, (p, a, b, v)
    # fraction_below inverts the percentile to the sketch's accuracy
    thr = float(np.percentile(shifted, 5.0))
    assert fraction_below(s, thr) == pytest.approx(float(np.mean(shifted < thr)), abs=0.01)


def test_pass_picks_smallest_table_covering_the_calibrated_range():
    g = _softmax_graph()
    cal, _ = _calibration(g)
    ctx = PassContext(calibration=cal)
    g2 = run_pass("softmax_to_spiking", g, {"K": 12, "coverage": 99.0}, ctx)
    n = next(n for n in g2.nodes if n.name == "sm")
    assert n.op == "SpikingSoftmax"
    R = -float(cal.sketches[shifted_key("sm")].percentile(1.0))
    lo = n.attrs["lo"]
    ranges = sorted(-e["range"][0] for e in _k12_tables())
    assert -lo == min(r for r in ranges if r >= R)
    info = g2.meta["spiking_softmax"]["sm"]
    assert info["range_needed"] == pytest.approx(R) and info["table_range"] == [lo, 0.0]
    validate(g2)
    assign_domains(g2, "rate")
    assert g2.values["sm"].domain == "analog"  # its outer-frame output is a decoded increment


def _k12_tables():
    from snnconvert.neurons.fewspike import load_tables

    return [e for e in load_tables()["tables"] if e["K"] == 12 and e["range"][1] == 0.0]


def test_pass_explicit_range_and_errors(tmp_path):
    g = _softmax_graph()
    with pytest.raises(GraphError, match="'sm'.*calibration file is required"):
        run_pass("softmax_to_spiking", g, {}, PassContext())
    g2 = run_pass("softmax_to_spiking", g, {"range": 3.0, "K": 8, "n_spike": 32}, PassContext())
    n = next(n for n in g2.nodes if n.name == "sm")
    assert n.attrs["lo"] == -4.0 and len(n.attrs["T"]) == 8 and n.attrs["n_spike"] == 32
    ctx = PassContext()
    run_pass("softmax_to_spiking", g, {"range": 100.0}, ctx)
    assert any("wider than the widest" in note for note in ctx.notes)
    entry, covered = covering_table(12, 100.0)
    assert not covered and entry["range"][0] == -16.0
    # the attributes survive save/load and the loaded graph computes the same
    (tmp_path / "g").mkdir()
    save_graph(g2, tmp_path / "g")
    g3 = load_graph(tmp_path / "g")
    x = np.random.default_rng(1).normal(size=(4, 5, 6)).astype(np.float32)
    a = Executor(g2).run({"x": x})[g2.outputs[0]]
    b = Executor(g3).run({"x": x})[g3.outputs[0]]
    assert torch.equal(a, b)


def _converted(v0=0.5):
    g = _softmax_graph()
    cal, x = _calibration(g)
    ctx = PassContext(calibration=cal)
    for name, params in (
        ("normalize", {"percentile": 99.9}),
        ("relu_to_if", {"v0": 0.5}),
        ("softmax_to_spiking", {"K": 12, "v0": v0}),
    ):
        g = run_pass(name, g, params, ctx)
    g.meta["coding"] = "rate"
    assign_domains(g, "rate")
    return g, x


def test_simulator_runs_spiking_softmax_on_decoded_input_and_records_its_spikes():
    g, x = _converted()
    sim = Simulator(g)
    T = 6
    record: dict[str, torch.Tensor] = {}
    seen = {}
    outs = sim.run_chunk({"x": x[:16]}, 0, T, {}, record=record, keep={"scale"}, observe=seen.__setitem__)
    dec_in, _ = sim.decode(seen["scale"], 0, T, None)  # decoded softmax input at each step
    dec_out, _ = sim.decode(seen["sm"], 0, T, None)
    node = next(n for n in g.nodes if n.name == "sm")
    ref_sum = {"siexp": 0.0, "sinorm": 0.0}
    for t in range(T):
        p_ref, ev = _numpy_spiking_softmax(dec_in[t].double().numpy(), _entry_of(node), 64, 0.5)
        np.testing.assert_allclose(dec_out[t].numpy(), p_ref, atol=1e-5)  # mean mode: f(decoded input)
        _, evd = run_op_events(node, dec_in[t])
        for k in ref_sum:
            ref_sum[k] += float(evd[k].sum())
    for k in ("siexp", "sinorm"):
        assert float(record[internal_key("sm", k)].sum()) == pytest.approx(ref_sum[k], rel=1e-6)
    assert "av" in outs


def _entry_of(node):
    return {
        "range": [node.attrs["lo"], 0.0],
        "T": node.attrs["T"],
        "h": node.attrs["h"],
        "d": node.attrs["d"],
    }


def run_op_events(node, x):
    from snnconvert.ir.registry import get

    op = get(node.op)
    return op.events(op.with_defaults(node.attrs), x)


def test_energy_counts_spiking_softmax_from_its_spikes():
    g, x = _converted()
    T, B = 5, 8
    record: dict[str, torch.Tensor] = {}
    static: dict[str, bool] = {}
    Simulator(g).run_chunk(
        {"x": x[:B]}, 0, T, {}, record=record, observe=lambda n, s: static.__setitem__(n, s.static)
    )
    events = {k: (v / B).numpy() for k, v in record.items()}
    rows = {r.name: r for r in count_nodes(g, events, static, T)}
    r = rows["sm"]
    N = 5 * 5  # elements per sample
    siexp = float(events[internal_key("sm", "siexp")].sum())
    sinorm = float(events[internal_key("sm", "sinorm")].sum())
    assert r.internal and r.executions == T and not static["sm"]
    assert r.snn_acs == pytest.approx(siexp + 64 * N * T)
    assert r.other["cmp"] == pytest.approx(N * (1 + 12 + 64) * T)
    assert r.other["add"] == pytest.approx(2 * N * T + siexp + sinorm)
    assert r.snn_macs == 0.0


def test_rows_without_new_input_events_are_not_reevaluated():
    from snnconvert.ir.registry import get

    entry = table_entry(12, 8.0)
    op = get("SpikingSoftmax")
    a = op.with_defaults(_attrs(entry))
    x = torch.randn(4, 3, 7, dtype=torch.float64)
    changed = torch.zeros_like(x, dtype=torch.bool)
    changed[0, 1, 3] = True  # one input of one row received an event
    changed[2, :, 0] = True  # one input in each row of sample 2
    probs, ev = op.events(a, x, changed=changed)
    _, ev_all = op.events(a, x)
    rows_run = changed.any(-1)  # [4, 3]
    assert int(rows_run.sum()) == 4
    assert torch.equal(ev["evaluations"].sum(-1), rows_run.double() * 7)
    for k in ("siexp", "sinorm"):
        assert torch.equal(ev[k][rows_run], ev_all[k][rows_run])
        assert float(ev[k][~rows_run].abs().sum()) == 0.0
    assert torch.equal(probs, run_op("SpikingSoftmax", a, [x])[0])  # the output itself is unchanged
