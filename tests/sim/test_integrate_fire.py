"""IF dynamics against an independent scalar numpy loop and the closed forms of the field."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnconvert.neurons.integrate_fire import if_steps


def reference(currents, theta, v0, lo, hi, m, coding):
    """Scalar loop written from the equations (methods.md), one neuron at a time."""
    T, n = currents.shape
    out = np.zeros_like(currents)
    for j in range(n):
        v, count = v0 * theta, 0.0
        for t in range(T):
            v += currents[t, j]
            s = 0.0
            if coding == "rate":
                while v >= theta and s < m:
                    v -= theta
                    s += 1
                if lo < 0:
                    while v <= -theta and s > -m:
                        v += theta
                        s -= 1
            else:
                while v >= theta and s < m and count + s < hi:
                    v -= theta
                    s += 1
                while v < 0 and s > -m and count + s > lo:
                    v += theta
                    s -= 1
                count += s
            out[t, j] = s
    return out


@pytest.mark.parametrize(
    "v0,lo,hi,m,coding",
    [
        (0.0, 0, 1, 1, "rate"),
        (0.5, 0, 1, 1, "rate"),
        (0.5, 0, 1, 3, "rate"),
        (0.5, -1, 1, 1, "rate"),
        (0.5, 0, 8, 1, "count"),
        (0.5, -8, 8, 2, "count"),
    ],
)
def test_if_matches_scalar_reference(v0, lo, hi, m, coding):
    rng = np.random.default_rng(1)
    T, n, theta = 24, 40, 0.7
    cur = rng.normal(0.2, 0.5, size=(T, n)).astype(np.float64)
    if coding == "count":
        cur[1:] *= 0.05  # count coding: the charge mostly arrives at step 1
    s, _, _ = if_steps(
        torch.from_numpy(cur),
        torch.tensor(theta, dtype=torch.float64),
        torch.zeros(n, dtype=torch.float64),
        torch.zeros(n, dtype=torch.float64),
        v0=v0,
        lo=lo,
        hi=hi,
        max_spikes=m,
        coding=coding,
    )
    np.testing.assert_array_equal(s.numpy(), reference(cur, theta, v0, lo, hi, m, coding))


def test_rate_count_closed_form():
    """Constant current I in [0, theta]: after T steps the count is floor(v0 + T*I/theta)."""
    theta, T = 1.3, 50
    # currents off the exact boundaries T*I/theta = integer, where float accumulation may go either way
    current = theta * (torch.arange(101, dtype=torch.float64) + 0.37) / 101.37
    for v0 in (0.0, 0.5):
        s, _, _ = if_steps(
            current.expand(T, -1).clone(),
            torch.tensor(theta, dtype=torch.float64),
            torch.zeros(101, dtype=torch.float64),
            torch.zeros(101, dtype=torch.float64),
            v0=v0,
        )
        expected = np.floor(v0 + T * current.numpy() / theta).clip(max=T)
        np.testing.assert_array_equal(s.sum(0).numpy(), expected)
        # the decoded rate is within theta/T of the input (v0 = 1/2 halves it)
        err = np.abs(theta * s.sum(0).numpy() / T - current.numpy()).max()
        assert err <= theta / T * (0.5 if v0 == 0.5 else 1.0) + 1e-12


def _count_neurons_charged_once(x, T, theta, L, m):
    """Signed count neurons in [-L, L], all their charge x at step 1: (spikes [T, ...], final count)."""
    cur = torch.zeros((T,) + tuple(x.shape), dtype=torch.float64)
    cur[0] = x
    zeros = torch.zeros(x.shape, dtype=torch.float64)
    s, _, count = if_steps(
        cur, torch.tensor(theta, dtype=torch.float64), zeros, zeros, lo=-L, hi=L, max_spikes=m, coding="count"
    )
    return s, count


def test_count_coding_settles_to_rounded_clip():
    theta, L = 0.25, 6
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    s, count = _count_neurons_charged_once(x, L + 2, theta, L, 1)
    expected = np.clip(np.round(x.numpy() / theta), -L, L)
    np.testing.assert_array_equal(count.numpy(), expected)
    np.testing.assert_array_equal(s.sum(0).numpy(), expected)


@pytest.mark.parametrize("m", [1, 3, 4])
def test_count_coding_multi_spike_settles_in_ceil_count_over_m_steps(m):
    """Charge arriving whole at step 1: after t steps the count is sign(c)*min(m*t, |c|) with
    c = clip(round(x/theta), -L, L), so a neuron of L levels settles within ceil(L/m) steps."""
    theta, L, T = 0.25, 8, 10
    x = torch.linspace(-2.6, 2.6, 53, dtype=torch.float64) + 0.01  # off the exact .5 rounding ties
    s, _ = _count_neurons_charged_once(x, T, theta, L, m)
    c = np.clip(np.round(x.numpy() / theta), -L, L)
    t = np.arange(1, T + 1)[:, None]
    np.testing.assert_array_equal(s.cumsum(0).numpy(), np.sign(c) * np.minimum(m * t, np.abs(c)))
    assert s.abs().max().item() <= m


@pytest.mark.parametrize(
    "v0,lo,hi,m,coding", [(0.5, -1, 1, 1, "rate"), (0.5, 0, 1, 2, "rate"), (0.5, -8, 8, 2, "count")]
)
def test_records_made_in_the_time_loop(v0, lo, hi, m, coding):
    """With `records`, if_steps returns the scalar reference's spikes times theta, |spikes| summed over
    time and (count coding) the steps a neuron received or sent events, all checked in numpy; the
    membrane and count it carries on are those of the call without records."""
    rng = np.random.default_rng(2)
    T, B, n, theta = 12, 3, 20, 0.6
    cur = rng.normal(0.1, 0.5, size=(T, B, n))
    cur[1:] *= rng.random((T - 1, B, n)) < 0.3  # sparse currents: some steps receive nothing
    kw = dict(v0=v0, lo=lo, hi=hi, max_spikes=m, coding=coding)
    args = (torch.from_numpy(cur), torch.tensor(theta, dtype=torch.float64))
    zeros = torch.zeros((B, n), dtype=torch.float64)
    rec: dict[str, torch.Tensor] = {}
    out, u, count = if_steps(*args, zeros, zeros, records=rec, **kw)
    _, u_plain, count_plain = if_steps(*args, zeros, zeros, **kw)
    s = reference(cur.reshape(T, B * n), theta, v0, lo, hi, m, coding).reshape(T, B, n)
    np.testing.assert_array_equal(out.numpy(), s * theta)
    np.testing.assert_array_equal(rec["events"].numpy(), np.abs(s).sum(0))
    if coding == "count":
        np.testing.assert_array_equal(rec["evaluations"].numpy(), ((cur != 0) | (s != 0)).sum(0))
    else:
        assert "evaluations" not in rec
    assert torch.equal(u, u_plain) and torch.equal(count, count_plain)
