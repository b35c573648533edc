"""Integrate-and-fire dynamics with reset by subtraction, stepped over time on elementwise tensors.

The membrane is stored as an offset from its start value v0*theta, so every state tensor starts at
zero (the portable artefact's state needs no initial values beyond zeros).
"""

from __future__ import annotations

import torch


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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run IF neurons over the leading (time) axis of `current`.

    Returns (spikes [T, ...] as signed integers stored in float, new u, new count).
    Rate coding: at most `max_spikes` events per step; positive when v >= theta, negative (signed
    neurons, lo < 0) when v <= -theta; no limit on the total.
    Count coding (ST-BIF): the running count stays within [lo, hi]; a neuron fires +k while
    v >= theta and -k while v < 0, so the count settles at clip(round(V/theta), lo, hi) when v0 = 1/2.
    """
    spikes = torch.empty_like(current)
    base = v0 * theta
    for t in range(current.shape[0]):
        v = u + base + current[t]
        if coding == "count":
            # +k while v >= k*theta, -k while v < -(k-1)*theta, i.e. floor(v/theta), within what
            # the step (max_spikes) and the count's range [lo, hi] still allow
            s = torch.clamp(
                torch.floor(v / theta),
                torch.clamp(lo - count, min=-max_spikes),
                torch.clamp(hi - count, max=max_spikes),
            )
            count = count + s
        else:
            s = torch.clamp(torch.floor(v / theta), min=0, max=max_spikes)
            if lo < 0:
                s = s - torch.clamp(torch.floor(-v / theta), min=0, max=max_spikes)
        u = v - theta * s - base
        spikes[t] = s
    return spikes, u, count
