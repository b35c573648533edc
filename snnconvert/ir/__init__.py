"""The spiking/analog IR: graph dataclasses, the closed op registry, validation, save/load."""

from snnconvert.ir import ops_elementwise, ops_index, ops_math, ops_reduce, ops_shape, ops_spiking  # noqa: F401  (registers the ops)  # noqa: F401  (more ops)
from snnconvert.ir.graph import Graph, Node, Value
from snnconvert.ir.registry import OPS, OpDef, get, run_op

__all__ = ["Graph", "Node", "Value", "OPS", "OpDef", "get", "run_op"]
