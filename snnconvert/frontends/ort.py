"""onnxruntime as the import's oracle: which values are static, and their values on given inputs."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from snnconvert.errors import InputError

# Ops whose output never depends on input data values: folded, never emitted.
SHAPE_ONLY = {"Shape", "Size"}


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


class OrtRunner:
    """One onnxruntime session over the model with `names` exposed as outputs (no graph
    optimisation, so every value the file names exists); sessions of a large model take seconds
    to build, so an import builds one and runs it as often as it needs."""

    def __init__(
        self,
        model: onnx.ModelProto,
        names: list[str],
        source: str,
        what: str,
        arrays: dict[str, np.ndarray] | None = None,
    ):
        """`arrays`: the initializers already decoded (else they are decoded here)."""
        import onnxruntime as ort

        self.names, self.source = list(names), source
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 4  # errors come back as exceptions; 3 would also print them on stderr
        m, big = _without_weights(model)
        existing = {o.name for o in m.graph.output}
        for n in self.names:
            if n not in existing:
                m.graph.output.append(onnx.helper.make_empty_tensor_value_info(n))
        held = [np.ascontiguousarray(arrays[t.name] if arrays else numpy_helper.to_array(t)) for t in big]
        if big:
            opts.add_external_initializers(
                [t.name for t in big], [ort.OrtValue.ortvalue_from_numpy(a) for a in held]
            )
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


def _without_weights(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[onnx.TensorProto]]:
    """A copy of the model whose large initializers are placeholders (declared external), and those
    initializers: onnxruntime takes their arrays from the session options, so a ViT-Base's 346 MB
    are not serialised into a protobuf first (2.3 of its 3 s to start a session)."""
    m = onnx.ModelProto(
        ir_version=model.ir_version,
        opset_import=model.opset_import,
        functions=model.functions,
        metadata_props=model.metadata_props,
    )
    src, dst = model.graph, m.graph
    dst.name = src.name
    for f in ("node", "input", "output", "value_info", "sparse_initializer"):
        getattr(dst, f).extend(getattr(src, f))
    big = []
    for t in model.graph.initializer:
        if len(t.raw_data) <= 1024 or t.data_location == onnx.TensorProto.EXTERNAL:
            m.graph.initializer.append(t)
            continue
        ph = m.graph.initializer.add()
        ph.name, ph.data_type = t.name, t.data_type
        ph.dims.extend(t.dims)
        ph.data_location = onnx.TensorProto.EXTERNAL
        ph.external_data.add(key="location", value="in-memory")
        big.append(t)
    return m, big


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
