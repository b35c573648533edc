"""Hugging Face models (random weights from tiny configs, no download) exported to ONNX with both torch
exporters, imported, and run by the reference executor against onnxruntime, with padded attention masks."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

transformers = pytest.importorskip("transformers")

from snnconvert.frontends.onnx import load_onnx  # noqa: E402
from snnconvert.ir.execute import run_graph  # noqa: E402

SEQ = 16  # fixed sequence length: only the batch axis is dynamic
BATCH = 3
VOCAB = 100
TOL = 1e-4  # max abs error allowed, relative to max(1, max |reference|)
EXPORTERS = ["torchscript", "dynamo"]
MODELS = ["bert", "distilbert", "vit"]
# max abs error / max(1, max |reference|) per (model, exporter), for the record (`pytest -s` prints it)
ERRORS: dict[str, float] = {}


def _build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    t = transformers
    if name == "bert":
        cfg = t.BertConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=32,
            num_labels=3,
        )
        model = t.BertForSequenceClassification(cfg)
    elif name == "distilbert":
        cfg = t.DistilBertConfig(
            vocab_size=VOCAB,
            dim=32,
            n_layers=2,
            n_heads=2,
            hidden_dim=64,
            max_position_embeddings=32,
            num_labels=3,
        )
        model = t.DistilBertForSequenceClassification(cfg)
    elif name == "vit":
        cfg = t.ViTConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=16,
            patch_size=4,
            num_channels=3,
            num_labels=3,
        )
        model = t.ViTForImageClassification(cfg)
    else:
        raise AssertionError(name)
    return model.eval()


def _input_names(name: str) -> list[str]:
    return ["pixel_values"] if name == "vit" else ["input_ids", "attention_mask"]


def _example(name: str) -> tuple[torch.Tensor, ...]:
    if name == "vit":
        return (torch.zeros(2, 3, 16, 16),)
    return (torch.ones(2, SEQ, dtype=torch.long), torch.ones(2, SEQ, dtype=torch.long))


def _export(name: str, exporter: str, path: Path) -> Path:
    model, names = _build(name), _input_names(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(
                model,
                _example(name),
                str(path),
                dynamo=False,
                input_names=names,
                output_names=["logits"],
                opset_version=17,
                dynamic_axes={k: {0: "batch"} for k in [*names, "logits"]},
            )
        else:
            logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
            batch = torch.export.Dim("batch")
            prog = torch.onnx.export(
                model,
                _example(name),
                dynamo=True,
                input_names=names,
                output_names=["logits"],
                opset_version=18,
                verbose=False,
                dynamic_shapes=tuple({0: batch} for _ in names),
            )
            prog.save(str(path))
    return path


_EXPORTS: dict[tuple[str, str], Path] = {}


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Export each (model, exporter) once per session, on first use."""
    root = tmp_path_factory.mktemp("hf")

    def get(name: str, exporter: str) -> Path:
        key = (name, exporter)
        if key not in _EXPORTS:
            _EXPORTS[key] = _export(name, exporter, root / f"{name}-{exporter}.onnx")
        return _EXPORTS[key]

    return get


def _feeds(name: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    if name == "vit":
        return {"pixel_values": rng.standard_normal((BATCH, 3, 16, 16)).astype(np.float32)}
    mask = np.ones((BATCH, SEQ), dtype=np.int64)
    mask[1, 10:] = 0  # padded sequences: the attention mask must reach the scores
    mask[2, 5:] = 0
    return {"input_ids": rng.integers(0, VOCAB, (BATCH, SEQ)).astype(np.int64), "attention_mask": mask}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", MODELS)
def test_matches_onnxruntime(name, exporter, exported):
    path = exported(name, exporter)
    feeds = _feeds(name)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    ref = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    g = load_onnx(path)
    out = run_graph(g, feeds)[g.outputs[0]].numpy()
    assert out.shape == ref.shape == (BATCH, 3)
    err = float(np.abs(out.astype(np.float64) - ref).max()) / max(1.0, float(np.abs(ref).max()))
    ERRORS[f"{name}/{exporter}"] = err
    print(f"\n{name} ({exporter} export): max abs error {err:.3g} relative to output scale")
    assert err <= TOL
    ops = {n.op for n in g.nodes}
    assert {"LayerNorm", "Linear", "Softmax", "Gelu"} <= ops, sorted(ops)
    assert not ops & {"Erf", "ReduceMean", "Sqrt"}, sorted(ops)
    if name != "vit":  # padding changes the logits of the padded samples: the mask is not dropped
        unpadded = dict(feeds, attention_mask=np.ones_like(feeds["attention_mask"]))
        other = run_graph(g, unpadded)[g.outputs[0]].numpy()
        assert np.abs(other[1:] - out[1:]).max() > 1e-6 and np.abs(other[0] - out[0]).max() <= 1e-6


def test_inspect_prints_op_table(exported):
    path = exported("bert", "torchscript")
    res = subprocess.run(
        [sys.executable, "-m", "snnconvert", "inspect", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "ops" in res.stdout and "LayerNorm" in res.stdout and "Linear" in res.stdout
