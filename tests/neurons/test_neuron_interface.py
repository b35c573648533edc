"""The neuron interface (issue O item 2): a neuron model is one NeuronKind, and the op registry,
the simulator, the portable SNN's state and the energy count use it without knowing it. Shown with
a leaky integrate-and-fire neuron defined only here (the package does not ship it): its simulated
spikes against a numpy loop of the LIF equations, its state in the portable layout, its update
cost in the energy count."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from snnconvert.energy.count import count_nodes
from snnconvert.ir.build import GraphBuilder
from snnconvert.ir.ops_spiking import register_neuron_op
from snnconvert.ir.registry import OPS, get
from snnconvert.neurons import NEURONS, NeuronKind, register_neuron
from snnconvert.passes.spikify import assign_domains
from snnconvert.sim.portable import state_layout
from snnconvert.sim.simulator import Simulator


def _lif_step(current, theta, state, a: dict[str, Any]):
    u = state.get("u", torch.zeros_like(current[0]))
    s = torch.empty_like(current)
    for t in range(current.shape[0]):
        v = a["beta"] * u + current[t]
        s[t] = (v >= theta).to(current.dtype)
        u = v - s[t] * theta
    return s, {"u": u}


@pytest.fixture
def lif():
    kind = NeuronKind(
        "TestLIF",
        defaults={"beta": 0.9},
        state=("u",),
        step=_lif_step,
        converges_to=lambda a, x, theta: torch.minimum(torch.clamp(x, min=0), theta),
        update_ops={"mul": 1.0, "add": 1.0, "cmp": 1.0},
    )
    register_neuron(kind)
    register_neuron_op(kind)
    yield kind
    NEURONS.pop(kind.name)
    OPS.pop(kind.name)


def numpy_lif(x: np.ndarray, theta: float, beta: float, T: int) -> np.ndarray:
    u = np.zeros_like(x, dtype=np.float64)
    out = np.zeros((T, *x.shape))
    for t in range(T):
        v = beta * u + x
        out[t] = v >= theta
        u = v - out[t] * theta
    return out


def test_a_neuron_kind_defined_outside_the_package_runs_everywhere(lif):
    assert get("TestLIF").neuron is lif and get("TestLIF").attrs["beta"].default == 0.9
    b = GraphBuilder()
    x = b.input("x", (6,))
    y = b.node("TestLIF", [x, b.const("theta", np.float32(1.0))], {"beta": 0.8}, name="lif")
    g = b.output(y)
    g.meta["coding"] = "rate"
    assign_domains(g, "rate")
    xs = np.random.default_rng(0).uniform(0, 1.5, size=(3, 6)).astype(np.float32)
    T = 20
    sim = Simulator(g)
    state: dict[str, torch.Tensor] = {}
    record: dict[str, torch.Tensor] = {}
    out = sim.run_chunk({"x": torch.from_numpy(xs)}, 0, T, state, record=record)[y]
    ref = numpy_lif(xs, 1.0, 0.8, T)  # [T, 3, 6]
    np.testing.assert_array_equal(out.data.numpy(), ref)  # events of amplitude theta = 1
    assert set(state) == {"lif/u"}
    np.testing.assert_allclose(record[y].numpy(), ref.sum(axis=(0, 1)))  # events per neuron
    # the portable SNN's state is the kind's own
    assert state_layout(g, "mean") == [("lif/u", (6,), "float32")]
    # the energy count charges each neuron's update every step, as the kind says
    row = next(r for r in count_nodes(g, {y: record[y].numpy() / 3}, {}, T) if r.op == "TestLIF")
    assert row.other == {"mul": 6 * T, "add": 6 * T, "cmp": 6 * T}


def test_if_is_a_registered_kind():
    kind = NEURONS["IF"]
    assert get("IF").neuron is kind and kind.state == ("u", "count")
    assert set(get("IF").attrs) == set(kind.defaults)
