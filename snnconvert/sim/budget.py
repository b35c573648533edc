"""How many samples and how many timesteps `simulate` holds in memory at once.

The simulator runs a chunk of steps for a batch of samples with time folded into the batch axis, so
its working set grows with batch x chunk. Left alone (one chunk of all T steps, a fixed batch of
64) a ViT-Base export met the kernel's OOM killer instead of an error. The plan below estimates the
bytes from the graph's per-sample shapes, before any work, and picks the largest batch (up to the
user's) and chunk that fit the budget, or refuses in one line. The estimate is deliberately an
upper bound: every value a chunk computes is taken as a stream, every op's temporaries as
`TEMPORARIES` times its inputs and outputs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from snnconvert.errors import InputError
from snnconvert.ir.execute import last_uses
from snnconvert.ir.graph import Graph
from snnconvert.ir.registry import get

#: Steps in one chunk at most: beyond this the folded tensors stop fitting in the CPU's caches
#: (measured on the built-in ViT, bench/bench_simulate_cost.py) and memory would grow with T.
MAX_CHUNK = 16
#: Default budget: this fraction of the machine's memory.
DEFAULT_FRACTION = 0.25
#: An op's transient tensors, as a multiple of its inputs' and outputs' bytes (the decoded ops hold
#: a running total, the decoded value, the output, its running total and its increments).
TEMPORARIES = 3

_ITEMSIZE = {
    "float64": 8,
    "int64": 8,
    "int32": 4,
    "float16": 2,
    "bfloat16": 2,
    "bool": 1,
    "uint8": 1,
    "int8": 1,
}
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def machine_memory() -> int:
    """Physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def current_rss() -> int:
    """This process's resident memory now, in bytes (Linux /proc; 0 where that is unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def parse_budget(text: str | None) -> int:
    """'6G', '512M', '2.5GB', '8GiB' or plain bytes; None gives the default fraction of memory."""
    if text is None:
        return int(machine_memory() * DEFAULT_FRACTION)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(i?[bB])?\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise InputError(f"--memory-budget must be a size such as 6G, 512M or 2.5GB, got '{text}'")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


@dataclass(frozen=True)
class Footprint:
    """Bytes simulate needs: `fixed` once, `per_sample` per sample of a batch (its neuron state,
    running totals, the per-layer totals kept for fidelity, the ANN reference), `per_step` per
    sample and step of a chunk (the values in flight); `ann_kept` per sample to keep the ANN's
    values from its first run to the end of the batch instead of running it again."""

    fixed: int
    per_sample: int
    per_step: int
    ann_kept: int = 0
    held: int = 0  # of `fixed`, what the process held before (varies run to run)
    # per sample, the ANN's gradient pass that finds which entries reach the output (every value
    # kept for the backward, and a gradient per tracked value), on top of the values kept
    reaching: int = 0

    def total(self, batch: int, chunk: int) -> int:
        return self.fixed + batch * self.per_sample + batch * chunk * self.per_step


def _bytes(g: Graph, name: str) -> int:
    v = g.values[name]
    return v.numel * _ITEMSIZE.get(v.dtype, 4)


def _peak_live(g: Graph, consts: set[str]) -> int:
    """The most bytes of one sample's values alive at once over a forward pass, temporaries included."""
    last = last_uses(g)
    live = {x: _bytes(g, x) for x in g.inputs}
    peak = 0
    for i, n in enumerate(g.nodes):
        outs = [o for o in n.outputs if o not in consts]
        if not outs:
            continue
        io = sum(_bytes(g, x) for x in n.inputs if x not in consts) + sum(_bytes(g, o) for o in outs)
        live.update({o: _bytes(g, o) for o in outs})
        peak = max(peak, sum(live.values()) + TEMPORARIES * io)
        for x in n.inputs:
            if x in live and last.get(x, -1) <= i:
                del live[x]
    return peak


def _state(g: Graph, consts: set[str]) -> int:
    """Neuron state, and the running totals kept by ops that act on decoded values."""
    total = 0
    for n in g.nodes:
        op = get(n.op)
        if op.spiking:
            total += len(op.neuron.state) * sum(_bytes(g, o) for o in n.outputs)
            continue
        varying = frozenset(i for i, x in enumerate(n.inputs) if x not in consts)
        if varying and not op.affine_in(varying):
            total += sum(_bytes(g, x) for x in n.inputs if x not in consts)
            total += sum(_bytes(g, o) for o in n.outputs)
    return total


def footprint(snn: Graph, ann: Graph, tracked: list[str], consts: set[str], baseline: int) -> Footprint:
    """`consts`: the SNN's values computed once (initializers and what folds from them);
    `baseline`: bytes already held (the process with both graphs loaded)."""
    ann_consts = set(ann.initializers)
    layers = sum(_bytes(snn, o) for o in tracked)
    per_sample = (
        layers  # the SNN's totals, compared with the ANN at the end
        + _state(snn, consts)
        + _peak_live(ann, ann_consts)  # the ANN reference and the limit run, one after the other
    )
    events = sum(_bytes(snn, o) for n in snn.nodes if get(n.op).spiking for o in n.outputs)
    every = sum(_bytes(ann, o) for n in ann.nodes for o in n.outputs if o not in ann_consts)
    return Footprint(baseline + events, per_sample, _peak_live(snn, consts), layers, baseline, every + layers)


@dataclass(frozen=True)
class Plan:
    batch: int
    chunk: int
    budget: int
    estimate: int
    keep_ann: bool = False  # the ANN's values kept from its first run (one ANN forward, not two)
    held: int = 0  # of the estimate, what the process held before simulating
    reaching_fits: bool = False  # the gradient pass that finds the entries reaching the output

    def to_json(self) -> dict[str, int | bool]:
        return {
            "batch_size": self.batch,
            "time_chunk": self.chunk,
            "memory_budget_bytes": self.budget,
            # what simulating adds to the loaded process (the process itself varies run to run,
            # and the result file is the same for the same inputs)
            "memory_estimate_bytes": self.estimate - self.held,
            "ann_values_kept": self.keep_ann,
        }


def plan(
    fp: Footprint, samples: int, batch_size: int, timesteps: int, budget: int, chunk: int | None = None
) -> Plan:
    """The user's batch (at most) and the longest chunk (at most MAX_CHUNK, or `chunk`) that fit;
    the batch is halved first, since the per-sample state is the part a shorter chunk does not
    shrink. The ANN's values are kept through the batch where that still fits."""
    batch = max(1, min(batch_size, samples))
    chunk = min(timesteps, MAX_CHUNK if chunk is None else chunk)
    while fp.total(batch, chunk) > budget and batch > 1:
        batch = max(1, batch // 2)
    while fp.total(batch, chunk) > budget and chunk > 1:
        chunk = max(1, chunk // 2)
    need = fp.total(batch, chunk)
    if need > budget:
        raise InputError(
            f"--memory-budget {gib(budget)} is too small for this model: one sample at one step needs "
            f"about {gib(need)} (this process holds {gib(fp.fixed)} before simulating); raise the budget"
        )
    keep = need + batch * fp.ann_kept <= budget
    # (before the SNN's state exists: the values kept and the pass, on what the process holds)
    reach = keep and fp.fixed + batch * (fp.ann_kept + fp.reaching) <= budget
    return Plan(batch, chunk, budget, need + (batch * fp.ann_kept if keep else 0), keep, fp.held, reach)
