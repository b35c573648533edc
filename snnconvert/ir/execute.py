"""Reference executor: runs an IR graph in float with torch, batched.

This is the ANN baseline, what calibration observes, and (with every op's reference) the ground
truth the simulator is compared with. Values are freed after their last use to bound memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from snnconvert.errors import GraphError, InputError
from snnconvert.ir.graph import Graph
from snnconvert.ir.registry import run_op, torch_dtype

Observer = Callable[[str, torch.Tensor], None]


def constants(g: Graph, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The graph's initializers as torch tensors (float64 kept only if the graph asks for it)."""
    return {k: torch.from_numpy(np.array(v, copy=True)).to(device) for k, v in g.initializers.items()}


def last_uses(g: Graph) -> dict[str, int]:
    """Index of the last node reading each value (graph outputs live to the end)."""
    last: dict[str, int] = {}
    for i, n in enumerate(g.nodes):
        for v in n.inputs:
            last[v] = i
    for o in g.outputs:
        last[o] = len(g.nodes)
    return last


def prepare_feeds(
    g: Graph, feeds: Mapping[str, np.ndarray | torch.Tensor], device="cpu"
) -> dict[str, torch.Tensor]:
    """Check names/shapes/dtypes of the inputs and convert them to torch tensors."""
    out = {}
    for name in g.inputs:
        if name not in feeds:
            raise InputError(f"missing input '{name}'")
        x = feeds[name]
        t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x, copy=True))
        v = g.values[name]
        if tuple(t.shape[1:]) != tuple(v.shape[1:]) or t.dim() != len(v.shape):
            raise InputError(f"input '{name}' has shape {list(t.shape)}, the model expects {list(v.shape)}")
        out[name] = t.to(device=device, dtype=torch_dtype(v.dtype))
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
        self.last = last_uses(g)

    @torch.no_grad()
    def run(
        self,
        feeds: Mapping[str, np.ndarray | torch.Tensor],
        observe: Observer | None = None,
        keep: set[str] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Outputs of the graph (plus the values named in `keep`); `observe(name, tensor)` sees every
        node output as it is computed."""
        env = prepare_feeds(self.g, feeds, self.device)
        if self.dtype is not None:
            env = {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in env.items()}
        keep = set(keep or ()) | set(self.g.outputs)
        for i, n in enumerate(self.g.nodes):
            args = [self.consts[x] if x in self.consts else env[x] for x in n.inputs]
            try:
                outs = run_op(n.op, n.attrs, args)
            except Exception as e:
                shapes = [list(a.shape) for a in args]
                raise GraphError(
                    f"node '{n.name}' ({n.op}) failed on inputs {shapes}: {str(e).splitlines()[0]}"
                ) from e
            for name, t in zip(n.outputs, outs, strict=True):
                env[name] = t
                if observe is not None:
                    observe(name, t)
            for x in n.inputs:
                if x in env and self.last.get(x, -1) <= i and x not in keep:
                    del env[x]
        return {k: env[k] for k in keep if k in env}


def run_graph(g: Graph, feeds: Mapping[str, np.ndarray | torch.Tensor], **kw) -> dict[str, torch.Tensor]:
    """One-shot convenience over Executor."""
    return Executor(g).run(feeds, **kw)
