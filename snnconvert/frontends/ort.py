"""onnxruntime as the import's oracle: which values are static, and their values on given inputs."""

from __future__ import annotations

import numpy as np
import onnx

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
