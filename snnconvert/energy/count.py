"""Operation counts per node of a spiking graph, from shapes (ANN) and measured events (SNN).

Synaptic operations fed by spikes are accumulates (ACs): one per event per output the event
reaches. They are counted exactly by running the node's own op on the per-sample event map with
every non-zero weight replaced by 1 (and biases / other operands zeroed): the sum of that output is
sum over events of their fan-out. A product of run-time operands (attention) costs each event of
an operand one AC per product term it is a factor of. Ops fed by analog values cost MACs every time
they run: once for a static value (identical at every step), T times for a time-varying one.
What an op is to this count (data move, synaptic, pool, ...) are flags of its registry entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from snnconvert.ir.cost import node_cost, node_shapes
from snnconvert.ir.graph import Graph, Node
from snnconvert.ir.registry import EVALUATIONS, get, has_flag, internal_records, numel, run_op, torch_dtype


@dataclass
class NodeCount:
    name: str
    op: str
    domain: str  # domain of the node's output
    spike_inputs: int  # how many of its run-time inputs are spikes
    ann_macs: float
    snn_acs: float = 0.0
    snn_macs: float = 0.0
    executions: int = 1  # times the node runs in the SNN per sample (1 or T)
    events_in: float = 0.0  # input events per sample (all steps)
    internal: bool = False  # neurons inside the op (SpikingSoftmax): its ACs come from their spikes
    other: dict[str, float] = field(default_factory=dict)  # elementwise ops per sample (SNN)
    ann_other: dict[str, float] = field(default_factory=dict)


def propagate_events(g: Graph, events: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Event maps for spike values that are not neuron outputs: data moves, sums, averages and
    constant scalings of spikes. An output position gets one event per input event that reaches it
    (sum pooling for averages), so a consumer's ACs count every accumulate it really performs."""
    ev = dict(events)
    for n in g.nodes:
        out = n.outputs[0]
        if g.values[out].domain != "spike" or out in ev or get(n.op).spiking:
            continue
        spike_in = [i for i, name in enumerate(n.inputs) if name in ev]
        if not spike_in:
            continue
        if has_flag(
            n.op, "scaling", n.attrs
        ):  # a constant weight changes the events' amplitude, not their number
            ev[out] = ev[n.inputs[spike_in[0]]]
            continue
        if len(n.outputs) > 1:  # Split and the like: the event map moves with the data
            x = torch.from_numpy(np.asarray(ev[n.inputs[spike_in[0]]], dtype=np.float64))
            for o, t in zip(n.outputs, run_op(n.op, n.attrs, [x]), strict=True):
                ev[o] = t.numpy()
            continue
        total = None
        for i in spike_in:
            r = _unit_response(g, n, i, ev[n.inputs[i]])
            total = r if total is None else total + r
        if has_flag(n.op, "pool", n.attrs):
            total = total * float(np.prod(n.attrs["kernel"]))
        ev[out] = total.numpy()
    return ev


def _unit_response(g: Graph, n: Node, spike_idx: int, ev: np.ndarray) -> torch.Tensor:
    """What one input's event map reaches through the op: |op(events) - op(no events)| with unit
    weights and every other operand held at one (a divisor, a factor or an addend alike: an
    addend cancels in the difference, a divisor of zero would make inf). A synaptic op's weights
    are its constant operands: a layer's only at input 1 (its bias is 2)."""
    synaptic, layer = has_flag(n.op, "synaptic", n.attrs), has_flag(n.op, "layer", n.attrs)
    args = []
    for i, name in enumerate(n.inputs):
        if i == spike_idx:
            args.append(torch.from_numpy(np.asarray(ev, dtype=np.float64)))
        elif name in g.initializers:
            w = np.asarray(g.initializers[name])
            is_weight = synaptic and (i == 1 or not layer)
            if is_weight and np.issubdtype(w.dtype, np.floating):
                args.append(torch.from_numpy((w != 0).astype(np.float64)))
            elif np.issubdtype(w.dtype, np.floating):
                args.append(torch.ones(w.shape, dtype=torch.float64))
            else:
                args.append(torch.from_numpy(np.array(w)))
        else:  # a run-time operand without events: one, or a mask / index of its own dtype at zero
            v = g.values[name]
            if v.dtype.startswith("float"):
                args.append(torch.ones(v.shape, dtype=torch.float64))
            else:
                args.append(torch.zeros(v.shape, dtype=torch_dtype(v.dtype)))
    with_events = run_op(n.op, n.attrs, args)[0]
    args[spike_idx] = torch.zeros_like(args[spike_idx])
    return (with_events - run_op(n.op, n.attrs, args)[0]).abs()


def _ones_trick(g: Graph, n: Node, spike_idx: int, ev: np.ndarray, scale: float = 1.0) -> float:
    """sum over events of their fan-out, via the op itself with unit weights."""
    return float(_unit_response(g, n, spike_idx, ev).sum()) * scale


def _spiking_product(g: Graph, n: Node, ev: dict[str, np.ndarray], macs: int) -> float:
    """A product of run-time operands: an event of an operand is a factor of macs / its size of the
    op's `macs` product terms, one AC each (A[..., M, K] @ B[..., K, N]: N for an event of A, M for
    one of B; an einsum likewise). Operands that are not spikes add no ACs."""
    ins, _ = node_shapes(g, n)
    acs = 0.0
    for name, shape in zip(n.inputs, ins, strict=True):
        if name in ev:
            acs += float(np.sum(ev[name])) * (int(macs) // numel(shape))
    return acs


def count_nodes(
    g: Graph, events: dict[str, np.ndarray], static: dict[str, bool], timesteps: int
) -> list[NodeCount]:
    """Per node: ANN MACs, SNN ACs from events, SNN MACs for analog work, other elementwise ops."""
    ev = propagate_events(g, events)
    rows = []
    for n in g.nodes:
        if has_flag(n.op, "moves_data", n.attrs):
            continue
        cost = node_cost(g, n)
        dyn = [i for i in n.inputs if i not in g.initializers]
        spike_in = [i for i in dyn if g.values[i].domain == "spike"]
        out = n.outputs[0]
        execs = 1 if static.get(out, False) else timesteps
        row = NodeCount(
            name=out,
            op=n.op,
            domain=g.values[out].domain or "analog",
            spike_inputs=len(spike_in),
            ann_macs=float(cost.get("mac", 0)),
            executions=execs,
            ann_other={k: float(v) for k, v in cost.items() if k != "mac"},
        )
        row.events_in = float(sum(np.sum(ev[i]) for i in spike_in if i in ev))
        op = get(n.op)
        if op.snn_cost is not None:
            inside = {k: float(np.sum(v)) for k, v in internal_records(ev, out).items()}
            shapes = node_shapes(g, n)
            row.snn_acs, row.other = op.snn_cost(op.with_defaults(n.attrs), *shapes, inside, execs)
            row.internal = True
        elif op.neuron is not None:  # a neuron's update (its kind says with what) at each step it ran
            runs = internal_records(ev, out).get(EVALUATIONS)  # count coding records them
            updates = float(np.sum(runs)) if runs is not None else g.values[out].numel * timesteps
            row.other = {k: v * updates for k, v in op.neuron.update_ops.items()}
        elif spike_in and all(i in ev for i in spike_in):
            idx = [n.inputs.index(i) for i in spike_in]
            stream = frozenset(n.inputs.index(i) for i in dyn if not static.get(i, False))
            if has_flag(n.op, "synaptic", n.attrs) and len(dyn) >= 2:
                # a product of run-time operands; one of them analog: still a select-and-add per event
                row.snn_acs = _spiking_product(g, n, ev, cost.get("mac", 0))
            elif op.affine_in(frozenset(idx)) or op.affine_in(stream):
                scale = float(np.prod(n.attrs["kernel"])) if has_flag(n.op, "pool", n.attrs) else 1.0
                once = has_flag(n.op, "accumulates_once", n.attrs)
                for i in idx:
                    if once:
                        row.snn_acs += float(np.sum(ev[n.inputs[i]]))
                    else:
                        row.snn_acs += _ones_trick(g, n, i, ev[n.inputs[i]], scale)
                analog_dyn = [i for i in dyn if i not in spike_in]
                if analog_dyn:  # the analog operand of a mixed op adds its own work per execution
                    row.other = {k: float(v) * execs for k, v in cost.items() if k != "mac"}
            elif has_flag(n.op, "bilinear", n.attrs) and len(idx) == len(dyn) == 2:
                # a product of two spike trains (SDSA's K * V): a(t) B(t-1) + A(t-1) b(t) + a(t) b(t),
                # each event adding the other operand's running value to each output it reaches
                row.snn_acs = sum(_ones_trick(g, n, i, ev[n.inputs[i]], 1.0) for i in idx)
            else:  # non-affine op on spike inputs (e.g. softmax of a spike count): analog work
                _analog(row, cost, _evaluations(ev, out, execs))
        else:
            _analog(row, cost, _evaluations(ev, out, execs))
        rows.append(row)
    return rows


def _evaluations(ev: dict[str, np.ndarray], out: str, execs: int) -> float:
    """How many times per sample an analog op's work ran: `execs`, or where count coding recorded
    the steps at which each of its rows had input events (the rest keep their value), the mean
    over rows of those steps."""
    runs = internal_records(ev, out).get(EVALUATIONS)
    if runs is None or not np.size(runs):
        return float(execs)
    return float(np.sum(runs)) / float(np.size(runs))


def _analog(row: NodeCount, cost: dict[str, float], runs: float) -> None:
    """An op's ANN cost run `runs` times: its MACs and its elementwise work."""
    row.snn_macs = float(cost.get("mac", 0)) * runs
    row.other = {k: float(v) * runs for k, v in cost.items() if k != "mac"}
