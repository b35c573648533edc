"""ONNX -> IR. One small handler per ONNX op type, registered by op type.

The IR describes one sample, so the model is imported at batch size 1: every value that does not
depend on input data (Shape/Gather/Concat chains, Constant, ConstantOfShape, ...) is evaluated by
onnxruntime and becomes a constant, and every shape is concrete. The export's own axes are kept,
the batch axis among them with size 1, so a handler maps an ONNX op to IR ops without any rule
about where the batch is. Whether that per-sample program is the model is then checked: at batch
2, onnxruntime must give what two runs at batch 1 give (samples must not interact).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from snnconvert.errors import GraphError, InputError, UnsupportedModelError
from snnconvert.ir.build import add_node as _add_node
from snnconvert.ir.graph import Graph, Node, Value

MIN_OPSET = 11
# Ops whose output never depends on input data values: folded, never emitted.
SHAPE_ONLY = {"Shape", "Size"}
ALIASES = {"Identity", "Dropout"}

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


def supported_ops() -> list[str]:
    return sorted(set(HANDLERS) | SHAPE_ONLY | ALIASES | {"Constant", "ConstantOfShape"})


# -- loading ------------------------------------------------------------------------------------------
def read_model(path: str | Path) -> onnx.ModelProto:
    """Parse and check an ONNX file; every failure is one line naming the file."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not an ONNX file")
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file")
    try:
        model = onnx.load_model(str(p), load_external_data=False)
    except Exception as e:  # protobuf DecodeError, ...
        detail = str(e).splitlines()[0] if str(e) else "truncated or corrupt"
        raise InputError(f"{p}: not a valid ONNX model ({type(e).__name__}: {detail[:200]})") from None
    _check_names(model, p)
    _load_external_data(model, p)
    if not model.HasField("graph") or not model.graph.node:
        raise InputError(f"{p}: ONNX model has no graph nodes")
    opset = opset_of(model, p)
    max_opset = onnx.defs.onnx_opset_version()
    if opset < MIN_OPSET or opset > max_opset:
        raise InputError(f"{p}: opset {opset} is outside the supported range {MIN_OPSET}..{max_opset}")
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        detail = " ".join(str(e).split())  # the checker's messages span lines (node name on the 2nd)
        raise InputError(f"{p}: ONNX checker rejected the model: {detail[:300]}") from None
    if not model.graph.output:
        raise InputError(f"{p}: the model declares no outputs")
    return model


def _check_names(model: onnx.ModelProto, p: Path) -> None:
    """Protobuf hands back invalid UTF-8 strings as bytes (a corrupt file): refuse them by field."""
    g = model.graph
    for kind, items in (
        ("input", g.input),
        ("output", g.output),
        ("initializer", g.initializer),
        ("value_info", g.value_info),
    ):
        for i, v in enumerate(items):
            if not isinstance(v.name, str):
                raise InputError(f"{p}: graph {kind} #{i}: name is not valid UTF-8 ({v.name[:40]!r})")
    for i, n in enumerate(g.node):
        for f in ("name", "op_type", "domain"):
            if not isinstance(getattr(n, f), str):
                raise InputError(f"{p}: node #{i}: field '{f}' is not valid UTF-8 ({getattr(n, f)[:40]!r})")
        for f in ("input", "output"):
            for j, v in enumerate(getattr(n, f)):
                if not isinstance(v, str):
                    raise InputError(f"{p}: node #{i} ({n.name}): {f}[{j}] is not valid UTF-8 ({v[:40]!r})")
        for a in n.attribute:
            if not isinstance(a.name, str):
                raise InputError(f"{p}: node #{i} ({n.name}): an attribute name is not valid UTF-8")


def _load_external_data(model: onnx.ModelProto, p: Path) -> None:
    """Read tensors stored beside the model file, naming the data file that is missing or short."""
    from onnx import external_data_helper as ext

    tensors = [t for t in ext._get_all_tensors(model) if ext.uses_external_data(t)]
    for t in tensors:
        try:
            loc = Path(ext.ExternalDataInfo(t).location or "")
        except Exception as e:  # an offset/length that is not a number, ...
            raise InputError(f"{p}: tensor '{t.name}' has malformed external data fields ({e})") from None
        inside = (p.parent / loc).resolve().is_relative_to(p.parent.resolve())  # symlinks followed
        if loc.is_absolute() or ".." in loc.parts or not inside:
            raise InputError(f"{p}: tensor '{t.name}' points outside the model's directory ('{loc}')")
        if not (p.parent / loc).is_file():
            raise InputError(f"{p}: external data file '{loc}' (tensor '{t.name}') is missing")
    if not tensors:
        return
    try:
        ext.load_external_data_for_model(model, str(p.parent))
    except Exception as e:
        detail = " ".join(str(e).split()) or type(e).__name__
        raise InputError(f"{p}: cannot read external data ({type(e).__name__}: {detail[:200]})") from None
    for t in tensors:
        if t.data_type not in _ONNX_DTYPES:
            continue  # sub-byte and other types: their own readers check the size
        want = int(np.prod(t.dims, dtype=np.int64)) * np.dtype(_ONNX_DTYPES[t.data_type]).itemsize
        if len(t.raw_data) != want:
            raise InputError(
                f"{p}: external data for tensor '{t.name}' has {len(t.raw_data)} bytes, expected {want}"
            )


def opset_of(model: onnx.ModelProto, path: Path | str = "model") -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise InputError(f"{path}: no default-domain opset import")


def unsupported_nodes(
    model: onnx.ModelProto, folded: set[str] | frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """(name, op type) of every node the import cannot handle. Default-domain nodes whose outputs are
    all in `folded` (shape arithmetic, evaluated by onnxruntime at import) need no handler."""
    known = set(supported_ops())
    bad = []
    for i, n in enumerate(model.graph.node):
        default = n.domain in ("", "ai.onnx")
        if default and (n.op_type in known or all(o in folded for o in n.output if o)):
            continue
        bad.append((n.name or f"#{i}", ("" if default else n.domain + ".") + n.op_type))
    return bad


def load_onnx(
    path: str | Path,
    input_shapes: dict[str, list[int]] | None = None,
    batch_axes: dict[str, int] | None = None,
) -> Graph:
    """Import an ONNX file as a per-sample IR graph (validated, shape arithmetic folded, canonicalised)."""
    model = read_model(path)
    return import_model(model, input_shapes, source=str(path), batch_axes=batch_axes)


def import_model(
    model: onnx.ModelProto,
    input_shapes: dict[str, list[int]] | None = None,
    source: str = "model",
    batch_axes: dict[str, int] | None = None,
) -> Graph:
    """`input_shapes` gives dynamic dims (-1 marks the batch), `batch_axes` the axis that holds the
    samples per input when it is not the first (default: what the ONNX dim names say, else 0)."""
    init_names = {i.name for i in model.graph.initializer}
    data_inputs = [i for i in model.graph.input if i.name not in init_names]
    _, static = _classify(model, {i.name for i in data_inputs})
    bad = unsupported_nodes(model, static)
    if bad:
        listed = ", ".join(f"{n} ({t})" for n, t in bad)
        raise UnsupportedModelError(f"{source}: {len(bad)} unsupported node(s): {listed}")
    opset = opset_of(model, source)
    g = Graph(nodes=[], values={}, inputs=[], outputs=[], meta={"source": Path(source).name, "opset": opset})
    for opt, what in ((input_shapes, "--input-shape"), (batch_axes, "--batch-axis")):
        unknown = set(opt or {}) - {i.name for i in data_inputs}
        if unknown:
            raise InputError(f"{source}: {what} names unknown input(s) {', '.join(sorted(unknown))}")
    axes: dict[str, int | None] = {}
    for inp in data_inputs:
        shape, dtype, axis = _input_shape(
            inp, (input_shapes or {}).get(inp.name), (batch_axes or {}).get(inp.name), source
        )
        g.inputs.append(inp.name)
        g.values[inp.name] = Value(inp.name, shape, dtype)
        axes[inp.name] = axis
    if not g.inputs:
        raise InputError(f"{source}: the model has no data inputs")
    g.meta["batch_axes"] = axes
    runners: dict[str, OrtRunner] = {}

    def runner(extra: list[str], what: str) -> OrtRunner:
        """One session for the folding and the batch check: the static values and the outputs."""
        if "r" not in runners:
            outs = [o.name for o in model.graph.output]
            runners["r"] = OrtRunner(model, list(dict.fromkeys([*extra, *outs])), source, what)
        return runners["r"]

    consts = _fold_static(model, g, static, runner)
    ctx = Ctx(model, opset, g, consts)
    for node in model.graph.node:
        if all(o in static or not o for o in node.output):
            continue  # static: folded
        if node.op_type in ALIASES:
            ctx.rename[node.output[0]] = ctx.input(node.input[0])
            continue
        if not node.name:  # name it as the IR will, so that errors can say which node
            named = onnx.NodeProto()
            named.CopyFrom(node)
            named.name = f"{node.op_type}_{node.output[0]}"
            node = named
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        try:
            HANDLERS[node.op_type](ctx, node, attrs)
        except (GraphError, UnsupportedModelError, InputError) as e:
            msg = str(e)
            raise type(e)(msg if msg.startswith(source) else f"{source}: {msg}") from None
    for out in model.graph.output:
        name = ctx.name(out.name)
        if name in consts:
            raise UnsupportedModelError(f"{source}: output '{out.name}' does not depend on the inputs")
        if name in g.outputs:
            raise UnsupportedModelError(f"{source}: output '{out.name}' is another output under a new name")
        g.outputs.append(name)
    from snnconvert.frontends.batch_check import output_batch_axes

    out_axes, note = output_batch_axes(
        model, g, [ctx.name(o.name) for o in model.graph.output], source, runner([], "running the model")
    )
    for o, ax in out_axes.items():
        g.meta["batch_axes"][o] = ax
    if note:
        g.meta.setdefault("import_notes", []).append(note)
    from snnconvert.frontends.canonicalize import canonicalize

    canonicalize(g)
    g.remove_unused()
    from snnconvert.ir.validate import validate

    validate(g, source=source, check_shapes=False)  # every node's shapes were inferred as it was added
    return g


BATCH_NAMES = ("batch", "batch_size", "batchsize", "n", "b", "bs", "num_samples")


def _says_batch(label: str) -> bool:
    """Does an ONNX dim name say it holds the samples (e.g. 'batch', 'batch_size', 's0' does not)?"""
    low = label.strip().lower()
    return low in BATCH_NAMES or low.startswith("batch")


def _input_shape(
    inp: onnx.ValueInfoProto, override: list[int] | None, axis: int | None, source: str
) -> tuple[tuple[int, ...], str, int]:
    """(one sample's shape with a batch of one on its axis, dtype, batch axis)."""
    tt = inp.type.tensor_type
    dtype = _ONNX_DTYPES.get(tt.elem_type)
    if dtype is None:
        raise UnsupportedModelError(
            f"{source}: input '{inp.name}' has unsupported element type {tt.elem_type}"
        )
    if not tt.HasField("shape"):
        raise InputError(
            f"{source}: input '{inp.name}' has no declared shape: give --input-shape {inp.name}=..."
        )
    dims = list(tt.shape.dim)
    if not dims:
        raise UnsupportedModelError(f"{source}: input '{inp.name}' is a scalar; a batch axis is required")
    rank = len(dims)
    if override is not None and len(override) != rank:
        raise InputError(
            f"{source}: --input-shape for '{inp.name}' has {len(override)} dims, the model {rank}"
        )
    marked = [i for i, d in enumerate(override or []) if d == -1]
    if len(marked) > 1:
        raise InputError(f"{source}: --input-shape for '{inp.name}' marks more than one batch axis (N)")
    if axis is not None:
        if not -rank <= axis < rank:
            raise InputError(f"{source}: --batch-axis {inp.name}={axis} is outside the input's {rank} axes")
        axis %= rank
        if marked and marked[0] != axis:
            raise InputError(
                f"{source}: --batch-axis {inp.name}={axis} disagrees with N at axis {marked[0]} of --input-shape"
            )
    elif marked:
        axis = marked[0]
    else:
        named = [i for i, d in enumerate(dims) if d.HasField("dim_param") and _says_batch(d.dim_param)]
        axis = named[0] if len(named) == 1 else 0
    shape = []
    for i, d in enumerate(dims):
        if i == axis:
            if d.HasField("dim_value") and d.dim_value > 1 and override is None:
                raise InputError(
                    f"{source}: input '{inp.name}' holds exactly {d.dim_value} samples on axis {i} (a fixed "
                    "size): export with a dynamic batch axis, or give the axis that holds the samples with "
                    f"--batch-axis {inp.name}=AXIS"
                )
            shape.append(1)
        elif override is not None:
            if override[i] <= 0:
                raise InputError(f"{source}: --input-shape for '{inp.name}': dim {i} must be positive")
            shape.append(int(override[i]))
        elif d.HasField("dim_value") and d.dim_value > 0:
            shape.append(int(d.dim_value))
        else:
            label = d.dim_param or "?"
            hint = ",".join(
                "N" if j == axis else str(dd.dim_value) if dd.dim_value > 0 else "?"
                for j, dd in enumerate(dims)
            )
            raise InputError(
                f"{source}: input '{inp.name}' dim {i} ('{label}') is dynamic: give its size with "
                f"--input-shape {inp.name}={hint} (replace each ? by a size; N marks the samples' axis, taken to be "
                f"{axis}: if they are on another axis, put N there)"
            )
    return tuple(shape), dtype, axis


def _classify(model: onnx.ModelProto, data_inputs: set[str]) -> tuple[set[str], set[str]]:
    """(values that depend on input data, values computed by nodes that do not)."""
    dynamic = set(data_inputs)
    static: set[str] = set()
    for node in model.graph.node:
        is_dyn = node.op_type not in SHAPE_ONLY and any(i in dynamic for i in node.input if i)
        for o in node.output:
            if o:
                (dynamic if is_dyn else static).add(o)
    return dynamic, static


def _fold_static(
    model: onnx.ModelProto,
    g: Graph,
    static_from_nodes: set[str],
    runner: Callable[[list[str], str], OrtRunner],
) -> dict[str, np.ndarray]:
    """Every value that does not depend on input data (and that data-dependent nodes read),
    evaluated at batch 1 by onnxruntime, plus the initializers."""
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dynamic, _ = _classify(model, set(g.inputs))
    needed: dict[str, None] = {}
    for node in model.graph.node:
        if node.op_type in SHAPE_ONLY or not any(o in dynamic for o in node.output):
            continue
        for i in node.input:
            if i in static_from_nodes:
                needed[i] = None
    for o in model.graph.output:
        if o.name in static_from_nodes:
            needed[o.name] = None
    if needed:
        feeds = {
            name: np.zeros(g.values[name].shape, dtype=np.dtype(g.values[name].dtype)) for name in g.inputs
        }
        what = "evaluating the model's shape arithmetic"
        try:
            consts.update(runner(list(needed), what).run(feeds, what, list(needed)))
        except InputError as e:
            taken = ", ".join(f"{k} axis {g.meta['batch_axes'][k]}" for k in g.inputs)
            raise InputError(
                f"{e} (on one sample, the samples taken on {taken}: if they are elsewhere, give --batch-axis NAME=AXIS)"
            ) from None
    return consts


class OrtRunner:
    """One onnxruntime session over the model with `names` exposed as outputs (no graph
    optimisation, so every value the file names exists); sessions of a large model take seconds
    to build, so an import builds one and runs it as often as it needs."""

    def __init__(self, model: onnx.ModelProto, names: list[str], source: str, what: str):
        import onnxruntime as ort

        self.names, self.source = list(names), source
        m = onnx.ModelProto()
        m.CopyFrom(model)
        existing = {o.name for o in m.graph.output}
        for n in self.names:
            if n not in existing:
                m.graph.output.append(onnx.helper.make_empty_tensor_value_info(n))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 4  # errors come back as exceptions; 3 would also print them on stderr
        try:
            self.sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise InputError(f"{source}: {what} failed: {_ort_message(e)}") from None

    def run(
        self, feeds: dict[str, np.ndarray], what: str, names: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """The named values on `feeds`; a failure is one line saying what was being done."""
        want = self.names if names is None else names
        try:
            outs = self.sess.run(want, feeds)
        except Exception as e:
            raise InputError(f"{self.source}: {what} failed: {_ort_message(e)}") from None
        return dict(zip(want, outs, strict=True))


def ort_values(
    model: onnx.ModelProto, feeds: dict[str, np.ndarray], names: list[str], source: str, what: str
) -> dict[str, np.ndarray]:
    """The named values of the model on `feeds`, by a one-off OrtRunner."""
    return OrtRunner(model, names, source, what).run(feeds, what)


def _ort_message(e: Exception) -> str:
    """onnxruntime's error without its status prefix and C++ source locations, on one line."""
    import re

    msg = " ".join(str(e).split())
    msg = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", msg)
    msg = re.sub(r"/onnxruntime_src/\S+:\d+ (onnxruntime::[\w:]+\([^)]*\) )?", "", msg)
    msg = msg.replace("Non-zero status code returned while running ", "")
    return msg[:300] or type(e).__name__


# the handlers register themselves on import
from snnconvert.frontends import (  # noqa: E402,F401
    onnx_ops,
    onnx_ops_elementwise,
    onnx_ops_index,
    onnx_ops_reduce,
)
