"""The IR every stage reads and writes: plain data only, so it serialises to JSON + .npz without pickle.

A graph describes ONE sample: every shape is concrete, the shape of that tensor when the model
runs on a single sample. An ONNX import keeps the export's own axes, so the axis that was the
batch stays in the shapes with size 1 (`meta["batch_axes"]` says where, per input and output; None
when a sample has no such axis). The executor and the simulator run many samples (and timesteps)
by vectorising over an outer axis the ops never see, so an export may permute, split or merge its
axes however its author wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

DOMAINS = ("analog", "spike")
CODINGS = ("rate", "count")
# Exports mask attention by adding -inf or the dtype's lowest number (HF: finfo.min) to the
# scores; an entry at or below this is a masked position, not an activation.
MASK_FLOOR = -1e30


@dataclass
class Value:
    """A named tensor: its per-sample shape, dtype name, and after conversion a domain."""

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
    def numel(self) -> int:
        """Elements per sample."""
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


@dataclass(eq=False)  # identity: list searches and sets of nodes must not compare fields
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

    # -- queries (indexed: a pass over a graph of thousands of nodes asks them per node) -------------
    def _index(self) -> _Index:
        idx = self.__dict__.get("_idx")
        if idx is None or idx.nodes_id != id(self.nodes) or idx.n_nodes != len(self.nodes):
            idx = _Index.build(self.nodes)
            self.__dict__["_idx"] = idx
        return idx

    def touch(self) -> None:
        """Forget the query index: call after rewiring a node's inputs/outputs in place."""
        self.__dict__.pop("_idx", None)

    def node(self, name: str) -> Node:
        n = self._index().by_name.get(name)
        if n is None:
            raise KeyError(name)
        return n

    def producer(self, value: str) -> Node | None:
        return self._index().producer.get(value)

    def consumers(self, value: str) -> list[Node]:
        return list(self._index().consumers.get(value, ()))

    def has_node(self, name: str) -> bool:
        return name in self._index().by_name

    def batch_axis(self, name: str) -> int | None:
        """Where the sample's batch-of-one axis sits in a graph input or output (None: it has none)."""
        axes = self.meta.get("batch_axes", {})
        if name in axes:
            return None if axes[name] is None else int(axes[name])
        shape = self.values[name].shape if name in self.values else ()
        return 0 if shape and shape[0] == 1 else None

    def input_signature(self, n: Node) -> tuple[list, list, list]:
        """(shapes, dtypes, constant values or None) of a node's inputs, as shape inference takes them."""
        shapes, dtypes, consts = [], [], []
        for i in n.inputs:
            if i in self.initializers:
                a = self.initializers[i]
                shapes.append(tuple(a.shape))
                dtypes.append(str(a.dtype))
                consts.append(a)
            else:
                v = self.values[i]
                shapes.append(v.shape)
                dtypes.append(v.dtype)
                consts.append(None)
        return shapes, dtypes, consts

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
        """A value/node/initializer name not used yet in this graph (nor handed out before)."""
        idx = self._index()

        def taken(x: str) -> bool:
            return x in self.values or x in self.initializers or x in idx.by_name or x in idx.reserved

        name, i = base, 0
        while taken(name):
            i += 1
            name = f"{base}_{i}"
        idx.reserved.add(name)
        return name

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


@dataclass
class _Index:
    nodes_id: int
    n_nodes: int
    by_name: dict[str, Node]
    producer: dict[str, Node]
    consumers: dict[str, list[Node]]
    reserved: set[str]

    @staticmethod
    def build(nodes: list[Node]) -> _Index:
        by_name: dict[str, Node] = {}
        producer: dict[str, Node] = {}
        consumers: dict[str, list[Node]] = {}
        for n in nodes:
            by_name.setdefault(n.name, n)
            for o in n.outputs:
                producer.setdefault(o, n)
            for i in dict.fromkeys(n.inputs):
                consumers.setdefault(i, []).append(n)
        return _Index(id(nodes), len(nodes), by_name, producer, consumers, set())
