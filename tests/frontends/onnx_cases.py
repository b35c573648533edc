"""One-node (or few-node) ONNX models for the frontend op tests, and the one check they all get: import
with snnconvert, run by the reference executor and by onnxruntime on the same random input, compare.

Imported by the test modules in this folder as `onnx_cases` (pytest puts the folder on sys.path)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from snnconvert.frontends.onnx import load_onnx
from snnconvert.ir.execute import run_graph

F, I64, I32, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL
INT64_MAX, INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min
BATCH = 3  # samples fed for a dim named "N"
TOL = 1e-5  # max abs error allowed, relative to max(1, max |onnxruntime output|)
N = helper.make_node
X34 = [("x", F, ["N", 3, 4])]

# Cases whose op acts on axis 0 (the batch axis of an export) feed one sample with that axis declared
# as size 1: the per-sample IR imports them as they are.


@dataclass
class Case:
    """A one-op (or few-op) ONNX model: nodes, data inputs as (name, type, shape with 'N' for the batch),
    outputs, constant initializers, opset, how to draw each input, and pytest marks."""

    id: str
    nodes: list[onnx.NodeProto]
    inputs: list[tuple[str, int, list]]
    outputs: list[str | tuple]  # name (float, shape inferred), (name, type) or (name, type, shape)
    inits: dict[str, np.ndarray] = field(default_factory=dict)
    opset: int = 13
    draw: dict[str, Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]] = field(
        default_factory=dict
    )
    marks: tuple = ()

    def model(self) -> onnx.ModelProto:
        ins = [helper.make_tensor_value_info(n, t, s) for n, t, s in self.inputs]
        outs = []
        for o in self.outputs:
            name, elem, shape = (o, F, None) if isinstance(o, str) else (*o, None)[:3]
            outs.append(helper.make_tensor_value_info(name, elem, shape))
        inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in self.inits.items()]
        graph = helper.make_graph(self.nodes, self.id, ins, outs, inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)], ir_version=8)
        return onnx.shape_inference.infer_shapes(model)  # output shapes: the checker requires them


def params(cases: list[Case]) -> list:
    """pytest parameters for `cases`, with their ids and marks."""
    return [pytest.param(c, id=c.id, marks=c.marks) for c in cases]


def feeds(case: Case, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, t, shape in case.inputs:
        concrete = tuple(BATCH if d == "N" else int(d) for d in shape)
        if name in case.draw:
            out[name] = case.draw[name](rng, concrete)
        elif t == F:
            out[name] = rng.standard_normal(concrete).astype(np.float32)
        elif t in (I64, I32):
            out[name] = rng.integers(0, 10, concrete).astype(np.int64 if t == I64 else np.int32)
        elif t == BOOL:
            out[name] = rng.random(concrete) < 0.5
        else:
            raise AssertionError(t)
    return out


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def run_ort(path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, inputs), strict=True))


def assert_matches_ort(path: Path, inputs: dict[str, np.ndarray], input_shapes=None, tol: float = TOL):
    """Import `path`, run it on `inputs` and compare every output with onnxruntime: integer and boolean
    outputs exactly, float outputs to max abs error <= tol * max(1, max |reference|). Returns the graph."""
    ref = run_ort(path, inputs)
    g = load_onnx(path, input_shapes)
    ours = run_graph(g, inputs)
    assert len(g.outputs) == len(ref)
    for name, r in zip(g.outputs, ref.values(), strict=True):
        o = ours[name].numpy()
        assert o.shape == r.shape, f"{name}: shape {o.shape} vs onnxruntime {r.shape}"
        if r.dtype.kind in "biu":
            assert o.dtype.kind == r.dtype.kind, f"{name}: dtype {o.dtype} vs onnxruntime {r.dtype}"
            np.testing.assert_array_equal(o.astype(r.dtype), r)
            continue
        err = float(np.abs(o.astype(np.float64) - r).max()) if r.size else 0.0
        scale = max(1.0, float(np.abs(r).max())) if r.size else 1.0
        assert err <= tol * scale, f"{name}: max abs error {err:.3g} (output scale {scale:.3g})"
    return g


def check_case(case: Case, tmp_path: Path):
    """The one-node check: the model passes onnx's checker and matches onnxruntime. Returns the graph."""
    path = save(case.model(), tmp_path / f"{case.id}.onnx")
    onnx.checker.check_model(str(path))
    return assert_matches_ort(path, feeds(case))


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, shape).astype(np.float32)


def ids(high):
    return lambda rng, shape: rng.integers(0, high, shape).astype(np.int64)


def weights(*shape, seed=1):
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(np.float32)


def ints(*v):
    return np.array(v, dtype=np.int64)
