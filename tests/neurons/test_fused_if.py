"""The fused CPU step of count-coded IF neurons (snnconvert/neurons/integrate_fire_cpu.py) against
the reference, if_steps plus the simulator's records in torch: the same spikes, output, records and
state, bit for bit, over two chunks with the state carried, for scalar and per-channel thresholds."""

from __future__ import annotations

import pytest
import torch

from snnconvert.neurons.integrate_fire import if_steps
from snnconvert.neurons.integrate_fire_cpu import _compile, fused_count_step

pytestmark = pytest.mark.skipif(_compile() is False, reason="numba is not installed")


def reference(cur, theta, state, a):
    s, u, count = if_steps(
        cur, theta, state.get("u", torch.zeros_like(cur[0])), state.get("count", torch.zeros_like(cur[0])),
        v0=a["v0"], lo=a["lo"], hi=a["hi"], max_spikes=a["max_spikes_per_step"], coding="count",
    )  # fmt: skip
    evals = torch.logical_or(cur, s).sum(dim=(0, 1), dtype=s.dtype)
    return s * theta, s.abs().sum(dim=(0, 1)), evals, {"u": u, "count": count}


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("v0,lo,hi,m", [(0.5, -16.0, 16.0, 4), (0.3, 0.0, 8.0, 1), (0.5, -64.0, 64.0, 16)])
def test_fused_step_is_the_reference_bit_for_bit(per_channel, v0, lo, hi, m):
    g = torch.Generator().manual_seed(0)
    shape = (3, 5, 7)  # per sample; channels on the last axis
    theta = (torch.rand(7, generator=g) * 0.4 + 0.05) if per_channel else torch.tensor(0.17)
    a = {"coding": "count", "v0": v0, "lo": lo, "hi": hi, "max_spikes_per_step": m}
    ours, ref = {}, {}
    for chunk in (6, 5):  # a second chunk continues from the first one's state
        cur = torch.randn((chunk, 4, *shape), generator=g) * 2.0
        cur = cur * (torch.rand(cur.shape, generator=g) > 0.4)  # inputs without events
        got = fused_count_step(cur, theta, ours, a)
        want = reference(cur, theta, ref, a)
        assert got is not None
        for x, y, what in zip(got[:3], want[:3], ("output", "events", "evaluations"), strict=True):
            assert x.shape == y.shape and torch.equal(x, y), what
        for k in ("u", "count"):
            assert torch.equal(got[3][k], want[3][k]), k
        ours, ref = got[3], want[3]
    # the case is not trivial: events flow, and some neurons skip steps (no input, nothing to send)
    assert float(want[1].sum()) > 0 and float(want[2].sum()) < 5 * 4 * want[2].numel()


def test_it_declines_what_it_does_not_compute():
    a = {"coding": "count", "v0": 0.5, "lo": -4.0, "hi": 4.0, "max_spikes_per_step": 1}
    cur = torch.randn(3, 2, 5)
    assert fused_count_step(cur, torch.tensor(0.1), {}, {**a, "coding": "rate"}) is None
    assert fused_count_step(cur.double(), torch.tensor(0.1, dtype=torch.float64), {}, a) is None
    assert fused_count_step(cur, torch.tensor(0.1), {}, a) is not None
