"""What an ONNX op handler works with: the import's state (Ctx) and the handler registry. Its own
module so that the handlers and the importer that loads them import it, not each other."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from snnconvert.ir.build import add_node as _add_node
from snnconvert.ir.graph import Graph, Node

_ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.BOOL: "bool",
}


@dataclass
class Ctx:
    """State of one import: the IR under construction and the folded constants."""

    model: onnx.ModelProto
    opset: int
    g: Graph
    consts: dict[str, np.ndarray]  # values that do not depend on input data, at batch 1
    rename: dict[str, str] = field(default_factory=dict)

    def name(self, v: str) -> str:
        return self.rename.get(v, v)

    def const(self, v: str) -> np.ndarray | None:
        return self.consts.get(v) if v else None

    def input(self, v: str) -> str:
        """The IR value name for an ONNX input, materialising a folded constant as an initializer."""
        if v in self.consts:
            if v not in self.g.initializers:
                self.g.initializers[v] = _as_initializer(self.consts[v])
            return v
        return self.name(v)

    def emit(
        self,
        onnx_node: onnx.NodeProto,
        op: str,
        inputs: list[str],
        attrs: dict[str, Any] | None = None,
        outputs: list[str] | None = None,
        suffix: str = "",
    ) -> list[str]:
        outs = outputs if outputs is not None else list(onnx_node.output[:1])
        name = (onnx_node.name or f"{onnx_node.op_type}_{outs[0]}") + suffix
        node = Node(
            self.g.unique_name(name) if suffix or _taken(self.g, name) else name,
            op,
            inputs,
            outs,
            dict(attrs or {}),
        )
        _add_node(self.g, node)
        return outs


def _taken(g: Graph, name: str) -> bool:
    return g.has_node(name)


def _as_initializer(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    return np.array(a, order="C")  # not ascontiguousarray: it turns a 0-d scalar into shape [1]


# -- handler registry ----------------------------------------------------------------------------------
Handler = Callable[[Ctx, onnx.NodeProto, dict[str, Any]], None]
HANDLERS: dict[str, Handler] = {}


def handles(*op_types: str):
    def deco(f: Handler) -> Handler:
        for t in op_types:
            HANDLERS[t] = f
        return f

    return deco
