"""The zoo's torch modules with the trained weights read back from the shipped ONNX files.

The ONNX files are the only place the trained weights live. Initializers whose name and shape match
a state_dict entry are copied as they are (the MLP, the CNN and the ViT's biases, norms and
embeddings). The dynamo-exported ViT stores each Linear's weight as an anonymous MatMul operand
(`val_N`, shape [in, out]): it is found by following the graph, MatMul(x, W) -> Add(., PREFIX.bias),
and loaded transposed into PREFIX.weight. `load_zoo_module` refuses a module that does not
reproduce onnxruntime's outputs on the test split to `atol`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from snnconvert.zoo.models import build_model


def zoo_onnx(name: str) -> Path:
    return Path(str(resources.files("snnconvert") / "zoo" / f"digits_{name}.onnx"))


def data_file(split: str) -> Path:
    return Path(str(resources.files("snnconvert") / "data" / f"digits_{split}.npz"))


def load_npz(split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(data_file(split)) as z:
        return z["x"].astype(np.float32), z["y"].astype(np.int64)


def _state_from_onnx(proto: onnx.ModelProto, want: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    state: dict[str, torch.Tensor] = {}
    for k, shape in want.items():
        a = inits.get(k)
        if a is not None and tuple(a.shape) == tuple(shape):
            state[k] = torch.from_numpy(np.array(a, dtype=np.float32))
    # Linear weights exported as MatMul(x, W[in, out]) followed by Add(., PREFIX.bias)
    producer_of = {o: n for n in proto.graph.node for o in n.output}
    for n in proto.graph.node:
        if n.op_type != "Add":
            continue
        bias = next((i for i in n.input if i.endswith(".bias") and i in inits), None)
        other = next((i for i in n.input if i != bias), None)
        if bias is None or other not in producer_of:
            continue
        mm = producer_of[other]
        if mm.op_type != "MatMul" or mm.input[1] not in inits:
            continue
        key = bias[: -len(".bias")] + ".weight"
        w = inits[mm.input[1]].T
        if key in want and key not in state and tuple(w.shape) == tuple(want[key]):
            state[key] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
    return state


def ort_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def load_zoo_module(name: str, atol: float = 1e-5) -> tuple[torch.nn.Module, float]:
    """(module in eval mode, max |torch - onnxruntime| on the 540 test samples)."""
    path = zoo_onnx(name)
    model = build_model(name).eval()
    want = {k: v.shape for k, v in model.state_dict().items() if v.is_floating_point()}
    state = _state_from_onnx(onnx.load(str(path)), want)
    missing = sorted(set(want) - set(state))
    if missing:
        raise RuntimeError(f"{path.name}: no initializer found for {missing}")
    model.load_state_dict(state, strict=False)  # BatchNorm's integer num_batches_tracked is not exported
    x, _ = load_npz("test")
    ref = ort_outputs(path, x)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    diff = float(np.abs(got - ref).max())
    if not diff <= atol:
        raise RuntimeError(f"{path.name}: torch module differs from onnxruntime by {diff:.2e} (> {atol})")
    return model, diff
