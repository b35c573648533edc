"""Random Spike Masking (MST, Wang et al. 2023): an IF neuron whose emitted spikes are dropped on the
way to their synapses with probability r, the masking ratio. The neuron itself fires and resets as an
IF neuron does; only delivery is masked, so a dropped spike is an accumulate that never happens.

The mask is a counter-based random stream, a hash of (seed, stream, step, element): `stream` names
the node, `step` is the neuron's own step count (kept in its state) and `element` the position within
one sample. So the spikes delivered do not depend on how the simulator cuts time into chunks, nor on
which samples share a batch (every sample of a step sees the same mask), and the same seed gives the
same run on any machine. Pure integer tensor ops: it runs under torch.vmap and torch.export.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from snnconvert.neurons.integrate_fire import IF, if_steps
from snnconvert.neurons.kinds import NeuronKind, State, register_neuron

_M32 = 0xFFFFFFFF
_MIX = 0x45D9F3B  # odd, < 2**31: a product with a 32-bit value stays below 2**63 in int64


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mix (xor-shift-multiply), on int64 tensors holding values < 2**32."""
    x = x & _M32
    x = x ^ (x >> 16)
    x = (x * _MIX) & _M32
    x = x ^ (x >> 16)
    x = (x * _MIX) & _M32
    return x ^ (x >> 16)


def keep_mask(
    seed: int, stream: int, steps: torch.Tensor, shape: tuple[int, ...], ratio: float
) -> torch.Tensor:
    """Which spikes are delivered, [len(steps), *shape] (bool): uniform(seed, stream, step, element) >= ratio.

    `steps` holds the 1-based step indices (int64)."""
    key = _hash32(_hash32(torch.tensor(int(seed), dtype=torch.int64)) + int(stream))
    elem = torch.arange(math.prod(shape), dtype=torch.int64, device=steps.device)
    per_step = _hash32(key + steps.reshape(-1, 1))  # [T, 1]
    u = _hash32(per_step + elem.reshape(1, -1) * 0x9E3779B1).to(torch.float64) / 2.0**32  # [T, numel]
    return (u >= ratio).reshape((len(steps), *shape))


def _step(
    current: torch.Tensor, theta: torch.Tensor, state: State, a: dict[str, Any]
) -> tuple[torch.Tensor, State]:
    """IF dynamics for the chunk, then the mask on the emitted events; the step count is per element
    (state tensors are elementwise), the same in all of them."""
    zero = torch.zeros_like(current[0])
    done = state.get("steps", zero)
    s, u, _ = if_steps(
        current,
        theta,
        state.get("u", zero),
        zero,
        v0=float(a["v0"]),
        lo=float(a["lo"]),
        hi=float(a["hi"]),
        max_spikes=int(a["max_spikes_per_step"]),
    )
    tc = current.shape[0]
    # the steps already run, read from the state (a tensor: under torch.export it stays symbolic)
    first = done.reshape(-1)[0].to(torch.int64) if done.numel() else torch.tensor(0, dtype=torch.int64)
    steps = first + torch.arange(1, tc + 1, dtype=torch.int64, device=current.device)
    keep = keep_mask(
        int(a["seed"]), int(a["stream"]), steps, tuple(current.shape[2:]), float(a["masking_ratio"])
    )
    s = s * keep.unsqueeze(1).to(s.dtype)  # the same mask for every sample of the batch
    return s, {"u": u, "steps": done + tc}


def _converges_to(a: dict[str, Any], x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """In expectation: the IF neuron's value, a fraction 1 - r of its spikes delivered."""
    return (1.0 - float(a["masking_ratio"])) * IF.converges_to(a, x, theta)


MASKED_IF = register_neuron(
    NeuronKind(
        "MaskedIF",
        defaults={**IF.defaults, "masking_ratio": 0.0, "seed": 0, "stream": 0},
        state=("u", "steps"),
        step=_step,
        converges_to=_converges_to,
        never_negative=IF.never_negative,  # masking only removes events
        levels=IF.levels,
        # integrate, compare with theta, compare the stream's random number with r
        update_ops={"add": 1.0, "cmp": 2.0},
        doc=(
            "IF neuron (rate coding, reset by subtraction) whose emitted spikes are dropped with "
            "probability masking_ratio (MST's Random Spike Masking); the mask is a hash of (seed, "
            "stream, step, element), the step count kept in the neuron's state"
        ),
    )
)
