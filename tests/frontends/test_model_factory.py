"""One path for every way a user holds a model: an ONNX file, a `.pt2` ExportedProgram, and a
state_dict with `--model-factory module:function` all give the same SNN, and every way of getting the
factory wrong is one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import factory_models
import numpy as np
import pytest
import torch
from helpers import run_cli

HERE = Path(__file__).parent
FACTORY = ["--model-factory", "factory_models:build_vit", "--input-shape", "x=N,1,8,8"]


@pytest.fixture(scope="module")
def held(tmp_path_factory) -> dict[str, Path]:
    """The same TinyViT three ways (ONNX from torch.onnx.export's default exporter, .pt2, state_dict),
    plus calibration and test data."""
    d = tmp_path_factory.mktemp("held")
    m = factory_models.build_vit().eval()
    x = torch.randn(2, 1, 8, 8)
    batch = {"x": {0: torch.export.Dim("batch")}}
    torch.save(m.state_dict(), d / "vit.pt")
    torch.export.save(torch.export.export(m, (x,), dynamic_shapes=batch), str(d / "vit.pt2"))
    torch.onnx.export(m, (x,), str(d / "vit.onnx"), dynamo=True, dynamic_shapes=batch, verbose=False)
    rng = np.random.default_rng(0)
    np.savez(d / "calib.npz", x=rng.standard_normal((48, 1, 8, 8)).astype(np.float32))
    np.savez(
        d / "test.npz", x=rng.standard_normal((24, 1, 8, 8)).astype(np.float32), y=rng.integers(0, 10, 24)
    )
    return {"dir": d, "onnx": d / "vit.onnx", "pt2": d / "vit.pt2", "pt": d / "vit.pt"}


def ok(*args) -> str:
    code, out, err = run_cli(*args)
    assert code == 0, err
    return out


def one_line_error(*args) -> str:
    code, out, err = run_cli(*args)
    assert code != 0, out[-500:]
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _flags(way: str) -> list[str]:
    return FACTORY if way == "pt" else []


@pytest.mark.slow
def test_same_network_same_snn_every_way(held, tmp_path):
    """Same graph (ops, attributes, names), same weights within 1e-6, same calibration hash and the
    same simulation, whichever way the network came in."""
    snn, hashes = {}, {}
    for way in ("onnx", "pt2", "pt"):
        cal, d = tmp_path / f"cal_{way}.json", tmp_path / f"snn_{way}"
        ok("calibrate", held[way], "--data", held["dir"] / "calib.npz", "--out", cal, *_flags(way))
        hashes[way] = json.loads(cal.read_text())["model_hash"]
        ok("convert", held[way], "--calibration", cal, "--recipe", "mueller2021", "--out", d, *_flags(way))
        ok(
            "simulate",
            d,
            "--data",
            held["dir"] / "test.npz",
            "-T",
            "8",
            "--out",
            tmp_path / f"sim_{way}.json",
        )
        snn[way] = d
    assert len(set(hashes.values())) == 1, hashes
    ref = snn["onnx"]
    g_ref = json.loads((ref / "graph.json").read_text())
    assert any(n["op"] == "Relu" or n["op"].startswith("IF") for n in g_ref["nodes"])
    sim_ref = json.loads((tmp_path / "sim_onnx.json").read_text())
    for way in ("pt2", "pt"):
        g = json.loads((snn[way] / "graph.json").read_text())
        for k in ("nodes", "inputs", "outputs", "values"):
            assert g[k] == g_ref[k], f"{way}: {k} differs"
        for sub in ("", "ann"):
            with np.load(ref / sub / "weights.npz") as a, np.load(snn[way] / sub / "weights.npz") as b:
                assert sorted(a.files) == sorted(b.files)
                for f in a.files:
                    np.testing.assert_allclose(b[f], a[f], atol=1e-6, rtol=0, err_msg=f"{way}: {sub}/{f}")
        sim = json.loads((tmp_path / f"sim_{way}.json").read_text())
        for k in ("agreement", "rel_error", "cosine", "snn_accuracy", "total_spikes_per_sample"):
            np.testing.assert_allclose(np.asarray(sim[k], float), np.asarray(sim_ref[k], float), atol=1e-6)


@pytest.mark.slow
def test_calibration_travels_between_ways(held, tmp_path):
    """The calibration file checks the model's content hash: one made from the .pt2 fits the state_dict."""
    cal = tmp_path / "cal.json"
    ok("calibrate", held["pt2"], "--data", held["dir"] / "calib.npz", "--out", cal)
    out = tmp_path / "snn"
    ok("convert", held["pt"], "--calibration", cal, "--recipe", "mueller2021", "--out", out, *FACTORY)
    assert (out / "graph.json").is_file()


def _user_run(cmd: list[str], cwd: Path, pythonpath: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_factory_imported_from_the_working_directory(held, tmp_path):
    """The console script's sys.path lacks the working directory; a user's module there is found."""
    exe = shutil.which("snnconvert") or pytest.skip("the snnconvert console script is not installed")
    shutil.copy(HERE / "factory_models.py", tmp_path / "mymodels.py")
    r = _user_run(
        [exe, "inspect", held["pt"], "--model-factory", "mymodels:build_vit", "--input-shape", "x=N,1,8,8"],
        cwd=tmp_path,
        pythonpath=None,
    )
    assert r.returncode == 0, r.stderr
    assert "vit.pt" in r.stdout and not r.stderr.strip()


@pytest.mark.slow
def test_factory_imported_from_pythonpath(held, tmp_path):
    out = tmp_path / "cal.json"
    cmd = [sys.executable, "-m", "snnconvert", "calibrate", held["pt"], "--data", held["dir"] / "calib.npz"]
    r = _user_run([*map(str, cmd), "--out", str(out), *FACTORY], cwd=tmp_path, pythonpath=str(HERE))
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["model_hash"]


def test_torchscript_fallback_when_torch_export_cannot_trace(tmp_path):
    """A Python branch on a tensor's value stops torch.export; the TorchScript tracer still converts it."""
    m = factory_models.build_branchy()
    torch.save(m.state_dict(), tmp_path / "branchy.pt")
    args = ["--model-factory", "factory_models:build_branchy", "--input-shape", "x=N,4"]
    out = ok("inspect", tmp_path / "branchy.pt", *args, "--json", tmp_path / "info.json")
    assert "branchy.pt" in out
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["ops"]["Linear"]["count"] == 2


def test_training_checkpoint_with_a_nested_state_dict(held, tmp_path):
    sd = torch.load(held["pt"], weights_only=True)
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "ckpt.pth")
    ok("inspect", tmp_path / "ckpt.pth", *FACTORY)


# -- one line for every way of getting it wrong --------------------------------------------------------
def _state_dict_with(held, tmp_path, change) -> Path:
    sd = torch.load(held["pt"], weights_only=True)
    change(sd)
    p = tmp_path / "changed.pt"
    torch.save(sd, p)
    return p


ERRORS = {
    "module-missing": (
        ["--model-factory", "nofile:fn", "--input-shape", "x=N,1,8,8"],
        ["'nofile:fn'", "no module 'nofile'"],
    ),
    "function-missing": (
        ["--model-factory", "factory_models:missing", "--input-shape", "x=N,1,8,8"],
        ["factory_models.py", "no function 'missing'"],
    ),
    "spec-without-colon": (
        ["--model-factory", "factory_models", "--input-shape", "x=N,1,8,8"],
        ["module:function"],
    ),
    "kwargs-not-json": ([*FACTORY, "--model-kwargs", "{dim: 8}"], ["--model-kwargs", "not valid JSON"]),
    "kwargs-not-object": ([*FACTORY, "--model-kwargs", "[8]"], ["--model-kwargs", "JSON object", "list"]),
    "kwargs-unknown-argument": (
        [*FACTORY, "--model-kwargs", '{"depth": 3}'],
        ["build_vit(depth=3)", "TypeError"],
    ),
    "kwargs-without-factory": (["--model-kwargs", '{"dim": 8}'], ["--model-kwargs needs --model-factory"]),
    "factory-raises": (
        ["--model-factory", "factory_models:build_fails", "--input-shape", "x=N,1,8,8"],
        ["build_fails()", "ValueError", "always fails"],
    ),
    "factory-returns-no-module": (
        ["--model-factory", "factory_models:not_a_module", "--input-shape", "x=N,1,8,8"],
        ["returned a dict", "torch.nn.Module"],
    ),
    "shape-mismatch": ([*FACTORY, "--model-kwargs", '{"dim": 8}'], ["vit.pt", "size mismatch", "pos"]),
    "no-input-shape": (["--model-factory", "factory_models:build_vit"], ["--input-shape x=N,..."]),
    "input-shape-unknown-argument": (
        ["--model-factory", "factory_models:build_vit", "--input-shape", "pixels=N,1,8,8"],
        ["pixels", "forward(x)"],
    ),
    "state-dict-without-factory": ([], ["vit.pt", "state_dict", "--model-factory"]),
}


@pytest.mark.parametrize("command", ["inspect", "calibrate"])
@pytest.mark.parametrize("name", sorted(ERRORS))
def test_factory_errors_are_one_line(name, command, held, tmp_path):
    args, expect = ERRORS[name]
    extra = (
        ["--data", held["dir"] / "calib.npz", "--out", tmp_path / "cal.json"]
        if command == "calibrate"
        else []
    )
    line = one_line_error(command, held["pt"], *args, *extra)
    for s in expect:
        assert s in line, f"{s!r} not in {line!r}"
    assert not (tmp_path / "cal.json").exists()


def test_missing_and_unexpected_keys_named(held, tmp_path):
    def change(sd):
        del sd["head.weight"], sd["fc1.bias"]
        sd["extra.weight"] = torch.zeros(1)

    p = _state_dict_with(held, tmp_path, change)
    line = one_line_error("inspect", p, *FACTORY)
    assert (
        "changed.pt" in line and "missing fc1.bias, head.weight" in line and "unexpected extra.weight" in line
    )


def test_factory_with_an_onnx_file(held):
    line = one_line_error("inspect", held["onnx"], *FACTORY)
    assert "vit.onnx" in line and "--model-factory" in line and "ONNX" in line


def test_factory_with_a_pt2(held):
    line = one_line_error("inspect", held["pt2"], *FACTORY)
    assert "vit.pt2" in line and "own graph" in line


def test_convert_with_a_bad_state_dict_leaves_no_output(held, tmp_path):
    p = _state_dict_with(held, tmp_path, lambda sd: sd.pop("head.bias"))
    out = tmp_path / "snn"
    line = one_line_error(
        "convert",
        p,
        "--calibration",
        tmp_path / "none.json",
        "--recipe",
        "mueller2021",
        "--out",
        out,
        *FACTORY,
    )
    assert "missing head.bias" in line
    assert not out.exists()


def test_pickled_module_refused_even_with_a_factory(tmp_path):
    torch.save(factory_models.build_vit(), tmp_path / "whole.pt")
    line = one_line_error("inspect", tmp_path / "whole.pt", *FACTORY)
    assert "whole.pt" in line and "pickled" in line and "state_dict" in line
