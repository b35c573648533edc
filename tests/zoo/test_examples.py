"""`snnconvert example --list / --model NAME`: the zoo read from zoo.json, each shipped model written with
its data, loadable, and its data files keyed and shaped for its input (no training here)."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Any

import numpy as np
import pytest
from helpers import run_cli

from snnconvert.api import load_model, write_example
from snnconvert.data.files import load_dataset

PKG = resources.files("snnconvert")
INDEX = json.loads((PKG / "zoo" / "zoo.json").read_text())
ENTRIES: dict[str, dict[str, Any]] = {e["example"]: e for e in INDEX["models"].values()}
SHIPPED = sorted(
    n
    for n, e in ENTRIES.items()
    if all(
        (PKG / d / f).is_file() for d, f in [("zoo", e["file"]), *(("data", v) for v in e["data"].values())]
    )
)
FILES = ["calib.npz", "model.onnx", "test.npz"]


def test_every_model_says_what_it_is_for() -> None:
    assert {"digits_vit", "digits_mlp", "digits_cnn", "text_transformer"} <= set(SHIPPED)
    for name, e in ENTRIES.items():
        assert e["file"] == f"{name}.onnx"
        assert e["description"] and e["recipe"], name
        assert set(e["data"]) == {"calib", "test"}
        assert e["dataset"] in INDEX["datasets"]
        assert e["data"] == INDEX["datasets"][e["dataset"]]["files"]


def test_list_prints_one_line_per_model_with_recipe_and_accuracy() -> None:
    code, out, err = run_cli("example", "--list")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == len(ENTRIES)
    by_name = {line.split()[0]: line for line in lines}
    assert sorted(by_name) == sorted(ENTRIES)
    for name, e in ENTRIES.items():
        line = by_name[name]
        assert f"recipe {e['recipe']} " in line
        assert f"{100 * e['test_accuracy']:.2f} %" in line
        assert e["description"] in line


@pytest.mark.parametrize("name", SHIPPED)
def test_example_model_writes_the_shipped_files_and_they_load(tmp_path, name: str) -> None:
    e = ENTRIES[name]
    d = tmp_path / "ex"
    code, out, err = run_cli("example", d, "--model", name)
    assert code == 0, err
    assert sorted(p.name for p in d.iterdir()) == FILES
    onnx_bytes = (d / "model.onnx").read_bytes()
    assert hashlib.sha256(onnx_bytes).hexdigest() == e["sha256"]
    g = load_model(d / "model.onnx")
    for split, n in (("calib", None), ("test", e["test_samples"])):
        with np.load(d / f"{split}.npz") as z:
            assert sorted(z.files) == ["x", "y"]
            assert z["y"].dtype == np.int64
        ds = load_dataset(d / f"{split}.npz", g, require_labels=True)  # keys and shapes fit the input
        assert n is None or ds.n == n
        assert (d / f"{split}.npz").read_bytes() == (PKG / "data" / e["data"][split]).read_bytes()


def test_default_is_the_digits_vit(tmp_path) -> None:
    assert run_cli("example", tmp_path / "ex")[0] == 0
    assert (tmp_path / "ex" / "model.onnx").read_bytes() == (PKG / "zoo" / "digits_vit.onnx").read_bytes()
    assert (tmp_path / "ex" / "test.npz").read_bytes() == (PKG / "data" / "digits_test.npz").read_bytes()


def test_into_an_existing_directory_only_the_three_files_are_replaced(tmp_path) -> None:
    (tmp_path / "mine.txt").write_text("keep")
    (tmp_path / "model.onnx").write_text("old")
    assert write_example(tmp_path, "text_transformer") == ["model.onnx", "calib.npz", "test.npz"]
    assert (tmp_path / "mine.txt").read_text() == "keep"
    assert (tmp_path / "model.onnx").read_bytes() == (PKG / "zoo" / "text_transformer.onnx").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*FILES, "mine.txt"])


@pytest.mark.parametrize("args", [("--model", "resnet"), ("--model", "digits_vit.onnx")])
def test_unknown_model_is_a_one_line_error_listing_the_names(tmp_path, args) -> None:
    d = tmp_path / "ex"
    code, _, err = run_cli("example", d, *args)
    assert code != 0
    assert len(err.strip().splitlines()) == 1
    assert "not in the zoo" in err and all(n in err for n in SHIPPED)
    assert not d.exists()


def test_unshipped_model_is_a_one_line_error(tmp_path, monkeypatch) -> None:
    import snnconvert.api as api

    ghost = {**ENTRIES["digits_vit"], "example": "ghost", "file": "ghost.onnx"}
    monkeypatch.setattr(api, "zoo_examples", lambda: {**ENTRIES, "ghost": ghost})
    d = tmp_path / "ex"
    code, _, err = run_cli("example", d, "--model", "ghost")
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "not shipped (ghost.onnx)" in err and "digits_vit" in err
    assert not d.exists()
    code, out, _ = run_cli("example", "--list")
    assert code == 0 and "not shipped: ghost.onnx" in out


def test_no_directory_and_no_list_is_an_error() -> None:
    code, _, err = run_cli("example")
    assert code != 0 and "--list" in err
