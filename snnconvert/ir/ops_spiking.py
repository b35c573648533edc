"""Spiking ops. The neurons: one op per registered neuron kind (snnconvert.neurons), stateful in
the simulator. And ops that replace an analog function by a small network of neurons that settles
within one application: SpikingSoftmax (SIT 2024's SI-exp + SI-norm). The simulator applies those
like any other non-affine op (to the decoded running input) and records the spikes inside, which
the energy report turns into accumulates."""

from __future__ import annotations

from typing import Any

import torch

from snnconvert.ir.graph import Graph
from snnconvert.ir.registry import EVALUATIONS, Attr, OpDef, get, numel, register
from snnconvert.neurons import NEURONS, NeuronKind
from snnconvert.neurons.fewspike import softmax_by_spikes

FLOATS = (list, tuple)


def _spiking_softmax_events(
    a: dict[str, Any], x: torch.Tensor, changed: torch.Tensor | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`changed` (like x, bool): which inputs received an event since the last application. A row
    none of whose inputs changed is not re-evaluated (its output stands), so no spikes and no
    work inside it; "evaluations" counts, per element, the applications that ran."""
    if not (len(a["T"]) == len(a["h"]) == len(a["d"]) and len(a["T"]) > 0):
        raise ValueError(
            f"SI-exp tables T, h, d must have one equal, non-zero length, got {len(a['T'])}, "
            f"{len(a['h'])}, {len(a['d'])}"
        )
    probs, exp_spikes, norm_spikes = softmax_by_spikes(
        x, a["axis"], a["T"], a["h"], a["d"], float(a["lo"]), int(a["n_spike"]), float(a["v0"])
    )
    run = torch.ones_like(x)
    if changed is not None:
        run = changed.any(dim=a["axis"], keepdim=True).expand_as(x).to(x.dtype)
    return probs, {"siexp": exp_spikes * run, "sinorm": norm_spikes * run, EVALUATIONS: run}


def _softmax_equivalent_cost(a, ins, outs):
    """What the layer costs in the ANN (a softmax), so ANN and SNN rows compare like for like."""
    n = numel(outs[0])
    return {"exp": n, "add": n, "div": n, "cmp": n}


def _spiking_softmax_snn_cost(a, ins, outs, events: dict[str, float], executions: int):
    """Per sample, `events` summed over elements and executions.

    Spike-driven (ACs): every SI-exp spike adds d(t) to its neuron's output e_i; every one of the
    n_spike input spikes of a row adds each neuron's weight e_i to its membrane (n_spike per
    element and evaluation). Analog, listed honestly: the row maximum (one comparison per element)
    and the shift x - max, SI-norm's threshold sum_j e_j, a threshold comparison per neuron and
    sub-step, and a reset (subtraction of h(t) or V_th) per spike. A row is evaluated when one of
    its inputs changed (every execution, if the simulation did not record evaluations)."""
    n = numel(outs[0])
    K, ns = len(a["T"]), int(a["n_spike"])
    siexp, sinorm = float(events.get("siexp", 0.0)), float(events.get("sinorm", 0.0))
    evals = float(events.get(EVALUATIONS, n * executions))
    acs = siexp + ns * evals
    other = {"cmp": (1 + K + ns) * evals, "add": 2 * evals + siexp + sinorm}
    return acs, other


register(
    OpDef(
        "SpikingSoftmax",
        lambda a, x: _spiking_softmax_events(a, x)[0],
        attrs={
            "axis": Attr(int, -1),
            "n_spike": Attr(int, 64),
            "v0": Attr((int, float), 0.0),
            "lo": Attr((int, float), required=True),
            "T": Attr(FLOATS, required=True),
            "h": Attr(FLOATS, required=True),
            "d": Attr(FLOATS, required=True),
            "table": Attr(str, ""),
        },
        cost=_softmax_equivalent_cost,
        events=_spiking_softmax_events,
        snn_cost=_spiking_softmax_snn_cost,
        analog_parts="row max, SI-norm threshold sum",
        doc=(
            "SIT Spiking-Softmax: row max subtracted, SI-exp few-spike neurons (K = len(T) steps, "
            "table fitted on [lo, 0], inputs below lo give 0), SI-norm IF neurons driven by n_spike "
            "input spikes (membrane starting at v0 x threshold); output = count / n_spike"
        ),
    )
)


# -- neurons: one op per registered neuron kind ------------------------------------------------------------
def _attr(default: Any) -> Attr:
    kind = (int, float) if isinstance(default, float) else type(default)
    return Attr(kind, default)


def register_neuron_op(kind: NeuronKind) -> OpDef:
    """The IR op of a neuron kind (done here for every kind snnconvert.neurons registers)."""
    return register(_neuron_op(kind))


def _neuron_op(kind: NeuronKind) -> OpDef:
    return OpDef(
        kind.name,
        kind.converges_to,
        attrs={k: _attr(v) for k, v in kind.defaults.items()},
        cost=lambda a, ins, outs: {"cmp": numel(outs[0])},  # the ANN's equivalent: a clip or a round
        spiking=True,
        neuron=kind,
        doc=kind.doc,
    )


for _kind in NEURONS.values():
    register_neuron_op(_kind)


def spike_format(g: Graph) -> dict[str, Any]:
    """What one event is in this SNN, as `inspect`, `convert`, `simulate` and `energy-report` state
    it: the most events a neuron sends in a step (1: binary spikes), whether events can be negative,
    and the neuron kinds (ops with neurons inside, SpikingSoftmax, send binary spikes)."""
    levels, signed, kinds = 0, False, set()
    for n in g.nodes:
        d = get(n.op)
        if d.neuron is not None:
            a = d.with_defaults(n.attrs)
            levels = max(levels, d.neuron.levels(a))
            signed = signed or not d.neuron.never_negative(a)
            kinds.add(n.op)
        elif d.events is not None:
            levels = max(levels, 1)
            kinds.add(n.op)
    return {"levels_per_event": levels, "signed": signed, "neuron_kinds": sorted(kinds)}
