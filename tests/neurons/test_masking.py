"""The masked IF neuron (MST's Random Spike Masking): the fraction of spikes it drops, its determinism,
that the mask does not depend on how time is cut into chunks or which samples share a batch, and that
the energy count charges only the spikes it delivered."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnconvert.energy.count import count_nodes
from snnconvert.ir.build import GraphBuilder
from snnconvert.neurons.integrate_fire import if_steps
from snnconvert.neurons.masked_if import keep_mask
from snnconvert.passes.spikify import assign_domains
from snnconvert.sim.simulator import Simulator

N, T = 400, 64


def masked_graph(ratio: float, seed: int = 0, fan_out: int = 3):
    """x -> MaskedIF (theta 1) -> Linear [N -> fan_out] (all-one weights): the Linear's ACs are the
    delivered spikes times fan_out."""
    b = GraphBuilder()
    x = b.input("x", (1, N), batch_axis=0)
    attrs = {"masking_ratio": ratio, "seed": seed, "stream": 7, "v0": 0.5}
    s = b.node("MaskedIF", [x, b.const("theta", np.float32(1.0))], attrs, name="rsm")
    y = b.node("Linear", [s, b.const("w", np.ones((N, fan_out), np.float32))], name="fc")
    g = b.output(y)
    assign_domains(g, "rate")
    return g, s, y


def run(g, s, xs: np.ndarray, chunks: list[int]):
    """The neuron's events [T, B, 1, N] and the record, running the given chunk lengths in turn."""
    sim, state, record, out = Simulator(g), {}, {}, []
    t0 = 0
    for tc in chunks:
        out.append(sim.run_chunk({"x": torch.from_numpy(xs)}, t0, tc, state, record=record, keep={s})[s].data)
        t0 += tc
    return torch.cat(out), record


def test_the_dropped_fraction_is_the_ratio_within_binomial_error():
    """A current of theta every step fires at every step; a fraction r of those spikes is dropped."""
    xs = np.ones((2, N), np.float32)
    for r in (0.25, 0.75):
        g, s, _ = masked_graph(r)
        ev, _ = run(g, s, xs, [T])
        kept = float(ev[:, 0].mean())
        assert abs(kept - (1 - r)) < 4 * np.sqrt(r * (1 - r) / (T * N))  # 4 sigma of a binomial
        assert torch.equal(ev[:, 0], ev[:, 1])  # every sample of a step sees the same mask


def test_the_membrane_follows_the_if_neuron_only_delivery_is_masked():
    xs = np.random.default_rng(0).uniform(0, 1, size=(3, N)).astype(np.float32)
    g, s, _ = masked_graph(0.5)
    ev, _ = run(g, s, xs, [T])
    cur = torch.from_numpy(xs).reshape(1, 3, 1, N).expand(T, 3, 1, N)
    zero = torch.zeros(3, 1, N)
    fired, _, _ = if_steps(cur, torch.tensor(1.0), zero, zero, v0=0.5)
    keep = keep_mask(0, 7, torch.arange(1, T + 1), (1, N), 0.5).unsqueeze(1)
    assert torch.equal(ev, fired * keep)  # independent of the simulator: if_steps times the stream
    assert bool((ev <= fired).all()) and float(ev.sum()) < float(fired.sum())


def test_a_seed_gives_one_run_and_another_seed_another():
    xs = np.full((1, N), 0.6, np.float32)
    a, _ = run(*masked_graph(0.5, seed=1)[:2], xs, [T])
    b, _ = run(*masked_graph(0.5, seed=1)[:2], xs, [T])
    c, _ = run(*masked_graph(0.5, seed=2)[:2], xs, [T])
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_one_chunk_of_t_steps_equals_t_chunks_of_one_step():
    xs = np.random.default_rng(1).uniform(0, 1, size=(2, N)).astype(np.float32)
    g, s, y = masked_graph(0.75)
    whole, rec_whole = run(g, s, xs, [T])
    steps, rec_steps = run(g, s, xs, [1] * T)
    mixed, _ = run(g, s, xs, [5, 17, 1, 41])
    assert torch.equal(whole, steps) and torch.equal(whole, mixed)
    assert torch.equal(rec_whole[s], rec_steps[s])


def test_a_sample_gets_the_same_spikes_alone_and_in_a_batch():
    xs = np.random.default_rng(2).uniform(0, 1, size=(4, N)).astype(np.float32)
    g, s, _ = masked_graph(0.5)
    batch, _ = run(g, s, xs, [T])
    alone, _ = run(g, s, xs[2:3], [T])
    assert torch.equal(batch[:, 2], alone[:, 0])


@pytest.mark.parametrize("ratio", [0.0, 0.75])
def test_the_energy_count_charges_the_delivered_spikes_only(ratio):
    xs = np.random.default_rng(3).uniform(0, 1, size=(2, N)).astype(np.float32)
    g, s, y = masked_graph(ratio, fan_out=3)
    ev, record = run(g, s, xs, [T])
    delivered = float(ev.sum())
    assert float(record[s].sum()) == delivered  # what simulate writes to events.npz
    per_sample = {s: record[s].numpy() / 2}
    row = next(r for r in count_nodes(g, per_sample, {}, T) if r.name == y)
    assert row.snn_acs == pytest.approx(3 * delivered / 2)
    emitted = float(if_steps(torch.from_numpy(xs).reshape(1, 2, 1, N).expand(T, 2, 1, N), torch.tensor(1.0),
                             torch.zeros(2, 1, N), torch.zeros(2, 1, N), v0=0.5)[0].sum())  # fmt: skip
    assert delivered == emitted if ratio == 0 else delivered < 0.35 * emitted
