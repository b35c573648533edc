"""The IR every stage reads and writes: plain data only, so it serialises to JSON + .npz without pickle.

Shapes include the batch axis as axis 0, written as -1 ("any batch size"); every other dimension is
fixed at import. Keeping the batch axis first is what lets the simulator fold time into the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

DOMAINS = ("analog", "spike")
CODINGS = ("rate", "count")


@dataclass
class Value:
    """A named tensor: shape (batch axis first, -1), dtype name, and after conversion a domain."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    domain: str | None = None
    coding: str | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.domain is not None:
            d["domain"] = self.domain
        if self.coding is not None:
            d["coding"] = self.coding
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> Value:
        return Value(
            name=str(d["name"]),
            shape=tuple(int(s) for s in d["shape"]),
            dtype=str(d.get("dtype", "float32")),
            domain=d.get("domain"),
            coding=d.get("coding"),
        )

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample (the batch axis dropped)."""
        return tuple(self.shape[1:])

    @property
    def numel(self) -> int:
        """Elements per sample."""
        return int(np.prod(self.sample_shape, dtype=np.int64)) if self.shape else 1


@dataclass
class Node:
    """One op application. `attrs` holds plain data (numbers, strings, lists) only."""

    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op": self.op,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "attrs": self.attrs,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> Node:
        return Node(
            name=str(d["name"]),
            op=str(d["op"]),
            inputs=[str(i) for i in d["inputs"]],
            outputs=[str(o) for o in d["outputs"]],
            attrs=dict(d.get("attrs", {})),
        )


@dataclass
class Graph:
    """Nodes in topological order, values by name, graph inputs/outputs and constant initializers."""

    nodes: list[Node]
    values: dict[str, Value]
    inputs: list[str]
    outputs: list[str]
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    # -- queries ---------------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def producer(self, value: str) -> Node | None:
        for n in self.nodes:
            if value in n.outputs:
                return n
        return None

    def consumers(self, value: str) -> list[Node]:
        return [n for n in self.nodes if value in n.inputs]

    def is_const(self, value: str) -> bool:
        return value in self.initializers

    def dynamic_inputs(self, node: Node) -> list[str]:
        """Inputs of `node` that are not initializers (data that flows at run time)."""
        return [i for i in node.inputs if i and i not in self.initializers]

    def copy(self) -> Graph:
        """A deep copy, so a pass can rewrite without touching its argument."""
        import copy as _copy

        return Graph(
            nodes=[
                Node(n.name, n.op, list(n.inputs), list(n.outputs), _copy.deepcopy(n.attrs))
                for n in self.nodes
            ],
            values={
                k: Value(v.name, tuple(v.shape), v.dtype, v.domain, v.coding) for k, v in self.values.items()
            },
            inputs=list(self.inputs),
            outputs=list(self.outputs),
            initializers={k: np.array(v, copy=True) for k, v in self.initializers.items()},
            meta=_copy.deepcopy(self.meta),
        )

    def unique_name(self, base: str) -> str:
        """A value/node/initializer name not used yet in this graph."""
        taken = set(self.values) | set(self.initializers) | {n.name for n in self.nodes}
        if base not in taken:
            return base
        i = 1
        while f"{base}_{i}" in taken:
            i += 1
        return f"{base}_{i}"

    def remove_unused(self) -> None:
        """Drop nodes whose outputs nobody needs, then initializers and values nobody references."""
        needed = set(self.outputs)
        kept: list[Node] = []
        for n in reversed(self.nodes):
            if any(o in needed for o in n.outputs):
                kept.append(n)
                needed.update(i for i in n.inputs if i)
        self.nodes = list(reversed(kept))
        used = needed | set(self.inputs)
        for n in self.nodes:
            used.update(n.outputs)
        self.initializers = {k: v for k, v in self.initializers.items() if k in used}
        self.values = {k: v for k, v in self.values.items() if k in used}
