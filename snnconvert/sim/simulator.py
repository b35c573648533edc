"""Spiking IR -> multi-step torch execution with explicit state.

Every value carries a per-step signal whose running *mean* (rate coding) or running *total*
(count coding) is the value it stands for. A value identical at every step (rate) or arriving
whole at step 1 (count) is kept "static" ([B, ...]) and computed once; the rest are streams
([Tc, B, ...]), held as their per-step signal, their running values, or both (`Sig`), each made
from the other only when a reader needs it. Ops are run on all timesteps at once with time folded
into the outer axis the per-sample ops are vectorised over (`run_batched`):
- affine ops (in their time-varying inputs) act on running values where all those inputs have
  them, else on the per-step signal (count coding: a Linear only on the rows with events);
- other analog ops act on the decoded running values and give their output's running values, so
  it decodes to f(decoded input) at every step ("mean" mode); or, in "step" mode (rate only), they
  act on each step's signal as it is;
- neurons step through time on the per-step signal.
The state between chunks is explicit, so the same code runs 50 steps at once or one step at a time
(the portable artefact).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from snnconvert.errors import InputError
from snnconvert.ir.execute import constants, fold_constant_nodes, last_uses, prepare_feeds
from snnconvert.ir.graph import Graph, Node
from snnconvert.ir.registry import (  # noqa: F401  (the record keys are the registry's; re-exported)
    EVALUATIONS,
    INTERNAL,
    get,
    has_flag,
    internal_key,
    internal_records,
    is_spike_record,
    run_batched,
    run_batched_events,
)

ANALOG_MODES = ("mean", "step")


@dataclass
class Sig:
    """A value in flight: static ([B, ...], same every step / all at step 1) or a stream [Tc, B, ...]."""

    data: torch.Tensor | None  # static: the value; a stream: each step's signal (None: not made yet)
    static: bool
    # a stream's sum over the chunk's steps ([B, ...]) where the op had it for free (observers
    # of whole runs read it instead of summing the stream again)
    total: torch.Tensor | None = None
    # a stream's decoded running value at each step ([Tc, B, ...]: the running mean, rate coding;
    # the running total, count coding), where an op made it or a reader needed it. Analog ops make
    # and read this form, so a chain of them (LayerNorm -> Linear -> QK^T -> softmax) passes
    # running values along instead of turning them into increments and back at every op.
    run: torch.Tensor | None = None


def _fold(x: torch.Tensor) -> torch.Tensor:
    return x.reshape((x.shape[0] * x.shape[1],) + tuple(x.shape[2:]))


def _unfold(x: torch.Tensor, tc: int) -> torch.Tensor:
    return x.reshape((tc, x.shape[0] // tc) + tuple(x.shape[1:]))


def accumulate(record: dict[str, torch.Tensor], key: str, value: torch.Tensor) -> None:
    """record[key] += value, the first value taken as it is."""
    record[key] = record[key] + value if key in record else value


def running_total(x: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
    """prev + x[0] + ... + x[t] at every step t of the chunk, summed strictly step after step, so a
    run split into chunks gives the same floats as one chunk. (torch.cumsum over the leading axis
    was 7x slower than these adds on CPU, and a third of simulate's time.)"""
    if x.shape[0] == 1:  # also what the portable artefact traces: no out= under vmap
        return x.clone() if prev is None else x + prev
    out = torch.empty(x.shape, dtype=x.dtype if prev is None else torch.result_type(x, prev), device=x.device)
    if prev is None:
        out[0] = x[0]
    else:
        torch.add(x[0], prev, out=out[0])
    for t in range(1, out.shape[0]):
        torch.add(out[t - 1], x[t], out=out[t])
    return out


def increments(total: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
    """The step-by-step differences of a running total (the inverse of `running_total`)."""
    if total.shape[0] == 1:
        return total.clone() if prev is None else total - prev
    out = torch.empty_like(total)
    if prev is None:
        out[0] = total[0]
    else:
        torch.sub(total[0], prev, out=out[0])
    torch.sub(total[1:], total[:-1], out=out[1:])
    return out


class Simulator:
    """Runs a spiking IR graph chunk by chunk. `coding` is the graph's ('rate' or 'count')."""

    def __init__(self, g: Graph, device: str | torch.device = "cpu", analog_mode: str = "mean"):
        if analog_mode not in ANALOG_MODES:
            raise InputError(f"analog mode must be one of {ANALOG_MODES}, got '{analog_mode}'")
        self.g = g
        self.coding = g.meta.get("coding", "rate")
        if self.coding == "count" and analog_mode == "step":
            raise InputError("analog mode 'step' is only meaningful for rate coding")
        self.analog_mode = analog_mode
        self.device = torch.device(device)
        self.consts = constants(g, self.device)
        self.consts = fold_constant_nodes(g, self.consts, skip=lambda op: get(op).spiking)
        self.last = last_uses(g)
        self.spiking = [n for n in g.nodes if get(n.op).spiking]
        # wall seconds per op type over the steps, when the caller wants them (a host device only:
        # a GPU's ops would be timed as they are queued)
        self.op_seconds: dict[str, float] | None = None
        self._traced = False  # (set per chunk by advance)

    # -- state ---------------------------------------------------------------------------------------
    def init_state(self) -> dict[str, torch.Tensor]:
        """All-zero state; tensors are created lazily at the first chunk (their batch size)."""
        return {}

    # -- one chunk -----------------------------------------------------------------------------------
    def run_chunk(self, *args: Any, **kwargs: Any) -> dict[str, Sig]:
        """`advance` without autograd."""
        with torch.no_grad():
            return self.advance(*args, **kwargs)

    def advance(
        self,
        feeds: Mapping[str, np.ndarray | torch.Tensor],
        t0: int | torch.Tensor,
        tc: int,
        state: dict[str, torch.Tensor],
        record: dict[str, torch.Tensor] | None = None,
        keep: set[str] | None = None,
        observe: Callable[[str, Sig], None] | None = None,
    ) -> dict[str, Sig]:
        """Advance steps t0+1 .. t0+tc (t0 = steps already run). Updates `state` in place.

        Returns the graph outputs (and values in `keep`) as Sig. If `record` is given, per-node
        event counts are accumulated into it: record[value] += sum over time and batch of |spikes|.
        `observe(name, sig)` sees every node output as it is computed.
        """
        env: dict[str, Sig] = {k: Sig(v, True) for k, v in prepare_feeds(self.g, feeds, self.device).items()}
        keep = set(keep or ()) | set(self.g.outputs)
        steps = torch.arange(1, tc + 1, device=self.device, dtype=torch.float32) + t0
        self._chunk = (steps, state, isinstance(t0, int) and t0 == 0)
        self._traced = not isinstance(t0, int)  # the portable step: no branching on values
        for i, n in enumerate(self.g.nodes):
            if all(o in self.consts for o in n.outputs):
                continue
            ins = [Sig(self.consts[x], True) if x in self.consts else env[x] for x in n.inputs]
            if self.op_seconds is None:
                outs = self._node(n, ins, tc, steps, state, record)
            else:
                clock = time.perf_counter()
                outs = self._node(n, ins, tc, steps, state, record)
                self.op_seconds[n.op] = self.op_seconds.get(n.op, 0.0) + time.perf_counter() - clock
            for name, s in zip(n.outputs, outs, strict=True):
                env[name] = s
                if observe is not None:
                    observe(name, s)
            for x in n.inputs:
                if x in env and self.last.get(x, -1) <= i and x not in keep:
                    del env[x]
        for k in keep:  # what callers read (decode, the portable step) is each step's signal
            if k in env and not env[k].static:
                self._stream(env[k], k)
        return {k: env[k] for k in keep if k in env}

    # -- the two forms of a stream -------------------------------------------------------------------
    def _total_key(self, name: str) -> str:
        return f"{name}/total"  # the value's running total at the end of the previous chunk

    def _stream(self, sig: Sig, name: str) -> torch.Tensor:
        """Each step's signal of a stream (made from its running values if it has only those)."""
        if sig.data is None:
            steps, state, _ = self._chunk
            key = self._total_key(name)
            run = sig.run
            total = run * self._time_shape(steps, run) if self.coding == "rate" else run
            sig.data = increments(total, state.get(key))
            state[key] = total[-1].clone()
        return sig.data

    def _running(self, sig: Sig, name: str) -> torch.Tensor:
        """The decoded running value of a stream at each step (made from its signal if needed)."""
        if sig.run is None:
            if not sig.data.is_floating_point():  # masks, indices: a level at each step, not events
                sig.run = sig.data
                return sig.run
            steps, state, _ = self._chunk
            key = self._total_key(name)
            total = running_total(sig.data, state.get(key))
            state[key] = total[-1].clone()  # not a view: it would keep the chunk alive
            sig.run = total / self._time_shape(steps, total) if self.coding == "rate" else total
        return sig.run

    def _node(self, n: Node, ins: list[Sig], tc, steps, state, record) -> list[Sig]:
        op = get(n.op)
        attrs = op.with_defaults(n.attrs)
        if op.spiking:
            return [self._neuron(n, attrs, ins, tc, steps, state, record)]
        stream = frozenset(i for i, s in enumerate(ins) if not s.static)
        if not stream:
            return [Sig(o, True) for o in self._apply(n, [s.data for s in ins], record)]
        if op.affine_in(stream):
            return self._affine(n, ins, stream, tc, steps)
        if self.analog_mode == "step":
            return self._per_step(n, ins, tc, record)
        return self._decoded(n, ins, stream, tc, record)

    def _batched(self, n: Node) -> list[bool]:
        """Which inputs carry the outer (time x) sample axis: all but the constants."""
        return [x not in self.consts for x in n.inputs]

    def _run(self, n: Node, args: list[torch.Tensor]) -> list[torch.Tensor]:
        """The op on args (n's inputs, or the first of them: an op without its optional last ones)."""
        return run_batched(n.op, n.attrs, args, self._batched(n)[: len(args)])

    def _apply(
        self,
        n: Node,
        args: list[torch.Tensor],
        record: dict[str, torch.Tensor] | None,
        changed: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """The op on sample-major args, recording the spikes inside ops that have neurons inside
        (summed over the folded time x batch axis); `changed` marks the inputs that received
        events this step."""
        op = get(n.op)
        if op.events is None or record is None:
            return self._run(n, args)
        out, ev = run_batched_events(n.op, n.attrs, args, self._batched(n), changed)
        for kind, e in ev.items():
            key = internal_key(n.outputs[0], kind)
            accumulate(record, key, e.sum(0))
        return out

    @staticmethod
    def _time_shape(steps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return steps.view((-1,) + (1,) * (like.dim() - 1))

    def _expand_static(self, x: torch.Tensor, tc: int, steps: torch.Tensor) -> torch.Tensor:
        """A static value as a stream: every step (rate) or only at step 1 (count)."""
        s = x.unsqueeze(0).expand((tc,) + tuple(x.shape))
        if self.coding == "count":
            s = s * self._time_shape(steps == 1, s).to(s.dtype)
        return s

    def _affine(
        self, n: Node, ins: list[Sig], stream: frozenset[int], tc: int, steps: torch.Tensor
    ) -> list[Sig]:
        # on running values where every varying input has them: an affine op of running means is
        # the running mean of its outputs (rate), of running totals the running total with the
        # constant term once (count)
        on_run = all(ins[i].run is not None for i in stream)
        args = [
            _fold(s.run if on_run else self._stream(s, n.inputs[i]))
            if i in stream
            else self._static_arg(n, i, s, tc)
            for i, s in enumerate(ins)
        ]
        events = not on_run and self.coding == "count"  # each step's events, count coding
        if events and tc > 1 and self._rows_apart(n, ins, stream):
            sparse = self._event_rows(n, ins, args, tc, steps)
            if sparse is not None:
                return [Sig(sparse, False)]
        if events and self._bias(n, ins, stream):
            # the op without its bias at every step, its constant term (the bias, broadcast as the
            # op does: f(0)) added to step 1
            (y,) = self._run(n, args[:-1])
            y = _unfold(y, tc)
            if bool(steps[0] == 1):
                y[0] += self._constant_term(n, ins, stream)[0]  # (y is the op's own new output)
            return [Sig(y, False)]
        outs = [_unfold(o, tc) for o in self._run(n, args)]
        if on_run:
            return [Sig(None, False, run=o) for o in outs]
        if self.coding == "count":
            # the op's constant term (bias, static addends) belongs to step 1 only
            # a non-finite constant term (an additive -inf mask) stays in every step's value: the
            # running total keeps it, where subtracting it again would make inf - inf = NaN
            zero_out = [torch.where(torch.isfinite(z), z, 0.0) for z in self._constant_term(n, ins, stream)]
            outs = [
                o if not self._traced and not bool(z.any()) else self._after_step_one(o, z, steps)
                for o, z in zip(outs, zero_out, strict=True)
            ]  # (an op whose constant term is zero, a Reshape or a product with weights: o as it is)
        return [Sig(o, False) for o in outs]

    def _constant_term(self, n: Node, ins: list[Sig], stream: frozenset[int]) -> list[torch.Tensor]:
        """The op's outputs with its varying inputs at zero ([B, ...]): its bias and static addends,
        which count coding's running totals take once, at step 1."""
        zargs = [torch.zeros_like(s.data[0]) if i in stream else s.data for i, s in enumerate(ins)]
        return self._run(n, zargs)

    def _bias(self, n: Node, ins: list[Sig], stream: frozenset[int]) -> bool:
        """Is the node a layer (the registry's flag: weights at input 1, an optional bias at input 2,
        its whole constant term) with a bias that is a finite constant, varying in its input 0
        alone? Then the op without the bias is f(x) - f(0): count coding's steps after the first
        run it so, and the bias is added to step 1 alone, where adding it to every step and taking
        it away again were two passes over the output. Not asked in the portable step (traced)."""
        if self._traced or stream != {0} or len(ins) != 3 or not has_flag(n.op, "layer", n.attrs):
            return False
        return self._is_const(n, 2) and bool(torch.isfinite(ins[2].data).all())

    def _rows_apart(self, n: Node, ins: list[Sig], stream: frozenset[int]) -> bool:
        """A synaptic op on one stream whose rows (all but the last axis) are computed apart from
        each other (the registry's leading_axes with every other input a constant: a Linear)."""
        op = get(n.op)
        if not op.synaptic or stream != {0} or op.leading_axes is None or len(n.outputs) != 1:
            return False
        if not all(self._is_const(n, i) for i in range(1, len(ins))):
            return False
        ranks = [ins[0].data.dim() - 2] + [s.data.dim() for s in ins[1:]]
        return op.leading_axes(op.with_defaults(n.attrs), ranks, self._batched(n))

    def _event_rows(
        self, n: Node, ins: list[Sig], args: list[torch.Tensor], tc: int, steps: torch.Tensor
    ) -> torch.Tensor | None:
        """Count coding, event-driven: the op only on the rows that received events (a settled
        neuron sends none); a row without events contributes nothing after step 1 and the op's
        constant term at step 1. The steps that open the chunk with most rows live (the network has
        not settled yet) run whole, as a slice: gathering them would cost more than it saves. The op
        runs without its constant term: its bias (`_bias`) left out, or none to leave (a product
        with weights). None when every step is such a step (the dense op), or the
        constant term is anything else."""
        rows = args[0].reshape(-1, args[0].shape[-1])
        per = rows.shape[0] // tc  # rows per step
        live = (rows != 0).any(-1)
        dense = live.view(tc, per).sum(1) > 0.5 * per
        head = int(dense.to(torch.int64).cumprod(0).sum())  # leading steps run whole
        if head == tc:
            return None
        bias = self._bias(n, ins, frozenset({0}))
        (z,) = self._constant_term(n, ins, frozenset({0}))
        if not bool(torch.isfinite(z).all()) or (not bias and bool(z.any())):
            return None
        rest = args[1:-1] if bias else args[1:]
        out = torch.empty((tc * per, z.shape[-1]), dtype=z.dtype, device=z.device)
        if head:
            out[: head * per] = self._run(n, [rows[: head * per], *rest])[0]
        tail = out[head * per :]
        tail.zero_()
        idx = live[head * per :].nonzero().squeeze(1)
        if len(idx):
            tail.index_add_(0, idx, self._run(n, [rows[head * per :][idx], *rest])[0])
        if bias and bool(steps[0] == 1):  # the constant term once, at step 1
            out[:per] += z.reshape(per, -1)
        return out.reshape((tc,) + tuple(z.shape))

    def _after_step_one(self, o: torch.Tensor, z: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """o - z at every step after step 1 (o's own steps unchanged at step 1), in one pass."""
        if o.shape[0] == 1:  # also what the portable artefact traces (t0 a tensor there)
            return o - z * self._time_shape(steps > 1, o).to(o.dtype)
        k = int(steps[0] == 1)
        out = torch.empty_like(o)  # not in place: o may be a view of the op's input
        out[:k] = o[:k]
        torch.sub(o[k:], z, out=out[k:])
        return out

    def _is_const(self, n: Node, i: int) -> bool:
        return n.inputs[i] in self.consts

    def _received(self, n: Node, ins: list[Sig], i: int) -> torch.Tensor:
        """[tc, B, ...]: where input i of n received events at each step of the chunk."""
        return self._stream(ins[i], n.inputs[i]) != 0

    def _static_arg(self, n: Node, i: int, s: Sig, tc: int) -> torch.Tensor:
        """A static input beside streams: a constant as it is, a run-time value repeated per step."""
        if self._is_const(n, i):
            return s.data
        return _fold(s.data.unsqueeze(0).expand((tc,) + tuple(s.data.shape)))

    def _per_step(self, n: Node, ins: list[Sig], tc: int, record=None) -> list[Sig]:
        args = [
            self._static_arg(n, i, s, tc) if s.static else _fold(self._stream(s, n.inputs[i]))
            for i, s in enumerate(ins)
        ]
        return [Sig(_unfold(o, tc), False) for o in self._apply(n, args, record)]

    def _decoded(self, n, ins, stream, tc, record=None) -> list[Sig]:
        """f applied to the decoded running inputs: its output's running value."""
        changed = None
        if get(n.op).events is not None and self.coding == "count" and len(stream) == 1:
            # an op with neurons inside re-evaluates only the rows whose input received events
            # (rate coding's running mean moves every step); the first step always evaluates
            (i,) = stream
            changed = _fold(self._received(n, ins, i))
            if self._chunk[2]:
                changed[: ins[i].data.shape[1]] = True
        elif record is not None and self.coding == "count":
            self._record_row_evaluations(n, ins, stream, tc, record)
        args = [
            self._static_arg(n, i, s, tc) if i not in stream else _fold(self._running(s, n.inputs[i]))
            for i, s in enumerate(ins)
        ]
        outs = []
        for o in self._apply(n, args, record, changed):
            f = _unfold(o, tc)
            # a comparison or index of running values is its level at each step
            outs.append(Sig(f, False, run=f) if not f.is_floating_point() else Sig(None, False, run=f))
        return outs

    def _record_row_evaluations(
        self, n: Node, ins: list[Sig], stream: frozenset[int], tc: int, record: dict[str, torch.Tensor]
    ) -> None:
        """Count coding: an analog op on running totals whose rows (all but the last axis) are
        computed apart (the registry's leading_axes) changes a row only at steps where one of its
        inputs' rows received events; the others keep their value. Records, per row, the steps it had
        to be evaluated (step 1 always), so the energy count charges those and no more. The
        simulator itself evaluates every row (on a CPU the dense op is cheaper); the output is the
        same."""
        op = get(n.op)
        if op.leading_axes is None or op.cost is None or len(n.outputs) != 1 or op.synaptic:
            return
        shape = self.g.values[n.outputs[0]].shape
        if not shape or any(self.g.values[n.inputs[i]].shape != shape for i in stream):
            return  # rows of the output are rows of every varying input (row-wise, elementwise ops)
        batched = self._batched(n)
        # per-sample ranks: a stream is [tc, B, ...], a run-time static value [B, ...]
        ranks = [(s.data if s.run is None else s.run).dim() - (i in stream) - b for i, (s, b) in
                 enumerate(zip(ins, batched, strict=True))]  # fmt: skip
        if not op.leading_axes(op.with_defaults(n.attrs), ranks, batched):
            return
        rows = None
        for i in sorted(stream):
            hit = self._received(n, ins, i).any(-1)  # [tc, B, *leading]
            rows = hit if rows is None else rows | hit
        if self._chunk[2]:
            rows[0] = True  # the first step evaluates every row
        accumulate(record, internal_key(n.outputs[0], EVALUATIONS), rows.sum(dim=(0, 1), dtype=torch.float32))

    def _neuron(self, n: Node, a: dict, ins: list[Sig], tc, steps, state, record) -> Sig:
        """Any neuron kind: its state lives in `state` under NODE/NAME, its step runs the chunk."""
        kind = get(n.op).neuron
        x, theta = ins[0], ins[1].data
        cur = self._expand_static(x.data, tc, steps) if x.static else self._stream(x, n.inputs[0])
        own = {k: state[f"{n.name}/{k}"] for k in kind.state if f"{n.name}/{k}" in state}
        unsigned = kind.never_negative(a)
        # per sample, summed over the chunk: |events| and (count coding) the steps a neuron worked,
        # i.e. received or sent events (a settled neuron that receives nothing and sends nothing does
        # no work that step; rate coding's neurons integrate a current at every step)
        if kind.records_in_step and record is not None:  # (not in the portable step: out= under vmap)
            tally: dict[str, torch.Tensor] = {}
            out, new = kind.step(cur, theta, own, a, records=tally)
            mag, runs = tally["events"], tally.get("evaluations")
        else:
            s, new = kind.step(cur, theta, own, a)
            out = s * theta
            mag = s.sum(0) if unsigned else s.abs().sum(0) if record is not None else None
            runs = None
            if record is not None and self.coding == "count":
                runs = torch.logical_or(cur, s).sum(0, dtype=s.dtype)
        for k, v in new.items():
            state[f"{n.name}/{k}"] = v
        if record is not None:
            accumulate(record, n.outputs[0], mag.sum(0))
            if runs is not None:
                accumulate(record, internal_key(n.outputs[0], EVALUATIONS), runs.sum(0))
        return Sig(out, False, mag * theta if unsigned else None)

    # -- decoding ------------------------------------------------------------------------------------
    def decode(
        self, sig: Sig, t0: int | torch.Tensor, tc: int, prev_total: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Running decoded value at each step of the chunk ([Tc, B, ...]) and the new running total."""
        if sig.run is not None and not sig.static:  # made as running values (prev_total not needed)
            last = sig.run[-1] * (t0 + tc) if self.coding == "rate" else sig.run[-1]
            return sig.run, last.clone()
        steps = torch.arange(1, tc + 1, device=sig.data.device, dtype=torch.float32) + t0
        data = self._expand_static(sig.data, tc, steps) if sig.static else sig.data
        total = running_total(data, prev_total)
        if self.coding == "rate":
            return total / self._time_shape(steps, total), total[-1].clone()
        return total, total[-1].clone()
