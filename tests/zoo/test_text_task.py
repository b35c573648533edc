"""The text transformer's shipped artefacts: the key-order task's data is what TEXT_TASK documents (labels
recomputed here from the tokens), a bag-of-words model cannot solve it, and the ONNX file is the one
zoo.json records (no training here)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import onnx
import pytest
from helpers import npz

from snnconvert.zoo.models import build_model
from tools.train_zoo import (
    DATA_DIR,
    MAX_ONNX_BYTES,
    N_CALIB,
    REQUIRED_OPS,
    TARGETS,
    TEXT_CLASSES,
    TEXT_KEYS,
    TEXT_LENGTH,
    TEXT_MIN_GAP,
    TEXT_VOCAB,
    ZOO_DIR,
    check_onnx,
    load_split,
    onnx_logits,
)


@pytest.fixture(scope="module")
def entry() -> dict[str, Any]:
    return json.loads((ZOO_DIR / "zoo.json").read_text())["models"]["text"]


def _npz(name: str) -> dict[str, np.ndarray]:
    return npz(DATA_DIR / name)


@pytest.fixture(scope="module")
def test_set() -> dict[str, np.ndarray]:
    return _npz("text_test.npz")


def _order_label(row: np.ndarray) -> int:
    """The class from the documented rule, written independently of make_text_task: the ranks of the
    keys in the order they appear, as an index into the lexicographic list of permutations of 3."""
    keys = row[(row >= 1) & (row <= TEXT_KEYS)]
    ranks = np.argsort(np.argsort(keys))
    return int(2 * ranks[0] + (ranks[1] > ranks[2]))


@pytest.mark.parametrize(("name", "n"), [("text_test.npz", 1024), ("text_calib.npz", N_CALIB)])
def test_data_is_the_documented_key_order_task(name: str, n: int) -> None:
    d = _npz(name)
    x, y = d["x"], d["y"]
    assert sorted(d) == ["x", "y"]
    assert x.shape == (n, TEXT_LENGTH) and x.dtype == np.int64
    assert y.shape == (n,) and y.dtype == np.int64
    assert x.min() >= 1 and x.max() < TEXT_VOCAB
    for row, label in zip(x, y, strict=True):
        at = np.flatnonzero((row >= 1) & (row <= TEXT_KEYS))
        assert len(at) == 3 and len(set(row[at])) == 3
        assert np.diff(at).min() >= TEXT_MIN_GAP
        assert _order_label(row) == label
    assert set(np.unique(y)) == set(range(TEXT_CLASSES))


def test_shipped_data_is_the_documented_seeded_split() -> None:
    split = load_split("text")
    test, calib = _npz("text_test.npz"), _npz("text_calib.npz")
    np.testing.assert_array_equal(test["x"], split.x_test)
    np.testing.assert_array_equal(test["y"], split.y_test)
    np.testing.assert_array_equal(calib["x"], split.x_train[split.calib_index])
    assert not {r.tobytes() for r in test["x"]} & {r.tobytes() for r in calib["x"]}


def test_a_bag_of_words_model_scores_chance() -> None:
    """The claim that makes the task need attention and positions: token counts carry no label."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    split = load_split("text")

    def bag(x: np.ndarray) -> np.ndarray:
        return np.stack([np.bincount(r, minlength=TEXT_VOCAB) for r in x]).astype(np.float32)

    clf = sklearn.LogisticRegression(max_iter=300).fit(bag(split.x_train), split.y_train)
    acc = clf.score(bag(split.x_test), split.y_test)
    # chance is 1/6; 1,024 test samples give a binomial standard deviation of 1.2 pp
    assert abs(acc - 1 / TEXT_CLASSES) < 0.05, acc


def test_onnx_file_is_the_recorded_one_with_int64_tokens(entry: dict[str, Any]) -> None:
    data = (ZOO_DIR / "text_transformer.onnx").read_bytes()
    assert entry["file"] == "text_transformer.onnx" and entry["example"] == "text_transformer"
    assert len(data) <= MAX_ONNX_BYTES
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    model = onnx.load_from_string(data)
    ops = check_onnx(model, "text")  # input x int64 [batch, 32], output logits [batch, 6]
    assert REQUIRED_OPS["text"] <= set(ops)
    assert dict(sorted(ops.items())) == entry["op_types"]
    with pytest.raises(RuntimeError, match="expected \\[batch, 1, 8, 8\\]"):
        check_onnx(model)  # the digits checks do not pass a token model


def test_onnxruntime_reproduces_recorded_accuracy(entry: dict[str, Any], test_set) -> None:
    data = (ZOO_DIR / "text_transformer.onnx").read_bytes()
    logits = onnx_logits(data, test_set["x"])
    assert logits.shape == (len(test_set["y"]), TEXT_CLASSES)
    correct = int((logits.argmax(1) == test_set["y"]).sum())
    assert correct == entry["test_correct"] and entry["test_samples"] == len(test_set["y"])
    assert entry["test_accuracy"] >= TARGETS["text"]
    np.testing.assert_allclose(onnx_logits(data, test_set["x"][3:4]), logits[3:4], atol=1e-5)


def test_torch_model_matches_the_recorded_size(entry: dict[str, Any]) -> None:
    import torch

    model = build_model("text").eval()
    assert sum(p.numel() for p in model.parameters()) == entry["params"]
    with torch.no_grad():
        assert model(torch.zeros(5, TEXT_LENGTH, dtype=torch.int64)).shape == (5, TEXT_CLASSES)
