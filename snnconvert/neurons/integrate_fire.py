"""Integrate-and-fire dynamics with reset by subtraction, stepped over time on elementwise tensors:
rate coding (one or a few events per step, signed when lo < 0) and count coding (ST-BIF: the
running count held within [lo, hi]).

The membrane is stored as an offset from its start value v0*theta, so every state tensor starts at
zero (the portable artefact's state needs no initial values beyond zeros).
"""

from __future__ import annotations

from typing import Any

import torch

from snnconvert.neurons.kinds import NeuronKind, State, register_neuron


def if_steps(
    current: torch.Tensor,
    theta: torch.Tensor,
    u: torch.Tensor,
    count: torch.Tensor,
    *,
    v0: float = 0.5,
    lo: float = 0.0,
    hi: float = 1.0,
    max_spikes: int = 1,
    coding: str = "rate",
    records: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run IF neurons over the leading (time) axis of `current`.

    Returns (spikes [T, ...] as signed integers stored in float, new u, new count).
    With `records` (the simulator's), the spikes come back times theta, the signal the next op reads,
    and records['events'] gets |spikes| summed over time, records['evaluations'] (count coding) the
    steps at which a neuron received or sent events, both [B, ...]: made inside the time loop while
    each step's slice is in cache, where the same figures made after it were three more passes over
    the chunk in memory and doubled the neurons' time.
    Rate coding: at most `max_spikes` events per step; positive when v >= theta, negative (signed
    neurons, lo < 0) when v <= -theta; no limit on the total.
    Count coding (ST-BIF): the running count stays within [lo, hi]; a neuron fires +k while
    v >= theta and -k while v < 0, so the count settles at clip(round(V/theta), lo, hi) when v0 = 1/2.
    """
    spikes = torch.empty_like(current)
    base = v0 * theta
    if records is not None:
        events = records["events"] = torch.zeros_like(current[0])
        if coding == "count":
            runs = records["evaluations"] = torch.zeros_like(current[0])
    # the same operations in the same order as v = u + base + c; u = v - theta * s - base, written
    # into fewer temporaries (the neurons were a third of a fully spiking simulation's time)
    for t in range(current.shape[0]):
        v = torch.add(u, base)
        v.add_(current[t])
        s = torch.div(v, theta)
        s.floor_()
        if coding == "count":
            # +k while v >= k*theta, -k while v < -(k-1)*theta, i.e. floor(v/theta), within what
            # the step (max_spikes) and the count's range [lo, hi] still allow: both ranges hold 0,
            # so clamping to one and then the other is clamping to where they meet (exact: integers)
            s.clamp_(-max_spikes, max_spikes)
            new_count = torch.add(count, s).clamp_(lo, hi)
            s = new_count - count  # not out=: the portable step runs under torch.vmap
            count = new_count
        else:
            if lo < 0:
                neg = torch.div(v.neg(), theta).floor_().clamp_(min=0, max=max_spikes)
                s.clamp_(min=0, max=max_spikes).sub_(neg)
            else:
                s.clamp_(min=0, max=max_spikes)
        if records is None:
            u = v.sub_(theta * s).sub_(base)
            spikes[t] = s
            continue
        torch.mul(s, theta, out=spikes[t])  # theta * s, as above: the same floats
        u = v.sub_(spikes[t]).sub_(base)
        if coding == "count":
            runs.add_(torch.logical_or(current[t], s))
        events.add_(s.abs_())
    return spikes, u, count


def _step(
    current: torch.Tensor,
    theta: torch.Tensor,
    state: State,
    a: dict[str, Any],
    records: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, State]:
    zero = torch.zeros_like(current[0])
    s, u, count = if_steps(
        current,
        theta,
        state.get("u", zero),
        state.get("count", zero),
        v0=float(a["v0"]),
        lo=float(a["lo"]),
        hi=float(a["hi"]),
        max_spikes=int(a["max_spikes_per_step"]),
        coding=a["coding"],
        records=records,
    )
    return s, ({"u": u, "count": count} if a["coding"] == "count" else {"u": u})


def _converges_to(a: dict[str, Any], x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rate coding: the input clipped to [lo, hi]*theta (at most one spike per step). Count coding:
    theta times the input's count of thresholds, rounded and clipped to [lo, hi] events."""
    if a["coding"] == "count":
        return theta * torch.clamp(torch.round(x / theta), a["lo"], a["hi"])
    return torch.minimum(torch.maximum(x, a["lo"] * theta), a["hi"] * theta)


IF = register_neuron(
    NeuronKind(
        "IF",
        defaults={"lo": 0.0, "hi": 1.0, "v0": 0.5, "max_spikes_per_step": 1, "coding": "rate"},
        state=("u", "count"),
        step=_step,
        converges_to=_converges_to,
        update_ops={"add": 1.0, "cmp": 1.0},  # integrate the current, compare with theta
        # rate coding fires -1 only when signed (lo < 0); count coding takes back overshoot
        never_negative=lambda a: a["coding"] == "rate" and float(a["lo"]) >= 0,
        levels=lambda a: int(a["max_spikes_per_step"]),
        records_in_step=True,
        doc=(
            "integrate-and-fire neuron, reset by subtraction; inputs [x, theta]. Output events carry "
            "amplitude theta; lo < 0 makes it signed. v0 is the initial membrane as a fraction of "
            "theta; max_spikes_per_step > 1 makes it multi-threshold."
        ),
    )
)
