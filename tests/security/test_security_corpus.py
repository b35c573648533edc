"""Model files are data: a crafted file must be refused before anything in it runs.

Each case is run as a user would run it, `python -m snnconvert inspect|calibrate FILE` in a fresh
interpreter, and must (1) never create the canary file its payload would create, (2) exit non-zero,
(3) print exactly one line, `error: ...`, naming the member or field (and nothing on stdout).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import craft
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

ADVICE = "--model-factory"


def _limit_memory() -> None:
    """A memory bomb that got through should fail here, not take the machine down."""
    resource.setrlimit(resource.RLIMIT_AS, (16 << 30, 16 << 30))


def snnconvert(*args, cwd: Path) -> tuple[int, str, str]:
    r = subprocess.run(
        [sys.executable, "-m", "snnconvert", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit_memory,
        env={**os.environ, "COLUMNS": "200"},
    )
    return r.returncode, r.stdout, r.stderr


def assert_refused(code: int, out: str, err: str, canary: Path, expect: list[str]) -> str:
    assert not canary.exists(), f"the payload ran (canary created); output: {out[-500:]} {err[-500:]}"
    assert code != 0, f"exit 0: {out[-500:]}"
    assert "Traceback" not in err, err[-2000:]
    assert not out.strip(), f"stdout should be empty: {out[-500:]}"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}: {err[-2000:]}"
    line = lines[0]
    assert line.startswith("error: "), line
    for s in expect:
        assert s in line, f"{s!r} not in {line!r}"
    return line


# -- the cases: (tmp dir, valid base archive, canary) -> (model file, substrings of the one line) ------------
Case = Callable[[Path, Path, Path], tuple[Path, list[str]]]
CASES: dict[str, Case] = {}


def case(name: str):
    def deco(f: Case) -> Case:
        assert name not in CASES
        CASES[name] = f
        return f

    return deco


def pt2_case(name: str, change: Callable[[dict, Path], None], expect: list[str]) -> None:
    @case(name)
    def _(tmp: Path, base: Path, canary: Path) -> tuple[Path, list[str]]:
        p = tmp / f"{name}.pt2"
        craft.edit(base, p, lambda m: change(m, canary))
        return p, [p.name, *expect]


# the issue's archive: a weight says use_pickle, its payload is a pickle calling os.system
pt2_case(
    "pt2-pickled-weight",
    craft.pickled_weight,
    ["model_weights_config.json", "fc1.weight", "use_pickle", ADVICE],
)
pt2_case(
    "pt2-pickled-sample-inputs", craft.pickled_sample_inputs, ["data/sample_inputs/model.pt", "weights_only"]
)
pt2_case(
    "pt2-opaque-constant",
    lambda m, c: craft.object_constant(m, c, "opaque_obj_"),
    ["data/constants/opaque_obj_0", "pickle", ADVICE],
)
pt2_case(
    "pt2-custom-constant",
    lambda m, c: craft.object_constant(m, c, "custom_obj_"),
    ["data/constants/custom_obj_0", "TorchBind", ADVICE],
)
pt2_case(
    "pt2-pickled-tensor-constant",
    craft.pickled_tensor_constant,
    ["model_constants_config.json", "'c'", "use_pickle"],
)
pt2_case(
    "pt2-legacy-pickled-weights",
    lambda m, c: m.__setitem__("data/weights/model.pt", craft.canary_pickle(c)),
    ["data/weights/model.pt", "pickled"],
)
pt2_case(
    "pt2-aotinductor",
    lambda m, c: m.__setitem__("data/aotinductor/model/model.so", b"\x7fELF"),
    ["data/aotinductor/model/model.so", "native code"],
)
pt2_case("pt2-target-outside-aten", craft.target_outside_aten, ["nodes[1].target", "torch.os.system"])
pt2_case("pt2-code-in-sym-expr", craft.code_in_sym_expr, ["expr_str", "symbolic size"])
pt2_case("pt2-code-in-arg-names", craft.code_in_arg_names, ["forward_arg_names[0]", "identifier"])
pt2_case("pt2-code-in-parameter-name", craft.code_in_parameter_name, ["fc1.bias", "not a plain name"])
pt2_case("pt2-code-in-spec-key", craft.code_in_spec_key, ["in_spec", "identifier"])
pt2_case(
    "pt2-view-past-payload",
    lambda m, c: craft.oversized_view(m, [100000, 100000]),
    ["fc1.weight", "spanning 40,000,000,000 bytes over a payload of 128"],
)
pt2_case(
    "pt2-empty-payload-huge-shape",
    lambda m, c: craft.oversized_view(m, [1 << 20, 1 << 20], payload=b""),
    ["fc1.weight", "over a payload of 0"],
)


@case("pt2-member-dotdot")
def _(tmp, base, canary):
    root, members = craft.read_members(base)
    p = craft.write_members(tmp / "dotdot.pt2", root, members, raw_names={f"{root}/../../evil.py": b"x"})
    return p, ["dotdot.pt2", "'..'", "evil.py"]


@case("pt2-member-absolute")
def _(tmp, base, canary):
    root, members = craft.read_members(base)
    p = craft.write_members(tmp / "absolute.pt2", root, members, raw_names={"/tmp/evil.py": b"x"})
    return p, ["absolute.pt2", "/tmp/evil.py", "absolute"]


@case("pt2-zip-bomb")
def _(tmp, base, canary):
    root, members = craft.read_members(base)
    p = craft.write_deflated(tmp / "bomb.pt2", root, members, "extra/bomb", 64 << 20)
    assert p.stat().st_size < 1 << 20
    return p, ["bomb.pt2", "extra/bomb", "zip bomb"]


# -- PyTorch checkpoints ------------------------------------------------------------------------------------
for _suffix in (".pt", ".pth"):

    @case(f"pickled-checkpoint{_suffix}")
    def _(tmp, base, canary, _suffix=_suffix):
        p = tmp / f"checkpoint{_suffix}"
        torch.save({"model": craft.Canary(canary), "fc.weight": torch.zeros(2)}, p)
        return p, [p.name, "pickled"]


# -- ONNX -----------------------------------------------------------------------------------------------------
def _matmul_model(w: np.ndarray | TensorProto, n_in: int, n_out: int) -> onnx.ModelProto:
    init = w if isinstance(w, TensorProto) else numpy_helper.from_array(w, "w")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])],
        [init],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _external(tmp: Path, name: str, location: str) -> Path:
    """model dir/NAME.onnx whose weight 'w' is stored at `location` (relative to the model dir)."""
    d = tmp / "modeldir"
    d.mkdir(exist_ok=True)
    p = d / f"{name}.onnx"
    m = _matmul_model(np.ones((4, 4), np.float32), 4, 4)
    onnx.save(m, str(p), save_as_external_data=True, location=f"{name}.bin", size_threshold=0)
    m = onnx.load(str(p), load_external_data=False)
    for kv in m.graph.initializer[0].external_data:
        if kv.key == "location":
            kv.value = location
    onnx.save(m, str(p))
    return p


@case("onnx-external-dotdot")
def _(tmp, base, canary):
    p = _external(tmp, "dotdot", "../outside.bin")
    (tmp / "outside.bin").write_bytes(bytes(64))
    return p, ["dotdot.onnx", "'w'", "outside the model's directory"]


@case("onnx-external-absolute")
def _(tmp, base, canary):
    (tmp / "outside.bin").write_bytes(bytes(64))
    p = _external(tmp, "absolute", str(tmp / "outside.bin"))
    return p, ["absolute.onnx", "'w'", "outside the model's directory"]


@case("onnx-external-symlink")
def _(tmp, base, canary):
    (tmp / "outside.bin").write_bytes(bytes(64))
    p = _external(tmp, "symlink", "link.bin")
    (p.parent / "link.bin").symlink_to(tmp / "outside.bin")
    return p, ["symlink.onnx", "'w'", "outside the model's directory"]


@case("onnx-constantofshape-bomb")
def _(tmp, base, canary):
    shape = numpy_helper.from_array(np.array([1 << 20, 1 << 20], np.int64), "shape")
    value = helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0])
    g = helper.make_graph(
        [
            helper.make_node("ConstantOfShape", ["shape"], ["c"], name="bomb", value=value),
            helper.make_node("Add", ["x", "c"], ["y"], name="add"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1 << 20])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1 << 20])],
        [shape],
    )
    p = tmp / "cos_bomb.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(p))
    return p, ["cos_bomb.onnx", "bomb"]


@case("onnx-huge-initializer")
def _(tmp, base, canary):
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[100000, 100000], raw_data=bytes(16))
    p = tmp / "init_bomb.onnx"
    onnx.save(_matmul_model(w, 100000, 100000), str(p))
    return p, ["init_bomb.onnx", "w", "40000000000 bytes"]


# -- the runs -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("base")
    return craft.export_two_layer(d / "base.pt2")


@pytest.fixture
def work(tmp_path) -> Path:
    assert "." not in str(tmp_path), tmp_path  # a payload (parameter name) cannot hold dots
    np.savez(tmp_path / "calib.npz", x=np.zeros((8, 4), np.float32))
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("command", ["inspect", "calibrate"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_refused_without_running_code(name, command, work, base):
    canary = work / "canary"
    model, expect = CASES[name](work, base, canary)
    args = [command, model]
    if command == "calibrate":
        args += ["--data", work / "calib.npz", "--out", work / "calib.json"]
    line = assert_refused(*snnconvert(*args, cwd=work), canary, expect)
    assert not (work / "calib.json").exists()
    print(f"{name} [{command}]: {line}")


@pytest.mark.slow
def test_issue_archive_refused_by_convert(work, base):
    canary = work / "canary"
    model, expect = CASES["pt2-pickled-weight"](work, base, canary)
    out = work / "snn"
    args = ["convert", model, "--calibration", work / "none.json", "--recipe", "mueller2021", "--out", out]
    assert_refused(*snnconvert(*args, cwd=work), canary, expect)
    assert not out.exists()


@pytest.mark.slow
def test_guards_code_is_dropped_never_run(work, base):
    """torch writes guards for legitimate dynamic shapes, so they are not refused: they are dropped,
    and the program still converts."""
    canary = work / "canary"
    p = craft.edit(base, work / "guards.pt2", lambda m: craft.code_in_guards(m, canary))
    code, out, err = snnconvert("inspect", p, cwd=work)
    assert not canary.exists()
    assert code == 0, err[-2000:]


def test_the_base_archive_is_accepted(base):
    """The cases above are edits of an archive that loads: a refusal is about the edit."""
    from snnconvert.frontends.pt2_archive import checked_archive

    ep = torch.export.load(checked_archive(base))
    x = torch.randn(3, 4)
    torch.manual_seed(0)
    ref = craft.TwoLayer().eval()
    torch.testing.assert_close(ep.module()(x), ref(x))
    assert ep.example_inputs is None  # the sample inputs never reach torch


def test_total_size_cap(base):
    from snnconvert.errors import InputError
    from snnconvert.frontends.pt2_archive import checked_archive

    with pytest.raises(InputError, match="add up to more than 1,000 bytes"):
        checked_archive(base, max_bytes=1000)


def _set_in_spec(j: dict, spec: str) -> None:
    j["graph_module"]["module_call_graph"][0]["signature"]["in_spec"] = spec


@pytest.mark.parametrize(
    "member,change",
    [
        (craft.WEIGHTS_CONFIG, lambda j: j["config"]["fc1.weight"]["tensor_meta"].__setitem__("dtype", {})),
        (craft.WEIGHTS_CONFIG, lambda j: j["config"]["fc1.weight"]["tensor_meta"].__setitem__("sizes", 5)),
        (craft.WEIGHTS_CONFIG, lambda j: j["config"].__setitem__("fc1.weight", [])),
        (craft.CONSTANTS_CONFIG, lambda j: j.__setitem__("config", [])),
        (craft.PROGRAM, lambda j: _set_in_spec(j, '[1, {"type": [1]}]')),
        (craft.PROGRAM, lambda j: _set_in_spec(j, '[1, {"type": null, "children_spec": 3}]')),
        (craft.PROGRAM, lambda j: _set_in_spec(j, "[" * 5000 + "]" * 5000)),
        (craft.PROGRAM, lambda j: j["graph_module"]["graph"]["nodes"][0].__setitem__("metadata", [])),
        (craft.PROGRAM, lambda j: j.__setitem__("guards_code", "x")),
    ],
)
def test_malformed_fields_are_one_line_refusals(member, change, base, tmp_path):
    """A field of the wrong type is refused as such, never an internal error from the checker."""
    from snnconvert.errors import InputError
    from snnconvert.frontends.pt2_archive import checked_archive

    p = craft.edit(base, tmp_path / "odd.pt2", lambda m: craft.edit_json(m, member, change))
    with pytest.raises(InputError, match="odd.pt2: refused: "):
        checked_archive(p)
