"""SI-exp few-spike neuron, SI-norm and Spiking-Softmax (SIT 2024), against exact references."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from snnconvert.errors import InputError
from snnconvert.neurons.fewspike import FewSpikeExp, load_tables, si_norm, spiking_softmax, table_entry
from tools.fit_siexp import (
    N_EVAL,
    BatchObjective,
    bounds,
    de_init,
    differential_evolution,
    eval_grid,
    search_points,
    siexp_numpy,
)

KS = (8, 12, 16)
RS = (1.0, 2.0, 4.0, 8.0, 16.0)

# What the shipped fit achieved (exp RMSE, 10,000 evenly spaced points of the range), K = 12.
# The target was <= 0.0015; it is not reached on any range (see ACHIEVED_0015 below).
ACHIEVED_K12 = {1.0: 0.0026276, 2.0: 0.0048442, 4.0: 0.0062370, 8.0: 0.0048010, 16.0: 0.0044279}
ACHIEVED_0015: set[float] = set()  # ranges R where K=12 reaches RMSE <= 0.0015
# our team's earlier surrogate-gradient fit at K = 12, which the shipped tables must beat
NAIVE_K12 = {1.0: 0.0036, 4.0: 0.010, 8.0: 0.011}

# Spiking-Softmax check: 16-token rows of N(0, SCORE_STD^2) scores, K = 12, R = 8 table, N_SPIKE input spikes
SCORE_STD = 2.0
N_SPIKE = 64


def _entries():
    return load_tables()["tables"]


def _entry(K: int, lo: float, hi: float = 0.0):
    for e in _entries():
        if e["K"] == K and e["range"] == [lo, hi]:
            return e
    raise AssertionError(f"no table K={K} range=[{lo}, {hi}]")


def test_tables_cover_every_k_and_range():
    doc = load_tables()
    assert doc["format"].startswith("snnconvert-siexp-tables/")
    have = {(e["K"], tuple(e["range"])) for e in doc["tables"]}
    for K in KS:
        for R in RS:
            assert (K, (-R, 0.0)) in have
        assert (K, (-1.0, 1.0)) in have  # the paper's range, for comparison
    for e in doc["tables"]:
        assert len(e["T"]) == len(e["h"]) == len(e["d"]) == e["K"]
        assert all(math.isfinite(v) for v in e["T"] + e["h"] + e["d"])
        assert e["command"].startswith("python -m tools.fit_siexp")
        assert isinstance(e["seed"], int)
        assert e["min_output"] >= -1e-12  # y ~ exp(x) >= 0: SI-norm weights


@pytest.mark.parametrize("K", KS)
def test_recorded_rmse_reproduced_by_module_and_numpy(K):
    for e in [e for e in _entries() if e["K"] == K]:
        lo, hi = e["range"]
        x = eval_grid(lo, hi)
        assert x.size == N_EVAL == 10_000
        mod = FewSpikeExp.from_entry(e)
        y_t, spikes = mod(torch.from_numpy(x))
        y_n = siexp_numpy(x, e["T"], e["h"], e["d"], lo)
        assert y_t.dtype == torch.float64
        np.testing.assert_array_equal(y_t.numpy(), y_n)  # exactly the same recurrence
        rmse = float(np.sqrt(np.mean((y_n - np.exp(x)) ** 2)))
        assert rmse == pytest.approx(e["rmse"], rel=1e-9, abs=1e-12)
        assert e["rmse_dense"] == pytest.approx(e["rmse"], rel=0.05)  # no grid exploitation
        assert int(spikes.max()) <= K and int(spikes.min()) >= 0


def test_k12_quality_is_what_was_achieved():
    for R in RS:
        e = _entry(12, -R)
        assert e["rmse"] <= ACHIEVED_K12[R] * (1 + 1e-6), (R, e["rmse"])
        assert (e["rmse"] <= 0.0015) == (R in ACHIEVED_0015)
    for R, naive in NAIVE_K12.items():
        assert _entry(12, -R)["rmse"] < naive


def test_more_steps_never_worse():
    for lo, hi in [(-R, 0.0) for R in RS] + [(-1.0, 1.0)]:
        r = [_entry(K, lo, hi)["rmse"] for K in KS]
        assert r[0] >= r[1] >= r[2], (lo, hi, r)


def test_from_table_picks_smallest_covering_range():
    assert FewSpikeExp.from_table(12, 3.0).R == 4.0
    assert FewSpikeExp.from_table(12, 4.0).R == 4.0
    assert FewSpikeExp.from_table(8, 0.25).R == 1.0
    assert FewSpikeExp.from_table(16, 16).R == 16.0
    assert table_entry(12, 8)["range"] == [-8.0, 0.0]
    with pytest.raises(InputError):
        FewSpikeExp.from_table(12, 17.0)
    with pytest.raises(InputError):
        FewSpikeExp.from_table(5, 1.0)
    with pytest.raises(InputError):
        FewSpikeExp.from_table(12, -1.0)


def test_underflow_below_range_gives_zero():
    for R in (1.0, 4.0):
        mod = FewSpikeExp.from_table(12, R)
        x = torch.tensor(
            [-R - 1e-6, -R - 1.0, -1e9, float("-inf"), float("nan"), -R, 0.0], dtype=torch.float64
        )
        y, n = mod(x)
        assert y[:5].tolist() == [0.0] * 5 and n[:5].tolist() == [0] * 5
        err = table_entry(12, R)["max_abs_err"]  # the largest error on the fit grid, x = -R and 0 included
        assert y[5] == pytest.approx(math.exp(-R), abs=err) and y[5] > 0
        assert y[6] == pytest.approx(1.0, abs=err)
    # no clamp above 0: the recurrence still runs (callers guarantee x <= 0)
    y_pos, _ = FewSpikeExp.from_table(12, 1.0)(torch.tensor([0.5], dtype=torch.float64))
    e = table_entry(12, 1.0)
    assert float(y_pos) == float(siexp_numpy(np.array([0.5]), e["T"], e["h"], e["d"], -1.0)[0])


def test_module_dtypes_and_shapes():
    mod = FewSpikeExp.from_table(12, 8.0)
    x = -8.0 * torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))
    y32, n32 = mod(x)
    y64, n64 = mod(x.double())
    assert y32.dtype == torch.float32 and y32.shape == x.shape and n32.dtype == torch.int64
    assert torch.equal(n32, n64)  # float32 input is computed in float64: same spikes
    torch.testing.assert_close(y32, y64.float())
    assert mod.K == 12 and len(list(mod.buffers())) == 3


def test_si_norm_matches_closed_form_counts():
    g = torch.Generator().manual_seed(1)
    for n_spike in (1, 7, 64, 255):
        for n_tok in (1, 3, 16, 64):
            e = torch.exp(2.0 * torch.randn(50, n_tok, generator=g, dtype=torch.float64))
            counts = si_norm(e, dim=-1, n_spike=n_spike)
            assert torch.equal(counts, _closed_form(e, n_spike)), (n_spike, n_tok)
            assert int(counts.sum(-1).max()) <= n_spike
    # along another dim, and exact ties: equal weights give n_spike / n exactly
    e = torch.ones(16, 4, dtype=torch.float64)
    assert torch.equal(si_norm(e, dim=0, n_spike=64), torch.full((16, 4), 4))
    # zero weights never fire; an all-zero row never fires
    e = torch.tensor([[0.0, 1.0, 3.0], [0.0, 0.0, 0.0]])
    assert si_norm(e, n_spike=8).tolist() == [[0, 2, 6], [0, 0, 0]]


def _closed_form(e: torch.Tensor, n_spike: int) -> torch.Tensor:
    """floor(n_spike * e_i / V_th), exactly (rational arithmetic on the float64 values; V_th = row sum)."""
    out = torch.empty(e.shape, dtype=torch.int64)
    vth = e.sum(-1)
    for i in range(e.shape[0]):
        s = Fraction(float(vth[i]))
        for j in range(e.shape[1]):
            out[i, j] = math.floor(n_spike * Fraction(float(e[i, j])) / s)
    return out


def test_spiking_softmax_close_to_softmax():
    g = torch.Generator().manual_seed(2)
    scores = SCORE_STD * torch.randn(512, 16, generator=g)
    probs, stats = spiking_softmax(scores, dim=-1, K=12, R=8.0, n_spike=N_SPIKE)
    ref = torch.softmax(scores, dim=-1)
    mse = float(((probs - ref) ** 2).mean())
    assert mse <= 1e-3
    assert mse <= 1e-4  # what it achieves: 6.4e-5 (the 1/n_spike quantisation dominates)
    # quantised to 1/n_spike, rows sum to at most 1
    assert torch.equal(probs * N_SPIKE, (probs * N_SPIKE).round())
    assert float(probs.sum(-1).max()) <= 1.0 + 1e-6
    assert stats["neurons"] == scores.numel() and stats["rows"] == 512
    assert stats["norm_spike_total"] == int(stats["norm_spikes"].sum()) <= 512 * N_SPIKE
    assert stats["exp_spike_total"] == int(stats["exp_spikes"].sum())
    assert stats["K"] == 12 and stats["R_fit"] == 8.0 and stats["n_spike"] == N_SPIKE


def test_spiking_softmax_masked_and_underflow():
    x = torch.tensor([[0.0, -1.0, -30.0, float("-inf")], [2.0, 2.0, 2.0, 2.0]])
    probs, stats = spiking_softmax(x, dim=-1, K=12, R=8.0, n_spike=64)
    assert probs[0, 2] == 0 and probs[0, 3] == 0  # underflow (below -R) and masked
    assert stats["underflow"] == 2
    assert probs[1].tolist() == [0.25] * 4
    p_dim0, _ = spiking_softmax(x.t(), dim=0, K=12, R=8.0, n_spike=64)
    assert torch.equal(p_dim0, probs.t())


def test_deterministic():
    g = torch.Generator().manual_seed(3)
    scores = 3.0 * torch.randn(32, 16, generator=g)
    a = spiking_softmax(scores, K=12, R=8.0, n_spike=64)
    b = spiking_softmax(scores.clone(), K=12, R=8.0, n_spike=64)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1]["exp_spikes"], b[1]["exp_spikes"])


def test_fitter_search_is_deterministic_and_uses_exact_d():
    K, lo, hi = 4, -2.0, 0.0
    x, w = search_points(lo, hi, n=200)
    assert w.sum() == pytest.approx(1.0) and x.min() >= lo and x.max() <= hi
    runs = []
    for _ in range(2):
        obj = BatchObjective(x, w, K)
        L, U = bounds(K, lo, hi)
        st = differential_evolution(obj, L, U, de_init(obj, L, U, 16, np.random.default_rng(7)), gens=15)
        runs.append((st.best, st.best_x))
    assert runs[0][0] == runs[1][0] and np.array_equal(runs[0][1], runs[1][1])
    # the batched float32 objective agrees with a float64 least-squares evaluation
    p = runs[0][1]
    Z = np.stack([z for z in _patterns(x, p[:K], p[K:])], 1)
    sw = np.sqrt(w)
    d, *_ = np.linalg.lstsq(Z * sw[:, None], np.exp(x) * sw, rcond=None)
    ref = float(np.sqrt(np.sum(w * (Z @ d - np.exp(x)) ** 2)))
    assert runs[0][0] == pytest.approx(ref, rel=1e-4)


def _patterns(x, T, h):
    v = x.copy()
    for Tt, ht in zip(T, h, strict=True):
        z = (v >= Tt).astype(np.float64)
        v = v - ht * z
        yield z
