"""The committed zoo artefacts are what zoo.json and the docs say they are (no training here: fast)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from helpers import npz
from onnx import TensorProto, helper

from snnconvert.zoo.models import build_model
from tools.train_zoo import (
    ALLOWED_OPS,
    DATA_DIR,
    MAX_ONNX_BYTES,
    N_CALIB,
    REQUIRED_OPS,
    TARGETS,
    ZOO_DIR,
    check_onnx,
    onnx_logits,
)

MODELS = ["vit", "mlp", "cnn"]
N_TEST = 540


@pytest.fixture(scope="module")
def zoo() -> dict[str, Any]:
    return json.loads((ZOO_DIR / "zoo.json").read_text())


def _npz(name: str) -> dict[str, np.ndarray]:
    return npz(DATA_DIR / name)


@pytest.fixture(scope="module")
def test_set() -> dict[str, np.ndarray]:
    return _npz("digits_test.npz")


@pytest.fixture(scope="module")
def calib_set() -> dict[str, np.ndarray]:
    return _npz("digits_calib.npz")


def _onnx_path(zoo: dict[str, Any], name: str) -> Path:
    return ZOO_DIR / zoo["models"][name]["file"]


@pytest.mark.parametrize("name", MODELS)
def test_onnx_file_is_small_valid_and_uses_allowed_ops(zoo: dict[str, Any], name: str) -> None:
    path = _onnx_path(zoo, name)
    assert path.name == f"digits_{name}.onnx"
    data = path.read_bytes()
    assert len(data) <= MAX_ONNX_BYTES
    entry = zoo["models"][name]
    assert hashlib.sha256(data).hexdigest() == entry["sha256"], (
        "file changed without rerunning tools/train_zoo.py"
    )
    model = onnx.load_from_string(data)  # would not resolve external data: it must all be inline
    ops = check_onnx(model)
    assert set(ops) <= ALLOWED_OPS
    assert REQUIRED_OPS[name] <= set(ops)
    assert dict(sorted(ops.items())) == entry["op_types"]


@pytest.mark.parametrize("name", MODELS)
def test_onnxruntime_reproduces_recorded_accuracy(
    zoo: dict[str, Any], test_set: dict[str, np.ndarray], name: str
) -> None:
    entry = zoo["models"][name]
    logits = onnx_logits(_onnx_path(zoo, name).read_bytes(), test_set["x"])
    assert logits.shape == (N_TEST, 10)
    correct = int((logits.argmax(1) == test_set["y"]).sum())
    assert entry["test_samples"] == N_TEST
    assert correct == entry["test_correct"]
    assert correct / N_TEST == entry["test_accuracy"]
    assert entry["test_accuracy"] >= TARGETS[name]


@pytest.mark.parametrize("name", MODELS)
def test_onnx_batch_axis_is_dynamic(zoo: dict[str, Any], test_set: dict[str, np.ndarray], name: str) -> None:
    data = _onnx_path(zoo, name).read_bytes()
    full = onnx_logits(data, test_set["x"][:7])
    for lo, hi in ((0, 1), (1, 7)):
        np.testing.assert_allclose(onnx_logits(data, test_set["x"][lo:hi]), full[lo:hi], atol=1e-5)


def test_npz_files_have_documented_keys_shapes_and_dtypes(
    test_set: dict[str, np.ndarray], calib_set: dict[str, np.ndarray]
) -> None:
    for arrays, n in ((test_set, N_TEST), (calib_set, N_CALIB)):
        assert sorted(arrays) == ["x", "y"]
        assert arrays["x"].shape == (n, 1, 8, 8) and arrays["x"].dtype == np.float32
        assert arrays["y"].shape == (n,) and arrays["y"].dtype == np.int64
        assert arrays["x"].min() >= 0.0 and arrays["x"].max() <= 1.0
        # pixels/16 are exact in float32, so every value is a multiple of 1/16
        assert np.array_equal(arrays["x"] * 16, np.round(arrays["x"] * 16))
        assert set(np.unique(arrays["y"])) == set(range(10))


def test_calibration_and_test_sets_do_not_overlap(
    test_set: dict[str, np.ndarray], calib_set: dict[str, np.ndarray]
) -> None:
    test_rows = {r.tobytes() for r in test_set["x"]}
    calib_rows = [r.tobytes() for r in calib_set["x"]]
    assert len(set(calib_rows)) == N_CALIB
    assert not test_rows & set(calib_rows)


def test_data_files_match_the_documented_sklearn_split(
    test_set: dict[str, np.ndarray], calib_set: dict[str, np.ndarray]
) -> None:
    pytest.importorskip("sklearn")
    from tools.train_zoo import load_split

    split = load_split()
    np.testing.assert_array_equal(test_set["x"], split.x_test)
    np.testing.assert_array_equal(test_set["y"], split.y_test)
    np.testing.assert_array_equal(calib_set["x"], split.x_train[split.calib_index])
    np.testing.assert_array_equal(calib_set["y"], split.y_train[split.calib_index])


@pytest.mark.parametrize("name", MODELS)
def test_torch_models_forward_shapes(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name).eval()
    with torch.no_grad():
        for batch in (1, 5):
            assert model(torch.rand(batch, 1, 8, 8)).shape == (batch, 10)


def test_param_counts_match_zoo_json(zoo: dict[str, Any]) -> None:
    for name in MODELS:
        assert sum(p.numel() for p in build_model(name).parameters()) == zoo["models"][name]["params"]


def test_build_model_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown zoo model"):
        build_model("resnet")


def test_check_onnx_rejects_ops_outside_the_allowed_set() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 64])
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["flat"]),
        helper.make_node("Erf", ["flat"], ["e"]),
        helper.make_node("Slice", ["e", "starts", "ends", "axes"], ["logits"]),
    ]
    inits = [
        shape,
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [10]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(RuntimeError, match=r"op types not allowed: \['Erf'\]"):
        check_onnx(model)
