"""The neuron interface: one definition per neuron model, read generically by the op registry (the
IR op of the same name), the simulator (its state and step), the portable SNN (which traces that
step) and the energy count (its update cost). A new model, LIF say, is one module that registers a
NeuronKind and is imported by snnconvert/neurons/__init__.py.

A neuron node's inputs are [current, theta]: its events carry amplitude theta.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class NeuronKind:
    name: str  # the IR op that is this neuron
    # its attributes and their defaults (the attribute's type is the default's)
    defaults: dict[str, Any]
    # the state tensors it may keep per neuron, each starting at zero (missing = zero)
    state: tuple[str, ...]
    # step(current [T, ...], theta, state, attrs) -> (events [T, ...] as signed counts in float,
    # the new state): the T steps of a chunk, the state carried to the next chunk
    step: Callable[[torch.Tensor, torch.Tensor, State, dict[str, Any]], tuple[torch.Tensor, State]]
    # converges_to(attrs, current, theta): what the neuron's decoded output tends to as T grows,
    # its ANN equivalent (the converted graph run as a network)
    converges_to: Callable[..., torch.Tensor]
    # elementwise operations per neuron per step (integrate, compare, ...), for the energy count
    update_ops: dict[str, float] = field(default_factory=dict)
    # never_negative(attrs): are its events never negative? Then the simulator counts them with one
    # sum, not a sum of magnitudes (unknown: False, the count that is always right)
    never_negative: Callable[[dict[str, Any]], bool] = lambda a: False
    # levels(attrs): the most events one neuron sends in one step (1: binary spikes; m: up to m)
    levels: Callable[[dict[str, Any]], int] = lambda a: 1
    # records_in_step: step(..., records=dict) returns its events times theta and fills
    # records['events'] (sum over the chunk of |events|, [B, ...]) and, count coding,
    # records['evaluations'] (steps it received or sent events), in its own time loop; otherwise the
    # simulator makes them from the events
    records_in_step: bool = False
    doc: str = ""


NEURONS: dict[str, NeuronKind] = {}


def register_neuron(kind: NeuronKind) -> NeuronKind:
    if kind.name in NEURONS:
        raise ValueError(f"neuron kind '{kind.name}' registered twice")
    NEURONS[kind.name] = kind
    return kind
