"""The per-sample import (issue L items 1-2): where the samples are, and refusing models whose
samples interact. References: onnxruntime on the same file and inputs (max abs error <= 1e-5
relative to max(1, |ref|))."""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from helpers import run_cli

from snnconvert.errors import InputError, UnsupportedModelError
from snnconvert.frontends.onnx import load_onnx
from snnconvert.ir.execute import run_graph


def _export(model: torch.nn.Module, x: torch.Tensor, path, dyn: dict[int, str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(), (x,), str(path), input_names=["x"], output_names=["y"],
            dynamic_axes={"x": dyn, "y": dyn}, opset_version=17, dynamo=False,
        )  # fmt: skip


def _close(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-5 * max(1.0, float(np.abs(ref).max()))


def _encoder(batch_first: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=batch_first)
    return torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


def test_sequence_first_encoder_found_from_the_dim_name(tmp_path):
    """[seq, batch, d] with axis 1 named 'batch': no flag needed; matches onnxruntime on 3 samples."""
    p = tmp_path / "sf.onnx"
    _export(_encoder(False), torch.randn(6, 2, 16), p, {1: "batch"})
    g = load_onnx(p)
    assert g.meta["batch_axes"] == {"x": 1, "y": 1}
    assert g.values["x"].shape == (6, 1, 16)
    x = np.random.default_rng(1).standard_normal((6, 3, 16)).astype(np.float32)
    ref = ort.InferenceSession(str(p)).run(None, {"x": x})[0]
    _close(run_graph(g, {"x": x})["y"].numpy(), ref)


def test_batch_axis_flag_and_input_shape_agree_or_are_refused(tmp_path):
    p = tmp_path / "sf.onnx"
    _export(_encoder(False), torch.randn(6, 2, 16), p, {0: "seq", 1: "b0"})
    with pytest.raises(
        InputError,
        match=r"dim 1 \('b0'\) is dynamic: give its size with --input-shape x=N,\?,16 .*if they are on another axis, put N there",
    ):
        load_onnx(p)  # nothing says where the samples are: axis 0 is taken, and the hint says so
    # following the hint with the wrong axis: the batch check finds that the "samples" interact
    with pytest.raises(InputError, match=r"shape arithmetic failed.*samples taken on x axis 0.*--batch-axis"):
        load_onnx(p, {"x": [-1, 2, 16]})
    g = load_onnx(p, input_shapes={"x": [6, -1, 16]})  # N's position says where the samples are
    assert g.meta["batch_axes"]["x"] == 1 and g.values["x"].shape == (6, 1, 16)
    assert load_onnx(p, {"x": [6, 4, 16]}, batch_axes={"x": 1}).values["x"].shape == (6, 1, 16)
    with pytest.raises(InputError, match="--batch-axis x=0 disagrees with N at axis 1"):
        load_onnx(p, {"x": [6, -1, 16]}, batch_axes={"x": 0})
    with pytest.raises(InputError, match="--batch-axis x=5 is outside"):
        load_onnx(p, {"x": [6, -1, 16]}, batch_axes={"x": 5})
    with pytest.raises(InputError, match="--batch-axis names unknown input"):
        load_onnx(p, {"x": [6, -1, 16]}, batch_axes={"nope": 1})


def test_fixed_batch_larger_than_one_is_refused(tmp_path):
    p = tmp_path / "fixed.onnx"
    _export(torch.nn.Linear(4, 3), torch.randn(5, 4), p, {})
    with pytest.raises(InputError, match="holds exactly 5 samples on axis 0"):
        load_onnx(p)


class _BatchMean(torch.nn.Module):
    """Subtracts the mean over the batch: samples interact, no per-sample program is the model."""

    def forward(self, x):
        return torch.relu(x - x.mean(0, keepdim=True))


def test_model_whose_samples_interact_is_refused_naming_the_node(tmp_path):
    p = tmp_path / "mix.onnx"
    _export(_BatchMean(), torch.randn(3, 4), p, {0: "batch"})
    with pytest.raises(
        UnsupportedModelError, match=r"node '[^']*ReduceMean[^']*' \(ReduceMean\) mixes samples"
    ):
        load_onnx(p)


def test_sequence_first_through_the_cli_with_data_on_axis_1(tmp_path):
    """calibrate -> convert -> simulate with the samples on axis 1 of the data file, recorded once."""
    p = tmp_path / "sf.onnx"
    _export(_encoder(False), torch.randn(6, 2, 16), p, {0: "s", 1: "n"})
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((6, 10, 16)).astype(np.float32))
    flags = ["--input-shape", "x=6,N,16"]
    assert run_cli("calibrate", p, "--data", tmp_path / "d.npz", "--out", tmp_path / "c.json", *flags)[0] == 0
    code, _, err = run_cli(
        "convert",
        p,
        "--calibration",
        tmp_path / "c.json",
        "--recipe",
        "mueller2021",
        "--out",
        tmp_path / "snn",
        *flags,
    )
    assert code == 0, err
    code, _, err = run_cli("simulate", tmp_path / "snn", "--data", tmp_path / "d.npz", "--timesteps", 4,
                           "--out", tmp_path / "s.json")  # fmt: skip
    assert code == 0, err
    # the same file with the samples on axis 0 is refused naming the key and the layout
    np.savez(tmp_path / "bad.npz", x=rng.standard_normal((10, 6, 16)).astype(np.float32))
    code, _, err = run_cli("simulate", tmp_path / "snn", "--data", tmp_path / "bad.npz", "--timesteps", 4)
    assert code != 0 and "key 'x' has shape [10, 6, 16]" in err and "[6, N, 16]" in err


def test_saved_snn_loads_without_reinferring_shapes_unless_edited(tmp_path, monkeypatch):
    from snnconvert.ir import validate as v
    from snnconvert.ir.serialize import load_graph, save_graph

    p = tmp_path / "m.onnx"
    _export(torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU()), torch.randn(2, 4), p, {0: "batch"})
    g = load_onnx(p)
    save_graph(g, tmp_path)
    calls = []
    real = v._check_node_shapes
    monkeypatch.setattr(v, "_check_node_shapes", lambda *a: calls.append(1) or real(*a))
    load_graph(tmp_path)
    assert calls == []  # content hash matches: structure only
    # an edit to the weights invalidates the hash: shapes are checked again
    w = dict(np.load(tmp_path / "weights.npz"))
    w[next(iter(w))] = w[next(iter(w))] + 1
    np.savez(tmp_path / "weights.npz", **w)
    load_graph(tmp_path)
    assert calls  # shapes checked again
