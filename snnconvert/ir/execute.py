"""Reference executor: runs a per-sample IR graph in float with torch, on many samples at once.

This is the ANN baseline, what calibration observes, and (with every op's reference) the ground
truth the simulator is compared with. Values are freed after their last use to bound memory.

Three layouts meet here. A *model-layout* array is what a data file or onnxruntime holds: the
samples along the input's batch axis. Inside, every run-time value is *sample-major*
[B, *per-sample shape]: the outer axis is the one `run_batched` vectorises over. Constants have
no outer axis.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from snnconvert.errors import GraphError, InputError
from snnconvert.ir.graph import Graph
from snnconvert.ir.registry import run_batched, torch_dtype

Observer = Callable[[str, torch.Tensor], None]


def constants(g: Graph, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The graph's initializers as torch tensors sharing their arrays' memory (no op writes into its
    inputs; a ViT-Base's weights copied once per executor cost a second at each start)."""
    return {k: torch.from_numpy(_writable(v)).to(device) for k, v in g.initializers.items()}


def _writable(v: np.ndarray) -> np.ndarray:
    a = np.asarray(v)
    return a if a.flags.writeable else a.copy()  # torch cannot share a read-only buffer


def last_uses(g: Graph) -> dict[str, int]:
    """Index of the last node reading each value (graph outputs live to the end)."""
    last: dict[str, int] = {}
    for i, n in enumerate(g.nodes):
        for v in n.inputs:
            last[v] = i
    for o in g.outputs:
        last[o] = len(g.nodes)
    return last


def model_shape(g: Graph, name: str, n: int | str) -> list:
    """An input's model-layout shape for `n` samples (n may be "N", for messages)."""
    shape: list = list(g.values[name].shape)
    a = g.batch_axis(name)
    return [n, *shape] if a is None else [*shape[:a], n, *shape[a + 1 :]]


def expected_layout(g: Graph, name: str) -> str:
    """An input's model-layout shape for messages: N where the samples go."""
    return "[" + ", ".join(map(str, model_shape(g, name, "N"))) + "]"


def fold_constant_nodes(
    g: Graph, consts: dict[str, torch.Tensor], skip: Callable[[str], bool] = lambda op: False
) -> dict[str, torch.Tensor]:
    """`consts` plus the outputs of nodes computed from constants only (the same for every sample
    and step), computed once; `skip(op)` leaves an op to run time (the simulator's neurons)."""
    out = dict(consts)
    for n in g.nodes:
        if not skip(n.op) and all(x in out for x in n.inputs):
            args = [out[x] for x in n.inputs]
            out.update(zip(n.outputs, run_batched(n.op, n.attrs, args, [False] * len(args)), strict=True))
    return out


def to_sample_major(g: Graph, name: str, x: torch.Tensor) -> torch.Tensor:
    """A model-layout input -> [B, *per-sample shape]; InputError if its shape does not fit."""
    v = g.values[name]
    a = g.batch_axis(name)
    want = tuple(v.shape)
    if a is None:
        ok = x.dim() == len(want) + 1 and tuple(x.shape[1:]) == want
    else:
        ok = x.dim() == len(want) and all(
            d == w for i, (d, w) in enumerate(zip(x.shape, want, strict=True)) if i != a
        )
    if not ok:
        raise InputError(
            f"input '{name}' has shape {list(x.shape)}, the model expects {expected_layout(g, name)}"
        )
    return x if a is None else x.movedim(a, 0).unsqueeze(a + 1)


def to_model_layout(g: Graph, name: str, t: torch.Tensor, lead: int = 1) -> torch.Tensor:
    """[*outer, *per-sample shape] of a graph output -> the samples back on its batch axis (the
    outer axes before them stay in front: [T, B, ...] keeps T first)."""
    a = g.batch_axis(name)
    if a is None:
        return t
    return t.squeeze(a + lead).movedim(lead - 1, a + lead - 1)


def sample_rows(g: Graph, name: str, t: torch.Tensor, lead: int = 1) -> torch.Tensor:
    """A graph output as [*outer, B, rest]: its batch-of-one axis dropped, samples first."""
    a = g.batch_axis(name)
    return t if a is None else t.squeeze(a + lead)


def prepare_feeds(
    g: Graph, feeds: Mapping[str, np.ndarray | torch.Tensor], device="cpu"
) -> dict[str, torch.Tensor]:
    """Check names/shapes/dtypes of model-layout inputs; return them sample-major as torch tensors."""
    out = {}
    for name in g.inputs:
        if name not in feeds:
            raise InputError(f"missing input '{name}'")
        x = feeds[name]
        t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x, copy=True))
        out[name] = to_sample_major(g, name, t).to(device=device, dtype=torch_dtype(g.values[name].dtype))
    return out


class Executor:
    """Holds the graph's constants on a device and runs batches through the ANN reference."""

    def __init__(self, g: Graph, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
        self.g = g
        self.device = torch.device(device)
        self.consts = constants(g, self.device)
        if dtype is not None:
            self.consts = {k: v.to(dtype) if v.is_floating_point() else v for k, v in self.consts.items()}
        self.dtype = dtype
        self.consts = fold_constant_nodes(g, self.consts)
        self.last = last_uses(g)

    @torch.no_grad()
    def run(
        self,
        feeds: Mapping[str, np.ndarray | torch.Tensor],
        observe: Observer | None = None,
        keep: set[str] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Graph outputs (plus the values named in `keep`), sample-major [B, *shape]; `observe(name,
        tensor)` sees every node output, sample-major, as it is computed."""
        return self._forward(feeds, observe, keep)

    def reaching(
        self, feeds: Mapping[str, np.ndarray | torch.Tensor], names: list[str]
    ) -> dict[str, torch.Tensor]:
        """For each named float value, which of its entries can reach the graph's outputs
        ([B, *shape], bool; {} where that cannot be measured): those in a row (all axes but the
        last) and a column (the last axis) where the outputs' gradient, taken along a seeded random
        direction, is not exactly zero somewhere. A padded token's hidden state never reaches a masked mean (as a key its attention
        weight is exactly 0, its own row is multiplied by 0 at the pooling), nor does an attention
        score at a masked key, nor a CLS-classifier's other tokens after the last attention. Rows
        and columns, not entries: an entry a ReLU turns off has no gradient but still counts (a
        column that ReLU turns off in every row of a sample does not). A value of one row keeps
        every column. A value the output does not depend on differentiably (after a Round, say)
        reaches nowhere."""
        probes: dict[str, torch.Tensor] = {}
        wanted = set(names)

        def probe(name: str, t: torch.Tensor) -> torch.Tensor:
            if name not in wanted or not t.is_floating_point():
                return t
            if t.requires_grad:  # downstream of a probe: its gradient is asked of it directly
                probes[name] = t
                return t
            probes[name] = torch.zeros_like(t, requires_grad=True)  # a source: a zero leaf added
            return t + probes[name]

        try:  # (the same forward has just run without gradients: what fails here is autograd's)
            with torch.enable_grad():
                outs = self._forward(feeds, None, None, probe)
                outs = [
                    outs[o] for o in self.g.outputs if outs[o].is_floating_point() and outs[o].requires_grad
                ]
                if not outs or not probes:
                    return {}
                gen = torch.Generator(device=outs[0].device).manual_seed(0)
                loss = sum(
                    (o * torch.randn(o.shape, generator=gen, device=o.device, dtype=o.dtype)).sum()
                    for o in outs
                )
                grads = torch.autograd.grad(loss, list(probes.values()), allow_unused=True)
        except (RuntimeError, GraphError):  # an op torch has no derivative for: not measured
            return {}
        reach = {}
        for (name, p), gr in zip(probes.items(), grads, strict=True):
            hit = torch.zeros_like(p, dtype=torch.bool) if gr is None else gr != 0
            if hit.dim() < 2:  # a scalar per sample
                reach[name] = hit
                continue
            rows = hit.any(-1, keepdim=True)
            if hit[0, ..., 0].numel() > 1:  # several rows: the columns any of them reaches
                rows = rows & hit.flatten(1, -2).any(1).view(hit.shape[0], *([1] * (hit.dim() - 2)), -1)
            reach[name] = rows.expand(hit.shape)
        return reach

    def _forward(
        self,
        feeds: Mapping[str, np.ndarray | torch.Tensor],
        observe: Observer | None,
        keep: set[str] | None,
        probe: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        env = prepare_feeds(self.g, feeds, self.device)
        if self.dtype is not None:
            env = {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in env.items()}
        batch = next(iter(env.values())).shape[0]
        consts = self.consts
        keep = set(keep or ()) | set(self.g.outputs)
        for i, n in enumerate(self.g.nodes):
            if all(o in consts for o in n.outputs):  # folded at init: shown per sample where asked
                for name in n.outputs:
                    if name in keep or observe is not None:
                        env[name] = consts[name].unsqueeze(0).expand((batch, *consts[name].shape))
                        if observe is not None:
                            observe(name, env[name])
                continue
            args = [consts[x] if x in consts else env[x] for x in n.inputs]
            batched = [x not in consts for x in n.inputs]
            try:
                outs = run_batched(n.op, n.attrs, args, batched)
            except Exception as e:
                shapes = [list(a.shape[1:] if b else a.shape) for a, b in zip(args, batched, strict=True)]
                raise GraphError(
                    f"node '{n.name}' ({n.op}) failed on per-sample inputs {shapes}: {str(e).splitlines()[0]}"
                ) from e
            for name, t in zip(n.outputs, outs, strict=True):
                env[name] = t if probe is None else probe(name, t)
                if observe is not None:
                    observe(name, t)
            for x in n.inputs:
                if x in env and self.last.get(x, -1) <= i and x not in keep:
                    del env[x]
        return {k: env[k] for k in keep if k in env}


def run_graph(g: Graph, feeds: Mapping[str, np.ndarray | torch.Tensor], **kw) -> dict[str, torch.Tensor]:
    """One-shot convenience over Executor: model-layout feeds in, the graph outputs back in model
    layout (as onnxruntime would give them); values named in `keep` sample-major."""
    res = Executor(g).run(feeds, **kw)
    return {k: to_model_layout(g, k, v) if k in g.outputs else v for k, v in res.items()}
