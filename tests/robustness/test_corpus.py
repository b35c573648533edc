"""A corpus of bad inputs, one per way a user can get a file, field or argument wrong.

Every case must end the same way: a non-zero exit, exactly one stderr line that names the offending
file, node or field, no traceback, and no output (nor hidden temp file) left behind.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from conftest import hidden_temps, leftovers, one_line_error
from onnx import TensorProto, helper, numpy_helper


@dataclass
class Run:
    args: list  # CLI arguments
    expect: list[str]  # substrings the one stderr line must contain
    outputs: list[Path] = field(default_factory=list)  # must not exist afterwards


CASES: dict[str, Callable[[dict, Path], Run]] = {}


def case(name: str):
    def deco(f):
        assert name not in CASES
        CASES[name] = f
        return f

    return deco


# -- helpers -----------------------------------------------------------------------------------------
def calibrate_run(model: Path, env: dict, tmp: Path, expect: list[str], data: Path | None = None) -> Run:
    out = tmp / "out" / "calib.json"
    out.parent.mkdir(exist_ok=True)
    return Run(["calibrate", model, "--data", data or env["calib_npz"], "--out", out], expect, [out])


def convert_run(env: dict, tmp: Path, expect: list[str], calibration=None, recipe="mueller2021", extra=()):
    out = tmp / "out" / "snn"
    out.parent.mkdir(exist_ok=True)
    args = [
        "convert",
        env["model"],
        "--calibration",
        calibration or env["calib"],
        "--recipe",
        recipe,
        "--out",
        out,
        *extra,
    ]
    return Run(args, expect, [out])


def simulate_run(snn: Path, env: dict, tmp: Path, expect: list[str], data=None, timesteps="4") -> Run:
    out = tmp / "out" / "result.json"
    out.parent.mkdir(exist_ok=True)
    args = ["simulate", snn, "--data", data or env["test_npz"], "--timesteps", timesteps, "--samples", "16"]
    return Run([*args, "--out", out], expect, [out, snn / "events.npz", snn / "simulation.json"])


def tiny_model(path: Path, ops=("Relu",), opset: int | None = None, in_shape=("N", 4), outputs=True) -> Path:
    """x -> op -> op ... -> y, one node per op type, saved to path."""
    nodes, prev = [], "x"
    for i, op in enumerate(ops):
        nodes.append(helper.make_node(op, [prev], [f"h{i}"], name=f"{op.lower()}_{i}"))
        prev = f"h{i}"
    nodes[-1].output[0] = "y"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(in_shape))
    g = helper.make_graph(nodes, "tiny", [x], [y] if outputs else [])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset or 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def example_proto(env: dict) -> onnx.ModelProto:
    return onnx.load(str(env["model"]))


def save_npz(path: Path, allow_pickle: bool = False, **arrays) -> Path:
    with open(path, "wb") as f:
        np.savez(f, allow_pickle=allow_pickle, **arrays)
    return path


def calib_x(env: dict) -> np.ndarray:
    with np.load(env["calib_npz"]) as z:
        return z["x"][:32]


def copy_snn(env: dict, tmp: Path) -> Path:
    d = tmp / "snn_copy"
    shutil.copytree(env["snn"], d)
    for f in ("simulation.json", "events.npz"):
        (d / f).unlink(missing_ok=True)
    return d


def recipe_file(tmp: Path, edit: Callable[[dict], None], name="bad_recipe.yaml") -> Path:
    from snnconvert.passes.recipe import builtin_recipes

    r = yaml.safe_load(builtin_recipes()["mueller2021"].read_text())
    edit(r)
    p = tmp / name
    p.write_text(yaml.safe_dump(r, sort_keys=False))
    return p


# -- models ------------------------------------------------------------------------------------------
@case("onnx-truncated")
def _(env, tmp):
    p = tmp / "trunc.onnx"
    p.write_bytes(env["model"].read_bytes()[:3000])
    return calibrate_run(p, env, tmp, ["trunc.onnx"])


@case("onnx-not-onnx")
def _(env, tmp):
    p = tmp / "notes.onnx"
    p.write_text("this is a text file, not an ONNX model\n" * 20)
    return calibrate_run(p, env, tmp, ["notes.onnx"])


@case("onnx-empty-file")
def _(env, tmp):
    p = tmp / "empty.onnx"
    p.write_bytes(b"")
    return calibrate_run(p, env, tmp, ["empty.onnx", "empty"])


@case("onnx-missing-file")
def _(env, tmp):
    return calibrate_run(tmp / "nowhere.onnx", env, tmp, ["nowhere.onnx"])


@case("onnx-directory")
def _(env, tmp):
    p = tmp / "modeldir.onnx"
    p.mkdir()
    return Run(["inspect", p], ["modeldir.onnx", "directory"])


@case("onnx-unsupported-ops")
def _(env, tmp):
    p = tiny_model(tmp / "unsup.onnx", ops=("Relu", "Acosh", "Asinh", "Relu", "Atanh"))
    # every offender in the one line
    return calibrate_run(p, env, tmp, ["unsup.onnx", "acosh_1 (Acosh)", "asinh_2 (Asinh)", "atanh_4 (Atanh)"])


@case("onnx-opset-too-old")
def _(env, tmp):
    p = tiny_model(tmp / "old.onnx", opset=9)
    return calibrate_run(p, env, tmp, ["old.onnx", "opset 9"])


@case("onnx-opset-too-new")
def _(env, tmp):
    v = onnx.defs.onnx_opset_version() + 1
    p = tiny_model(tmp / "new.onnx", opset=v)
    return calibrate_run(p, env, tmp, ["new.onnx", f"opset {v}"])


@case("onnx-dynamic-dim")
def _(env, tmp):
    m = example_proto(env)
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    p = tmp / "dyn.onnx"
    onnx.save(m, str(p))
    return calibrate_run(p, env, tmp, ["dyn.onnx", "'x'", "height", "--input-shape"])


@case("onnx-bad-input-shape-option")
def _(env, tmp):
    r = calibrate_run(env["model"], env, tmp, ["--input-shape"])
    r.args += ["--input-shape", "x=N,1,eight,8"]
    return r


@case("onnx-input-shape-negative-dim")
def _(env, tmp):
    r = calibrate_run(env["model"], env, tmp, ["--input-shape", "x=N,-5,8,8"])
    r.args += ["--input-shape", "x=N,-5,8,8"]
    return r


@case("onnx-input-shape-unknown-input")
def _(env, tmp):
    r = calibrate_run(env["model"], env, tmp, ["pixels"])
    r.args += ["--input-shape", "pixels=N,1,8,8"]
    return r


@case("onnx-no-outputs")
def _(env, tmp):
    p = tiny_model(tmp / "noout.onnx", outputs=False)
    return calibrate_run(p, env, tmp, ["noout.onnx", "output"])


@case("onnx-example-no-outputs")
def _(env, tmp):
    m = example_proto(env)
    del m.graph.output[:]
    p = tmp / "noout2.onnx"
    onnx.save(m, str(p))
    return calibrate_run(p, env, tmp, ["noout2.onnx", "output"])


@case("onnx-external-data-missing")
def _(env, tmp):
    m = example_proto(env)
    p = tmp / "ext.onnx"
    onnx.save(m, str(p), save_as_external_data=True, location="ext.onnx.data", size_threshold=64)
    assert (tmp / "ext.onnx.data").is_file()
    (tmp / "ext.onnx.data").unlink()
    return calibrate_run(p, env, tmp, ["ext.onnx", "ext.onnx.data"])


@case("onnx-external-data-truncated")
def _(env, tmp):
    m = example_proto(env)
    p = tmp / "short.onnx"
    onnx.save(m, str(p), save_as_external_data=True, location="short.onnx.data", size_threshold=64)
    data = tmp / "short.onnx.data"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    return calibrate_run(p, env, tmp, ["short.onnx", "external data"])


@case("onnx-external-data-outside")
def _(env, tmp):
    m = example_proto(env)
    (tmp / "sub").mkdir()
    p = tmp / "sub" / "escape.onnx"
    onnx.save(m, str(p), save_as_external_data=True, location="escape.data", size_threshold=64)
    (tmp / "sub" / "escape.data").rename(tmp / "escape.data")
    m2 = onnx.load(str(p), load_external_data=False)
    for t in m2.graph.initializer:
        for kv in t.external_data:
            if kv.key == "location":
                kv.value = "../escape.data"
    onnx.save(m2, str(p))
    return calibrate_run(p, env, tmp, ["escape.onnx", "outside"])


@case("onnx-node-input-undefined")
def _(env, tmp):
    m = example_proto(env)
    n = next(n for n in m.graph.node if n.op_type == "Relu")
    n.input[0] = "no_such_value"
    p = tmp / "dangling.onnx"
    onnx.save(m, str(p))
    return Run(["inspect", p], ["dangling.onnx", "no_such_value", n.name])


@case("onnx-wrong-initializer-shape")
def _(env, tmp):
    m = example_proto(env)
    n = next(n for n in m.graph.node if n.op_type == "Gemm")
    init = next(i for i in m.graph.initializer if i.name == n.input[1])
    a = numpy_helper.to_array(init)
    init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(a[:, :-3]), init.name))
    p = tmp / "badinit.onnx"
    onnx.save(m, str(p))
    return Run(["inspect", p], ["badinit.onnx"])


# -- data --------------------------------------------------------------------------------------------
def _data_case(name: str, expect: list[str], make: Callable[[np.ndarray, Path], dict], pickle=False):
    @case(f"data-{name}")
    def _(env, tmp):
        p = save_npz(tmp / f"{name}.npz", allow_pickle=pickle, **make(calib_x(env), tmp))
        return calibrate_run(env["model"], env, tmp, [f"{name}.npz", *expect], data=p)


_data_case("missing-key", ["missing key 'x'"], lambda x, t: {"pixels": x})
_data_case("wrong-shape", ["key 'x'", "shape"], lambda x, t: {"x": x[:, :, :4]})
_data_case("wrong-rank", ["key 'x'", "shape"], lambda x, t: {"x": x.reshape(len(x), -1)})
_data_case("complex", ["key 'x'", "complex"], lambda x, t: {"x": x.astype(np.complex64)})
_data_case("string", ["key 'x'", "dtype"], lambda x, t: {"x": x.astype(str)})
_data_case(
    "object-pickled",
    ["object"],
    lambda x, t: {"x": np.array([{"a": 1}] * len(x), dtype=object)},
    pickle=True,
)
_data_case("nan", ["key 'x'", "NaN (first at sample 3)"], lambda x, t: {"x": _poison(x, 3, np.nan)})
_data_case("inf", ["key 'x'", "Inf (first at sample 5)"], lambda x, t: {"x": _poison(x, 5, -np.inf)})
_data_case("zero-samples", ["zero samples"], lambda x, t: {"x": x[:0]})
_data_case("labels-wrong-length", ["key 'y'"], lambda x, t: {"x": x, "y": np.zeros(len(x) - 1, np.int64)})
_data_case("labels-float", ["key 'y'"], lambda x, t: {"x": x, "y": np.zeros(len(x)) + 0.5})


def _poison(x: np.ndarray, i: int, v: float) -> np.ndarray:
    x = x.copy()
    x[i, 0, 2, 3] = v
    return x


@case("data-not-npz")
def _(env, tmp):
    p = tmp / "garbage.npz"
    p.write_bytes(b"PK\x03\x04 definitely not a zip archive")
    return calibrate_run(env["model"], env, tmp, ["garbage.npz"], data=p)


@case("data-single-npy")
def _(env, tmp):
    p = tmp / "single.npz"
    with open(p, "wb") as f:
        np.save(f, calib_x(env))
    return calibrate_run(env["model"], env, tmp, ["single.npz"], data=p)


@case("data-directory")
def _(env, tmp):
    (tmp / "datadir.npz").mkdir()
    return calibrate_run(env["model"], env, tmp, ["datadir.npz", "directory"], data=tmp / "datadir.npz")


@case("data-missing-file")
def _(env, tmp):
    return calibrate_run(env["model"], env, tmp, ["nodata.npz"], data=tmp / "nodata.npz")


@case("data-simulate-wrong-shape")
def _(env, tmp):
    p = save_npz(tmp / "testshape.npz", x=calib_x(env)[:, :, :, :5])
    return simulate_run(copy_snn(env, tmp), env, tmp, ["testshape.npz", "key 'x'"], data=p)


@case("data-too-many-samples")
def _(env, tmp):
    r = calibrate_run(env["model"], env, tmp, ["--samples"])
    r.args += ["--samples", "100000"]
    return r


# -- calibration files -------------------------------------------------------------------------------
@case("calib-another-model")
def _(env, tmp):
    j = json.loads(env["calib"].read_text())
    j["model_hash"] = "0123456789abcdef"
    p = tmp / "other_calib.json"
    p.write_text(json.dumps(j))
    return convert_run(env, tmp, ["other_calib.json", "another model"], calibration=p)


@case("calib-corrupted-json")
def _(env, tmp):
    p = tmp / "cut_calib.json"
    p.write_text(env["calib"].read_text()[:5000])
    return convert_run(env, tmp, ["cut_calib.json", "JSON"], calibration=p)


@case("calib-binary-garbage")
def _(env, tmp):
    p = tmp / "bin_calib.json"
    p.write_bytes(bytes(range(256)) * 4)
    return convert_run(env, tmp, ["bin_calib.json"], calibration=p)


@case("calib-not-a-calibration")
def _(env, tmp):
    p = tmp / "graph_as_calib.json"
    shutil.copy(env["snn"] / "graph.json", p)
    return convert_run(env, tmp, ["graph_as_calib.json", "not a calibration file"], calibration=p)


@case("calib-json-list")
def _(env, tmp):
    p = tmp / "list_calib.json"
    p.write_text("[1, 2, 3]\n")
    return convert_run(env, tmp, ["list_calib.json", "not a calibration file"], calibration=p)


@case("calib-bad-sketch")
def _(env, tmp):
    j = json.loads(env["calib"].read_text())
    name = sorted(j["tensors"])[0]
    j["tensors"][name]["sketch"] = {"bogus": True}
    p = tmp / "sketch_calib.json"
    p.write_text(json.dumps(j))
    return convert_run(env, tmp, ["sketch_calib.json", f"tensors.{name}.sketch"], calibration=p)


@case("calib-directory")
def _(env, tmp):
    (tmp / "calibdir.json").mkdir()
    return convert_run(env, tmp, ["calibdir.json", "directory"], calibration=tmp / "calibdir.json")


@case("calib-missing-file")
def _(env, tmp):
    return convert_run(env, tmp, ["nocalib.json"], calibration=tmp / "nocalib.json")


# -- recipes -----------------------------------------------------------------------------------------
@case("recipe-unknown-pass")
def _(env, tmp):
    p = recipe_file(tmp, lambda r: r["passes"].insert(1, {"no_such_pass": {}}))
    return convert_run(env, tmp, ["bad_recipe.yaml", "passes[1]", "no_such_pass"], recipe=p)


@case("recipe-param-wrong-type")
def _(env, tmp):
    p = recipe_file(tmp, lambda r: r["passes"][2]["normalize"].update(percentile="high"))
    return convert_run(env, tmp, ["bad_recipe.yaml", "passes[2].normalize.percentile"], recipe=p)


@case("recipe-param-out-of-range")
def _(env, tmp):
    p = recipe_file(tmp, lambda r: r["passes"][2]["normalize"].update(percentile=150.0))
    return convert_run(env, tmp, ["bad_recipe.yaml", "passes[2].normalize.percentile", "150"], recipe=p)


@case("recipe-unknown-param")
def _(env, tmp):
    p = recipe_file(tmp, lambda r: r["passes"][3]["relu_to_if"].update(threshold=2))
    return convert_run(env, tmp, ["bad_recipe.yaml", "passes[3].relu_to_if.threshold"], recipe=p)


@case("recipe-spiking-softmax-no-table")
def _(env, tmp):
    p = recipe_file(tmp, lambda r: r["passes"].append({"softmax_to_spiking": {"K": 10}}))
    return convert_run(env, tmp, ["bad_recipe.yaml", "passes[4].softmax_to_spiking.K", "10"], recipe=p)


@case("recipe-timesteps-wrong-type")
def _(env, tmp):
    p = recipe_file(tmp, lambda r: r.update(timesteps="fifty"))
    return convert_run(env, tmp, ["bad_recipe.yaml", "timesteps"], recipe=p)


@case("recipe-bad-coding")
def _(env, tmp):
    p = recipe_file(tmp, lambda r: r.update(coding="phase"))
    return convert_run(env, tmp, ["bad_recipe.yaml", "coding"], recipe=p)


@case("recipe-invalid-yaml")
def _(env, tmp):
    p = tmp / "broken.yaml"
    p.write_text("name: broken\npasses: [normalize: {percentile: 99\n  - relu_to_if\n")
    return convert_run(env, tmp, ["broken.yaml", "YAML"], recipe=p)


@case("recipe-not-a-mapping")
def _(env, tmp):
    p = tmp / "list.yaml"
    p.write_text("- normalize\n- relu_to_if\n")
    return convert_run(env, tmp, ["list.yaml"], recipe=p)


@case("recipe-binary-file")
def _(env, tmp):
    return convert_run(env, tmp, ["calib.npz"], recipe=env["calib_npz"])


@case("recipe-nonexistent")
def _(env, tmp):
    return convert_run(env, tmp, ["no_such_recipe"], recipe="no_such_recipe")


@case("convert-percentile-out-of-range")
def _(env, tmp):
    return convert_run(env, tmp, ["--percentile"], extra=("--percentile", "200"))


@case("convert-out-is-a-file")
def _(env, tmp):
    r = convert_run(env, tmp, [])
    out = r.outputs[0]
    out.write_text("keep me")
    r.expect = [str(out)]
    r.outputs = []  # the file must survive untouched (checked below)
    return r


# -- simulate ----------------------------------------------------------------------------------------
for _t in ("0", "-1", "1000000000"):

    @case(f"timesteps-{_t}")
    def _(env, tmp, t=_t):
        return simulate_run(copy_snn(env, tmp), env, tmp, ["--timesteps"], timesteps=t)


@case("timesteps-not-an-integer")
def _(env, tmp):
    return simulate_run(copy_snn(env, tmp), env, tmp, ["--timesteps"], timesteps="abc")


@case("simulate-zero-samples")
def _(env, tmp):
    r = simulate_run(copy_snn(env, tmp), env, tmp, ["--samples"])
    r.args[r.args.index("--samples") + 1] = "0"
    return r


@case("simulate-bad-device")
def _(env, tmp):
    r = simulate_run(copy_snn(env, tmp), env, tmp, ["--device", "tpu"])
    r.args += ["--device", "tpu"]
    return r


@case("snn-dir-missing")
def _(env, tmp):
    return simulate_run(tmp / "no_snn", env, tmp, ["no_snn"])


@case("snn-graph-json-missing")
def _(env, tmp):
    d = copy_snn(env, tmp)
    (d / "graph.json").unlink()
    return simulate_run(d, env, tmp, ["graph.json"])


@case("snn-weights-missing")
def _(env, tmp):
    d = copy_snn(env, tmp)
    (d / "weights.npz").unlink()
    return simulate_run(d, env, tmp, ["weights.npz"])


@case("snn-weights-corrupt")
def _(env, tmp):
    d = copy_snn(env, tmp)
    (d / "weights.npz").write_bytes((d / "weights.npz").read_bytes()[:1000])
    return simulate_run(d, env, tmp, ["weights.npz"])


@case("snn-graph-json-corrupt")
def _(env, tmp):
    d = copy_snn(env, tmp)
    (d / "graph.json").write_text((d / "graph.json").read_text()[:777])
    return simulate_run(d, env, tmp, ["graph.json"])


def _tamper(env, tmp, edit) -> tuple[Path, str]:
    d = copy_snn(env, tmp)
    j = json.loads((d / "graph.json").read_text())
    name = edit(j)
    (d / "graph.json").write_text(json.dumps(j))
    return d, name


@case("snn-graph-unknown-op")
def _(env, tmp):
    def edit(j):
        n = next(n for n in j["nodes"] if n["op"] == "Softmax")
        n["op"] = "Frobnicate"
        return n["name"]

    d, node = _tamper(env, tmp, edit)
    return simulate_run(d, env, tmp, ["graph.json", node, "Frobnicate"])


@case("snn-graph-bad-shape")
def _(env, tmp):
    def edit(j):
        n = next(n for n in j["nodes"] if n["op"] == "IF")
        v = next(v for v in j["values"] if v["name"] == n["outputs"][0])
        v["shape"] = [*v["shape"][:-1], v["shape"][-1] + 3]
        return n["name"]

    d, node = _tamper(env, tmp, edit)
    return simulate_run(d, env, tmp, ["graph.json", node])


@case("snn-graph-attr-wrong-type")
def _(env, tmp):
    def edit(j):
        n = next(n for n in j["nodes"] if n["op"] == "Softmax")
        n["attrs"]["axis"] = "last"
        return n["name"]

    d, node = _tamper(env, tmp, edit)
    return simulate_run(d, env, tmp, ["graph.json", node, "axis"])


@case("snn-graph-spiking-softmax-table-mismatch")
def _(env, tmp):
    def edit(j):
        n = next(n for n in j["nodes"] if n["op"] == "Softmax")
        n["op"] = "SpikingSoftmax"
        n["attrs"] = {"axis": -1, "lo": -4.0, "T": [-1.0, -2.0, -3.0], "h": [1.0, 1.0], "d": [0.5, 0.2, 0.1]}
        return n["name"]

    d, node = _tamper(env, tmp, edit)
    return simulate_run(d, env, tmp, ["graph.json", node, "equal"])


@case("snn-graph-shape-not-a-list")
def _(env, tmp):
    def edit(j):
        j["values"][2]["shape"] = "wide"
        return j["values"][2]["name"]

    d, _ = _tamper(env, tmp, edit)
    return simulate_run(d, env, tmp, ["graph.json"])


@case("snn-graph-nodes-not-a-list")
def _(env, tmp):
    def edit(j):
        j["nodes"] = {"a": 1}
        return "nodes"

    d, _ = _tamper(env, tmp, edit)
    return simulate_run(d, env, tmp, ["graph.json"])


@case("snn-weights-wrong-shape")
def _(env, tmp):
    d = copy_snn(env, tmp)
    j = json.loads((d / "graph.json").read_text())
    node = next(
        n for n in j["nodes"] if n["op"] in ("Linear", "MatMul") and n["inputs"][1] in j["initializers"]
    )
    with np.load(d / "weights.npz") as z:
        w = {k: z[k] for k in z.files}
    w[node["inputs"][1]] = np.zeros((3, 3), np.float32)
    save_npz(d / "weights.npz", **w)
    return simulate_run(d, env, tmp, ["graph.json", node["name"]])


@case("snn-graph-missing-field")
def _(env, tmp):
    def edit(j):
        del j["nodes"][3]["inputs"]
        return "nodes"

    d, _ = _tamper(env, tmp, edit)
    return simulate_run(d, env, tmp, ["graph.json"])


@case("snn-graph-wrong-format")
def _(env, tmp):
    def edit(j):
        j["format"] = "something-else/9"
        return "format"

    d, _ = _tamper(env, tmp, edit)
    return simulate_run(d, env, tmp, ["graph.json", "format"])


@case("energy-report-before-simulate")
def _(env, tmp):
    out = tmp / "out" / "energy.json"
    out.parent.mkdir()
    return Run(["energy-report", copy_snn(env, tmp), "--out", out], ["snnconvert simulate"], [out])


@case("energy-report-bad-convention")
def _(env, tmp):
    out = tmp / "out" / "energy.json"
    out.parent.mkdir()
    d = copy_snn(env, tmp)
    return Run(["energy-report", d, "--convention", "magic", "--out", out], ["--convention"], [out])


# -- PyTorch checkpoints ---------------------------------------------------------------------------------
class Custom:  # a user class: its pickle would import and run code on load
    def __init__(self):
        self.w = [1.0, 2.0]


@case("torch-pickled-module")
def _(env, tmp):
    import torch

    p = tmp / "whole_module.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()), p)
    return calibrate_run(p, env, tmp, ["whole_module.pt", "pickled", "arbitrary code"])


@case("torch-pickled-custom-object")
def _(env, tmp):
    import torch

    p = tmp / "custom.pth"
    torch.save({"model": Custom()}, p)
    return calibrate_run(p, env, tmp, ["custom.pth", "pickled"])


@case("torch-state-dict")
def _(env, tmp):
    import torch

    p = tmp / "weights.pt"
    torch.save(torch.nn.Linear(4, 3).state_dict(), p)
    return calibrate_run(p, env, tmp, ["weights.pt", "state_dict"])


@case("torch-pt2-garbage")
def _(env, tmp):
    p = tmp / "garbage.pt2"
    p.write_bytes(b"not a zip" * 10)
    return calibrate_run(p, env, tmp, ["garbage.pt2"])


# -- unwritable outputs ------------------------------------------------------------------------------
def _blocked_dir(tmp: Path) -> Path:
    """A directory path nothing can be written into: a read-only dir (non-root), else a path under a
    regular file (root ignores permission bits)."""
    if os.geteuid() != 0:
        d = tmp / "readonly"
        d.mkdir()
        d.chmod(0o500)
        return d
    f = tmp / "some_file.txt"
    f.write_text("a regular file\n")
    return f


@case("out-unwritable-calibrate")
def _(env, tmp):
    out = _blocked_dir(tmp) / "out.json"
    return Run(
        ["calibrate", env["model"], "--data", env["calib_npz"], "--out", out], [str(out.parent)], [out]
    )


@case("out-under-file-calibrate")
def _(env, tmp):
    f = tmp / "some_file.txt"
    f.write_text("x")
    out = f / "out.json"
    return Run(["calibrate", env["model"], "--data", env["calib_npz"], "--out", out], [str(f)], [out])


@case("out-missing-parent-calibrate")
def _(env, tmp):
    out = tmp / "no" / "such" / "dir" / "out.json"
    return Run(
        ["calibrate", env["model"], "--data", env["calib_npz"], "--out", out], [str(out.parent)], [out]
    )


@case("out-is-a-directory-calibrate")
def _(env, tmp):
    out = tmp / "outdir.json"
    out.mkdir()
    return Run(["calibrate", env["model"], "--data", env["calib_npz"], "--out", out], [str(out)])


@case("out-unwritable-convert")
def _(env, tmp):
    out = _blocked_dir(tmp) / "snn"
    r = convert_run(env, tmp, [str(out.parent)])
    r.args[r.args.index("--out") + 1] = out
    r.outputs = [out]
    return r


@case("out-unwritable-simulate")
def _(env, tmp):
    d = copy_snn(env, tmp)
    out = _blocked_dir(tmp) / "result.json"
    r = simulate_run(d, env, tmp, [str(out.parent)])
    r.args[r.args.index("--out") + 1] = out
    r.outputs = [out, d / "events.npz", d / "simulation.json"]
    return r


@case("out-unwritable-inspect-json")
def _(env, tmp):
    out = _blocked_dir(tmp) / "info.json"
    return Run(["inspect", env["model"], "--json", out], [str(out.parent)], [out])


@case("out-unwritable-example")
def _(env, tmp):
    out = _blocked_dir(tmp) / "ex"
    return Run(["example", out], [str(out.parent)], [out])


# -- usage errors ------------------------------------------------------------------------------------
@case("usage-missing-option")
def _(env, tmp):
    return Run(["calibrate", env["model"], "--out", tmp / "c.json"], ["--data"], [tmp / "c.json"])


@case("usage-unknown-command")
def _(env, tmp):
    return Run(["frobnicate", env["model"]], ["frobnicate"])


@case("usage-unknown-option")
def _(env, tmp):
    return Run(["inspect", env["model"], "--colour", "blue"], ["--colour"])


# -- the test ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, built, cli, tmp_path):
    r = CASES[name](built, tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    try:
        code, out, err = cli(*[str(a) for a in r.args])
    finally:
        for p in tmp_path.rglob("*"):  # undo chmod so that pytest can clean up
            if p.is_dir():
                p.chmod(0o755)
    line = one_line_error(code, err)
    for s in r.expect:
        assert s in line, f"{s!r} not in {line!r}"
    assert not leftovers(*r.outputs), leftovers(*r.outputs)
    assert not hidden_temps(tmp_path), hidden_temps(tmp_path)
    after = sorted(str(p) for p in tmp_path.rglob("*"))
    assert after == before, set(after) ^ set(before)  # nothing created, nothing removed
    assert not hidden_temps(built["dir"])
    if name == "convert-out-is-a-file":
        assert (tmp_path / "out" / "snn").read_text() == "keep me"
