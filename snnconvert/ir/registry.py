"""The closed op registry: one entry per IR op with its ANN reference, attribute schema and op count.

Shape inference runs the ANN reference on torch "meta" tensors, so an op is defined once (its
reference computation) and its shapes can never disagree with what it computes.

Every other fact a stage needs about an op is a flag of its entry (see `FLAGS`), asked with
`has_flag(op, flag, attrs)`: no stage keeps its own list of op names, so an op is added in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

Shape = tuple[int, ...]
# The cost of one op application per sample, by kind of operation: "mac" (multiply-accumulate of a
# synapse), and elementwise kinds "add", "mul", "div", "exp", "sqrt", "cmp" (comparison/select).
Cost = dict[str, int]
# The event kind of an op with neurons inside that counts its applications per element (not spikes).
EVALUATIONS = "evaluations"
# The simulation's record of the events inside the op that produces value v: key f"{v}{INTERNAL}{kind}"
# (what simulate writes to events.npz and energy-report reads).
INTERNAL = "#"
# A fact about an op: constant, or a predicate of the node's attributes (defaults filled in).
Flag = bool | Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Attr:
    """Schema of one attribute: python type(s) accepted and a default (REQUIRED when none)."""

    kind: type | tuple[type, ...]
    default: Any = None
    required: bool = False


@dataclass(frozen=True)
class OpDef:
    name: str
    run: Callable[..., Any]  # run(attrs, *tensors) -> Tensor | tuple[Tensor, ...]
    attrs: dict[str, Attr] = field(default_factory=dict)
    cost: Callable[[dict[str, Any], Sequence[Shape], Sequence[Shape]], Cost] | None = None
    # Given the indices of inputs that vary over time, is the op affine in them (the others fixed)?
    # The simulator feeds affine ops the per-step signal; others see the decoded running value.
    affine_in: Callable[[frozenset[int]], bool] = lambda s: False
    doc: str = ""
    n_outputs: int = 1  # -1: given by the node (Split)
    spiking: bool = False  # a neuron: stateful in the simulator
    neuron: Any = None  # its snnconvert.neurons.NeuronKind (state, step, update cost)
    # An op with neurons inside that settle within one application (SpikingSoftmax): returns
    # (outputs, {kind: per-element event counts, output-shaped}); the simulator records them.
    events: Callable[..., tuple[Any, dict[str, Any]]] | None = None
    # Its SNN cost per sample from those events (summed over elements and executions):
    # snn_cost(attrs, in_shapes, out_shapes, events, executions) -> (ACs, elementwise ops by kind).
    snn_cost: Callable[..., tuple[float, dict[str, float]]] | None = None
    analog_parts: str = ""  # what inside such an op is not driven by spikes (for the energy report)
    # The op on sample-major inputs (every input given the outer axis), for an op whose torch.vmap
    # rule reads the batch size as a number, which torch.export (the portable SNN) then fixes.
    run_many: Callable[..., Any] | None = None
    # Does `run` already treat extra leading axes of its batched inputs as separate samples, for
    # these attributes, per-sample input ranks and batched flags? Then many samples run through it
    # as they are: torch.vmap's dispatch cost 0.05-0.5 ms a call, most of a small batch's time.
    leading_axes: Callable[[dict[str, Any], Sequence[int], Sequence[bool]], bool] | None = None
    # channel_axis(attrs, input ranks, output rank): the axis of its output's channels, where the op
    # fixes one (a convolution's or a pool's feature map [(1,) C, spatial...]: the axis before its
    # spatial ones); None: its output's channels are its input's (elementwise ops, normalisations)
    # or where its rank says (calibrate.observe.channel_axis)
    channel_axis: Callable[[dict[str, Any], Sequence[int], int], int] | None = None

    # -- flags (see FLAGS for what each one means and who reads it) --
    moves_data: Flag = False
    reorders: Flag = False
    keeps_spikes: Flag = False
    scaling: Flag = False
    synaptic: Flag = False
    layer: Flag = False
    pool: Flag = False
    accumulates_once: Flag = False
    spike_source: Flag = False
    selects: Flag = False
    converts: Flag = False
    normalization: Flag = False
    activation: Flag = False
    bilinear: Flag = False

    def with_defaults(self, attrs: dict[str, Any]) -> dict[str, Any]:
        out = {k: a.default for k, a in self.attrs.items() if not a.required}
        out.update(attrs)
        return out


# What each flag says about an op (and, in brackets, the stages that ask).
FLAGS: dict[str, str] = {
    "spiking": "a neuron: stateful in the simulator (simulator, passes, energy)",
    "moves_data": "pure data movement: the output holds the input's numbers, rearranged, copied or "
    "padded; it costs nothing, is not observed again, and needs no neuron (calibrate, inspect, "
    "spike_all, energy)",
    "reorders": "a data move that keeps every element once (a reshape, a permutation): its output's "
    "fidelity is its input's (simulate's per-layer table)",
    "keeps_spikes": "its output is a spike train when all its run-time inputs are: data moves and "
    "sums of spike trains (passes: domains; energy: event maps)",
    "scaling": "with one run-time input, in a position it is affine in, and the rest constant, it "
    "scales events by a constant weight: spikes stay spikes, their number unchanged (passes, energy)",
    "synaptic": "a weighted sum of its inputs, its constant operands the weights (a layer's: input 1): "
    "fed by spikes it costs one accumulate per event and output it reaches (energy)",
    "layer": "a synaptic layer: run-time input 0, constant weight at input 1, optional bias at input "
    "2, linear in both, so a scale can move into them (normalize, energy)",
    "pool": "averages windows of attrs['kernel'] inputs: every event of a window reaches the output, "
    "so its event map is the window's sum (energy)",
    "accumulates_once": "fed by spikes it costs one accumulate per input event (energy)",
    "spike_source": "an activation whose output a rate-coded neuron replaces, scaled by its "
    "calibrated percentile (normalize)",
    "selects": "selects or compares values without computing new ones: a fully spiking network puts "
    "no neuron after it, its consumer's neuron quantises them (spike_all)",
    "converts": "changes only its input's dtype: no compute (inspect), and no neuron after it in a "
    "fully spiking network (spike_all)",
    "normalization": "an analog normalisation (softmax, layer norm): it acts on running totals and "
    "stays analog even in a fully spiking network (inspect)",
    "activation": "an elementwise non-linear activation function (convert's coverage notes)",
    "bilinear": "the product of its two run-time operands, elementwise (x * y): fed by two spike "
    "trains, each event adds the other's running value once per output it reaches (energy)",
}

OPS: dict[str, OpDef] = {}


def internal_key(value: str, kind: str) -> str:
    return f"{value}{INTERNAL}{kind}"


def internal_records(records: Mapping[str, Any], value: str) -> dict[str, Any]:
    """The records of the neurons inside the op that produces `value`, by kind."""
    prefix = value + INTERNAL
    return {k[len(prefix) :]: v for k, v in records.items() if k.startswith(prefix)}


def is_spike_record(key: str) -> bool:
    """Records that count spikes (not the per-element evaluations of an op with neurons inside)."""
    return not key.endswith(INTERNAL + EVALUATIONS)


def register(op: OpDef) -> OpDef:
    if op.name in OPS:
        raise ValueError(f"op {op.name} registered twice")
    OPS[op.name] = op
    return op


def get(name: str) -> OpDef:
    from snnconvert.errors import GraphError

    try:
        return OPS[name]
    except KeyError:
        raise GraphError(f"unknown IR op '{name}'") from None


def has_flag(op: str, flag: str, attrs: dict[str, Any] | None = None) -> bool:
    """Does op `op` (with the node's `attrs`) carry `flag`? A flag that depends on attributes (Pad
    keeps spikes only when it copies events or pads zeros) is evaluated on them, defaults filled in."""
    if flag not in FLAGS:
        raise ValueError(f"unknown op flag '{flag}' (known: {', '.join(FLAGS)})")
    d = get(op)
    value = getattr(d, flag)
    return bool(value(d.with_defaults(attrs or {})) if callable(value) else value)


def run_op(op: str, attrs: dict[str, Any], inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Execute one op's ANN reference; always returns a list of outputs."""
    d = get(op)
    out = d.run(d.with_defaults(attrs), *inputs)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def vectorised(
    fn: Callable[..., Any], inputs: Sequence[torch.Tensor | None], batched: Sequence[bool]
) -> tuple[torch.Tensor, ...]:
    """fn(*inputs) for a per-sample fn on many samples at once: the inputs flagged in `batched`
    carry an outer axis 0 (samples, or time x samples) that fn never sees; the others (weights,
    constants) are shared. torch.vmap does the vectorising, so a reference is written once, for
    one sample, and cannot depend on how many samples run together. fn returns a tuple."""
    if not any(batched):
        return tuple(fn(*inputs))
    if next(x for x, b in zip(inputs, batched, strict=True) if b).shape[0] == 1:
        # one sample: plain ops, nothing to vectorise (this is also what the portable SNN traces,
        # so that its program holds no vmap and a user's torch.vmap can run it on a batch)
        one = [x[0] if b else x for x, b in zip(inputs, batched, strict=True)]
        return tuple(o.unsqueeze(0) for o in fn(*one))
    in_dims = tuple(0 if b else None for b in batched)
    return tuple(torch.vmap(fn, in_dims=in_dims)(*inputs))


def run_batched(
    op: str, attrs: dict[str, Any], inputs: Sequence[torch.Tensor], batched: Sequence[bool]
) -> list[torch.Tensor]:
    """run_op over an outer axis of samples (see `vectorised`)."""
    d = get(op)
    full = d.with_defaults(attrs)

    def per_sample(*xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = d.run(full, *xs)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)

    if d.leading_axes is not None and any(batched):
        ranks = [x.dim() - 1 if b else x.dim() for x, b in zip(inputs, batched, strict=True)]
        n = next(x for x, b in zip(inputs, batched, strict=True) if b).shape[0]
        # one sample keeps vectorised's plain per-sample path (what the portable SNN traces)
        if n > 1 and d.leading_axes(full, ranks, batched):
            out = d.run(full, *inputs)
            return list(out) if isinstance(out, (tuple, list)) else [out]
    if d.run_many is not None and any(batched):
        n = next(x for x, b in zip(inputs, batched, strict=True) if b).shape[0]
        xs = [x if b else x.unsqueeze(0).expand((n, *x.shape)) for x, b in zip(inputs, batched, strict=True)]
        out = d.run_many(full, *xs)
        return list(out) if isinstance(out, (tuple, list)) else [out]
    return list(vectorised(per_sample, inputs, batched))


def broadcasts_leading(a: dict[str, Any], ranks: Sequence[int], batched: Sequence[bool]) -> bool:
    """`leading_axes` of an elementwise op with ONNX (right-aligned) broadcasting: the leading axes
    line up when every batched input has the same per-sample rank and no shared one has more."""
    rb = {r for r, b in zip(ranks, batched, strict=True) if b}
    return len(rb) == 1 and all(r <= min(rb) for r, b in zip(ranks, batched, strict=True) if not b)


def run_batched_events(
    op: str,
    attrs: dict[str, Any],
    inputs: Sequence[torch.Tensor],
    batched: Sequence[bool],
    changed: torch.Tensor | None = None,
) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """An op with neurons inside over an outer axis of samples: (outputs, events by kind), the
    events shaped like the outputs with the same outer axis. `changed` is batched like inputs."""
    d = get(op)
    full = d.with_defaults(attrs)
    kinds: list[str] = []

    def per_sample(*xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ch = xs[-1] if changed is not None else None
        out, ev = d.events(full, *(xs[:-1] if changed is not None else xs), changed=ch)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        kinds[:] = [str(len(outs))] + sorted(ev)
        return (*outs, *(ev[k] for k in sorted(ev)))

    args = [*inputs, changed] if changed is not None else list(inputs)
    flags = [*batched, True] if changed is not None else list(batched)
    res = vectorised(per_sample, args, flags)
    n_out = int(kinds[0])
    return list(res[:n_out]), dict(zip(kinds[1:], res[n_out:], strict=True))


def infer_shapes(
    op: str, attrs: dict[str, Any], shapes: Sequence[Shape], dtypes: Sequence[str], consts: Sequence[Any]
) -> list[tuple[Shape, str]]:
    """Output (shape, dtype) per output, by running the reference on meta tensors.

    `consts` holds the numpy value of constant inputs (None for data) so index-like constants
    keep their dtype. Data inputs run as two samples through `run_batched`, exactly as the
    executor will run them, so an op whose reference cannot be vectorised fails here, at
    import, naming its node, instead of in the middle of a simulation.
    """
    ins, batched = [], []
    for s, dt, c in zip(shapes, dtypes, consts, strict=True):
        if c is not None:
            ins.append(torch.empty(c.shape, dtype=torch_dtype(str(c.dtype)), device="meta"))
            batched.append(False)
        else:
            ins.append(torch.empty((2, *s), dtype=torch_dtype(dt), device="meta"))
            batched.append(True)
    outs = run_batched(op, attrs, ins, batched)
    lead = 1 if any(batched) else 0
    return [(tuple(int(d) for d in o.shape[lead:]), dtype_name(o.dtype)) for o in outs]


_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}


def torch_dtype(name: str) -> torch.dtype:
    return _DTYPES[name]


def dtype_name(dt: torch.dtype) -> str:
    for k, v in _DTYPES.items():
        if v == dt:
            return k
    raise ValueError(f"unsupported dtype {dt}")


def numel(shape: Shape) -> int:
    """Elements of a per-sample shape."""
    return int(np.prod(shape, dtype=np.int64)) if shape else 1
