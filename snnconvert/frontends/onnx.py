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
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from snnconvert.errors import GraphError, InputError, UnsupportedModelError
from snnconvert.frontends.onnx_ctx import _ONNX_DTYPES, HANDLERS, Ctx, handles  # noqa: F401 (re-exported)
from snnconvert.frontends.ort import SHAPE_ONLY, OrtRunner, _classify, _ort_message, ort_values  # noqa: F401
from snnconvert.ir.graph import Graph, Value

MIN_OPSET = 11
ALIASES = {"Identity", "Dropout"}


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
    try:  # by path: the checker reads the file itself faster than it is handed the parsed model
        onnx.checker.check_model(str(p))
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

    def runner(extra: list[str], what: str, arrays: dict[str, np.ndarray] | None = None) -> OrtRunner:
        """One session for the folding and the batch check: the static values and the outputs."""
        if "r" not in runners:
            outs = [o.name for o in model.graph.output]
            runners["r"] = OrtRunner(model, list(dict.fromkeys([*extra, *outs])), source, what, arrays)
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


def _fold_static(
    model: onnx.ModelProto,
    g: Graph,
    static_from_nodes: set[str],
    runner: Callable[..., OrtRunner],
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
            consts.update(runner(list(needed), what, consts).run(feeds, what, list(needed)))
        except InputError as e:
            taken = ", ".join(f"{k} axis {g.meta['batch_axes'][k]}" for k in g.inputs)
            raise InputError(
                f"{e} (on one sample, the samples taken on {taken}: if they are elsewhere, give --batch-axis NAME=AXIS)"
            ) from None
    return consts


# the handlers register themselves on import
from snnconvert.frontends import (  # noqa: E402,F401
    onnx_ops,
    onnx_ops_elementwise,
    onnx_ops_index,
    onnx_ops_reduce,
)
