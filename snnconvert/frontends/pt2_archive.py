"""Check a `.pt2` archive before torch reads it, and give torch only what was checked.

`torch.export.load` trusts its file: a weight or constant marked `use_pickle`, a custom or opaque
constant and the sample inputs are unpickled with code allowed; symbolic sizes are parsed with
`sympy.sympify` (which evaluates Python); `guards_code` is compiled and run by `.module()`; names from
the archive are pasted into generated Python source; an AOTInductor member is a shared library that
gets loaded. A model file must be data, so this module reads the zip itself, accepts only what a
converter needs (one program of aten ops, weights and constants stored as raw tensor bytes, plain
names, plain symbolic sizes) and refuses everything else in one line naming the member and field.

What torch then loads is an archive rebuilt in memory from the checked members alone: the sample
inputs are checked with `weights_only=True` and left out, guards and optional metadata are dropped,
so no path inside `torch.export.load` can reach a pickle or an `exec` of archive text.
"""

from __future__ import annotations

import io
import json
import keyword
import re
import zipfile
from pathlib import Path
from typing import Any

from snnconvert.errors import InputError

ADVICE = (
    "export the model to ONNX instead, or save its state_dict (torch.save(model.state_dict(), ...)) "
    "and pass --model-factory module:function"
)
MAX_BYTES = 4 << 30  # uncompressed members in all, and tensor bytes the weights may declare in all
MAX_MEMBERS = 100_000
MAX_RATIO = (
    100  # a deflated member above 16 MiB may not inflate more than this (torch stores, never deflates)
)
MAX_JSON_BYTES = 256 << 20
MAX_DEPTH = 200


def _words(text: str) -> set[str]:
    return set(text.split())


_STAMPS = {"archive_format": "pt2", "archive_version": "0", "byteorder": "little"}
_WRITER_OWNED = {".data/version", ".data/serialization_id", "byteorder", "archive_format", "archive_version"}
PROGRAM = "models/model.json"
WEIGHTS_CONFIG = "data/weights/model_weights_config.json"
CONSTANTS_CONFIG = "data/constants/model_constants_config.json"
SAMPLE_INPUTS = "data/sample_inputs/model.pt"
_WEIGHT = re.compile(r"data/weights/(weight_\d+)")
_CONSTANT = re.compile(r"data/constants/(tensor_\d+)")

# what a member outside the accepted set would make torch do, so the refusal can say it
_REFUSED_PREFIXES = {
    "data/aotinductor/": "holds compiled native code (AOTInductor) that torch would load and run",
    "data/executorch/": "holds an ExecuTorch program, not a torch.export program",
    "data/mtia/": "holds device-specific compiled code",
    "xl_model_weights/": "holds weights in a format this reader does not accept",
    "data/constants/custom_obj_": "is a pickled TorchBind object (a custom-object constant)",
    "data/constants/opaque_obj_": "is a pickled Python object (an opaque constant), loaded with pickle.loads",
}

# ScalarType (torch/_export/serde/schema.py) -> bytes per element
_ELEMENT_BYTES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 2, 7: 4, 8: 8, 9: 4, 10: 8, 11: 16, 12: 1, 13: 2}
_ELEMENT_BYTES.update({28: 2, 29: 1, 30: 1, 31: 1, 32: 1, 33: 1, 34: 4, 35: 8})
_STRIDED = 7

_NAME = re.compile(r"[A-Za-z0-9_.\-]{0,512}")
_OP_TARGET = re.compile(r"torch\.ops\.(aten|prims)\.([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)")
_SYM_TARGETS = {
    f"_operator.{n}" for n in _words("eq ne le ge lt gt neg pos mul add sub floordiv mod truediv")
}
_SYM_TARGETS |= {"_operator.and_", "_operator.or_", "math.trunc"}
_SYM_TARGETS |= {f"torch.sym_{n}" for n in ("not", "int", "float", "ite", "max", "min", "sqrt")}
_REFUSED_ARGUMENTS = {
    "as_graph": "a subgraph (higher-order op)",
    "as_custom_obj": "a custom object",
    "as_operator": "an operator passed as a value",
}
# node metadata other than the module path (stack traces, source functions torch resolves to objects,
# free-form "custom") is dropped: converting needs none of it
_KEPT_METADATA = ("nn_module_stack",)

# symbolic sizes: sympy's srepr of integer arithmetic, nothing that evaluates or grows without bound
_EXPR_TOKEN = re.compile(
    r"\s+|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<num>\d{1,20}(?:\.\d{1,20})?(?:[eE][-+]?\d{1,3})?)"
    r"|'[A-Za-z0-9_.+\-]{0,64}'|(?P<punct>[(),=+\-*/])"
)
_EXPR_FUNCTIONS = _words(
    "Symbol Integer Rational Float Add Mul Max Min Mod Abs floor ceiling Eq Ne Lt Le Gt Ge "
    "StrictLessThan StrictGreaterThan LessThan GreaterThan Equality Unequality And Or Not true "
    "false True False oo nan Infinity NegativeInfinity Half One Zero NegativeOne FloorDiv "
    "ModularIndexing Where PythonMod CleanDiv CeilToInt FloorToInt CeilDiv IntTrueDiv "
    "FloatTrueDiv IsNonOverlappingAndDenseIndicator TruncToFloat TruncToInt RoundToInt "
    "RoundDecimal ToFloat Identity"
)
_EXPR_KEYWORDS = _words(
    "positive negative nonnegative nonpositive integer real finite infinite zero nonzero even "
    "odd prime rational commutative precision"
)
_EXPR_SYMBOL = re.compile(r"[a-z]{1,5}\d{1,9}")
_TREESPEC_TYPES = {None, "builtins.tuple", "builtins.list", "builtins.dict", "collections.OrderedDict"}


class _Refused(Exception):
    def __init__(self, member: str, why: str, advice: bool = True):
        super().__init__(member, why)
        self.member, self.why, self.advice = member, why, advice


def checked_archive(path: str | Path, max_bytes: int = MAX_BYTES) -> io.BytesIO:
    """The archive at path, checked and rebuilt in memory for torch.export.load; InputError if refused."""
    p = Path(path)
    try:
        members = _read_members(p, max_bytes)
        out = _check_and_rebuild(members, max_bytes)
    except _Refused as r:
        tail = f"; {ADVICE}" if r.advice else ""
        raise InputError(f"{p}: refused: {r.member}: {r.why}{tail}") from None
    return out


# -- the zip ---------------------------------------------------------------------------------------------
def _read_members(p: Path, max_bytes: int) -> dict[str, bytes]:
    """{name below the archive's root folder: bytes}, after checking names, sizes and ratios."""
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise InputError(f"{p}: not a torch.export archive (.pt2 is a zip file: {e})") from None
    with zf:
        infos = zf.infolist()
        if not infos:
            raise _Refused("(archive)", "the zip has no members", advice=False)
        if len(infos) > MAX_MEMBERS:
            raise _Refused("(archive)", f"{len(infos)} members, more than {MAX_MEMBERS}")
        total, seen, root = 0, set(), None
        for info in infos:
            name = info.filename
            _check_member_name(name)
            if name in seen:
                raise _Refused(name, "appears twice in the zip (which copy a reader takes is not defined)")
            seen.add(name)
            top, _, rest = name.partition("/")
            if root is None:
                root = top
            if top != root or not rest:
                raise _Refused(name, f"is outside the archive's root folder '{root}/'")
            if info.flag_bits & 0x1:
                raise _Refused(name, "is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _Refused(name, f"uses zip compression method {info.compress_type}")
            if info.file_size > 16 << 20 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise _Refused(
                    name,
                    f"inflates {info.compress_size:,} bytes to {info.file_size:,} "
                    f"(more than {MAX_RATIO}x: a zip bomb)",
                    advice=False,
                )
            total += info.file_size
            if total > max_bytes:
                raise _Refused(name, f"the members add up to more than {max_bytes:,} bytes uncompressed")
        members = {}
        for info in infos:
            if info.is_dir():
                continue
            with zf.open(info) as f:
                data = f.read(info.file_size + 1)
            if len(data) != info.file_size:
                raise _Refused(info.filename, "holds a different number of bytes than the zip declares")
            members[info.filename.partition("/")[2]] = data
    return members


def _check_member_name(name: str) -> None:
    shown = name[:80]
    if not name or "\\" in name or "\0" in name or name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise _Refused(repr(shown), "member name is absolute or not a plain relative path")
    if ".." in name.split("/"):
        raise _Refused(repr(shown), "member name climbs out of the archive with '..'")
    if len(name) > 1024:
        raise _Refused(repr(shown), "member name is longer than 1024 characters")


# -- members ---------------------------------------------------------------------------------------------
def _check_and_rebuild(members: dict[str, bytes], max_bytes: int) -> io.BytesIO:
    for name in members:
        _classify(name)
    for name, want in _STAMPS.items():
        if name in members and members[name].decode(errors="replace").strip() != want:
            got = members[name][:20].decode(errors="replace")
            raise _Refused(name, f"says '{got}', expected '{want}'", advice=False)
    for name in (PROGRAM, WEIGHTS_CONFIG, CONSTANTS_CONFIG):
        if name not in members:
            raise _Refused(name, "is missing (not an archive written by torch.export.save)", advice=False)
    budget = [max_bytes]
    weights = _check_payload_config(members, WEIGHTS_CONFIG, "data/weights/", _WEIGHT, budget)
    constants = _check_payload_config(members, CONSTANTS_CONFIG, "data/constants/", _CONSTANT, budget)
    program = _check_program(members[PROGRAM])
    _check_sample_inputs(members.get(SAMPLE_INPUTS))

    from torch.export.pt2_archive import PT2ArchiveWriter

    buf = io.BytesIO()
    with PT2ArchiveWriter(buf) as w:
        w.write_bytes(PROGRAM, json.dumps(program).encode())
        w.write_bytes(WEIGHTS_CONFIG, json.dumps(weights).encode())
        w.write_bytes(CONSTANTS_CONFIG, json.dumps(constants).encode())
        for cfg, base in ((weights, "data/weights/"), (constants, "data/constants/")):
            for path_name in sorted({e["path_name"] for e in cfg["config"].values()}):
                w.write_bytes(base + path_name, members[base + path_name])
        w.write_bytes(SAMPLE_INPUTS, b"")  # torch reads this member; empty means "no sample inputs"
    buf.seek(0)
    return buf


def _classify(name: str) -> None:
    """Accept the members a torch.export program is made of; refuse the rest, saying what it is."""
    if name in _WRITER_OWNED or name in (PROGRAM, WEIGHTS_CONFIG, CONSTANTS_CONFIG, SAMPLE_INPUTS):
        return
    if _WEIGHT.fullmatch(name) or _CONSTANT.fullmatch(name) or name.startswith("extra/"):
        return
    for prefix, why in _REFUSED_PREFIXES.items():
        if name.startswith(prefix):
            raise _Refused(name, why)
    if name in ("data/weights/model.pt", "data/constants/model.pt"):
        raise _Refused(name, "holds pickled tensors in torch's legacy layout, unpickled with code allowed")
    if name.startswith("models/") and name.endswith(".json"):
        raise _Refused(name, "is a second program (only 'model' is read)")
    raise _Refused(name, "is not part of a torch.export program")


def _check_payload_config(
    members: dict[str, bytes], config: str, base: str, payload: re.Pattern, budget: list[int]
) -> dict[str, Any]:
    """Every entry a plain tensor whose bytes are in its own member: no pickle, no object, no view
    reaching past its bytes or adding up past the budget."""
    cfg = _load_json(members[config], config)
    entries = cfg.get("config") if isinstance(cfg, dict) else None
    if not isinstance(entries, dict) or set(cfg) != {"config"}:
        raise _Refused(config, "is not a payload config ({'config': {name: entry}})", advice=False)
    for fqn, e in entries.items():
        where = f"{config}: entry '{str(fqn)[:80]}'"
        _check_name(fqn, where)
        if not isinstance(e, dict):
            raise _Refused(where, "is not an object", advice=False)
        path_name = e.get("path_name")
        if isinstance(path_name, str) and path_name.startswith(("custom_obj_", "opaque_obj_")):
            kind = (
                "a custom TorchBind object" if path_name.startswith("custom") else "an opaque Python object"
            )
            raise _Refused(where, f"is {kind}, stored as a pickle ('{path_name}')")
        if e.get("use_pickle") is not False:
            raise _Refused(where, "says use_pickle (its payload would be unpickled with code allowed)")
        if not isinstance(path_name, str) or not payload.fullmatch(base + path_name):
            raise _Refused(where, f"path_name {str(path_name)[:60]!r} is not a raw tensor payload")
        if base + path_name not in members:
            raise _Refused(where, f"its payload '{base}{path_name}' is missing", advice=False)
        if not isinstance(e.get("is_param"), bool):
            raise _Refused(where, "is_param is not true/false", advice=False)
        extra = set(e) - {"path_name", "is_param", "use_pickle", "tensor_meta"}
        if extra:
            raise _Refused(where, f"has unknown fields {sorted(extra)}", advice=False)
        logical = _check_tensor_meta(e.get("tensor_meta"), len(members[base + path_name]), where)
        budget[0] -= logical
        if budget[0] < 0:
            raise _Refused(
                where, f"the tensors declared add up to more than {MAX_BYTES:,} bytes", advice=False
            )
    return {"config": entries}


def _check_tensor_meta(meta: Any, nbytes: int, where: str) -> int:
    """The bytes the tensor spans (its logical size); refuse a view its payload does not hold."""
    if not isinstance(meta, dict):
        raise _Refused(where, "has no tensor_meta (only raw tensors are read)")
    dtype = meta.get("dtype")
    if type(dtype) is not int or dtype not in _ELEMENT_BYTES:
        raise _Refused(where, f"dtype {dtype!r} is not a tensor element type", advice=False)
    if meta.get("layout") != _STRIDED:
        raise _Refused(where, f"layout {meta.get('layout')!r} is not strided (sparse and others are refused)")
    sizes = [_as_int(s, where, "sizes") for s in _as_list(meta.get("sizes"), where, "sizes")]
    strides = [_as_int(s, where, "strides") for s in _as_list(meta.get("strides"), where, "strides")]
    offset = _as_int(meta.get("storage_offset"), where, "storage_offset")
    if len(sizes) != len(strides) or len(sizes) > 64:
        raise _Refused(where, "sizes and strides differ in length", advice=False)
    item = _ELEMENT_BYTES[dtype]
    numel = 1
    for s in sizes:
        numel *= s
    needed = (
        0
        if numel == 0
        else (offset + sum((s - 1) * st for s, st in zip(sizes, strides, strict=True)) + 1) * item
    )
    if nbytes % item:
        raise _Refused(where, f"payload of {nbytes} bytes is not a whole number of elements", advice=False)
    if needed > nbytes:
        raise _Refused(
            where, f"declares a tensor spanning {needed:,} bytes over a payload of {nbytes:,}", advice=False
        )
    return numel * item


def _as_list(v: Any, where: str, field: str) -> list:
    if not isinstance(v, list):
        raise _Refused(where, f"{field} is not a list", advice=False)
    return v


def _as_int(v: Any, where: str, field: str) -> int:
    """A concrete non-negative integer: stored weights have no symbolic sizes."""
    n = v.get("as_int") if isinstance(v, dict) and set(v) == {"as_int"} else None
    if type(n) is not int or n < 0:
        raise _Refused(where, f"{field}: {str(v)[:60]} is not a non-negative integer", advice=False)
    return n


def _check_sample_inputs(data: bytes | None) -> None:
    """Sample inputs are never handed to torch, but a pickle that needs code is an attack: refuse it."""
    if not data:
        return
    import torch

    try:
        with weights_only_loads():
            torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        first = unpickler_reason(e)
        raise _Refused(
            SAMPLE_INPUTS, f"the sample inputs do not load with weights_only=True ({first[:160]})"
        ) from None


def unpickler_reason(e: BaseException) -> str:
    """The line of torch.load's refusal that says what was refused (it leads with advice to retry
    with weights_only=False, which is exactly what must not be done)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for ln in lines:
        if "GLOBAL" in ln or "Unsupported" in ln or "unsupported" in ln:
            return ln[:160]
    rest = [ln for ln in lines if not ln.startswith("Weights only load failed")]
    return (rest or lines or [type(e).__name__])[0][:160]


class weights_only_loads:
    """While active, torch.load cannot be told weights_only=False (TORCH_FORCE_WEIGHTS_ONLY_LOAD):
    a second lock behind the archive check, should any path inside torch still reach a pickle."""

    def __enter__(self) -> weights_only_loads:
        import os

        self._saved = {k: os.environ.get(k) for k in _FORCE_ENV}
        os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
        os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
        return self

    def __exit__(self, *exc: object) -> None:
        import os

        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_FORCE_ENV = ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")


# -- the program -----------------------------------------------------------------------------------------
def _load_json(data: bytes, member: str) -> Any:
    if len(data) > MAX_JSON_BYTES:
        raise _Refused(member, f"is {len(data):,} bytes of JSON (more than {MAX_JSON_BYTES:,})", advice=False)
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise _Refused(member, f"is not valid JSON ({str(e)[:120]})", advice=False) from None


def _check_program(data: bytes) -> dict[str, Any]:
    """The program JSON, walked field by field; returns the copy torch gets (guards and optional
    metadata removed)."""
    j = _load_json(data, PROGRAM)
    if not isinstance(j, dict) or not isinstance(j.get("graph_module"), dict):
        raise _Refused(PROGRAM, "has no graph_module (not a torch.export program)", advice=False)
    # guards_code is Python source that ExportedProgram.module() compiles and runs; torch writes
    # guards for legitimate dynamic shapes too, so they are dropped rather than refused
    if not isinstance(j.get("guards_code", []), list):
        raise _Refused(f"{PROGRAM}: guards_code", "is not a list", advice=False)
    j["guards_code"] = []
    j["graph_module"]["metadata"] = {}  # free-form strings torch parses into its own metadata
    _walk(j, "", 0)
    return j


def _walk(v: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _Refused(f"{PROGRAM}: {where}", f"is nested more than {MAX_DEPTH} levels deep", advice=False)
    if isinstance(v, list):
        for i, x in enumerate(v):
            _walk(x, f"{where}[{i}]", depth + 1)
        return
    if isinstance(v, str):
        _check_name(v, f"{PROGRAM}: {where}")
        return
    if not isinstance(v, dict):
        return  # numbers, booleans, null
    node = "target" in v and "inputs" in v and "outputs" in v
    for k, x in list(v.items()):
        at = f"{where}.{k}" if where else str(k)
        _check_name(k, f"{PROGRAM}: {at} (a key)")
        if k in _REFUSED_ARGUMENTS:
            raise _Refused(
                f"{PROGRAM}: {at}", f"is {_REFUSED_ARGUMENTS[k]}, which this reader does not accept"
            )
        if node and k == "target":
            _check_target(x, f"{PROGRAM}: {at}")
        elif node and k == "metadata":
            v[k] = _kept_metadata(x, f"{PROGRAM}: {at}")
        elif k == "expr_str":
            _check_expr(x, f"{PROGRAM}: {at}")
        elif k in ("in_spec", "out_spec"):
            _check_treespec(x, f"{PROGRAM}: {at}")
        elif k == "forward_arg_names":
            for i, a in enumerate(_as_list(x, f"{PROGRAM}: {at}", k)):
                if not isinstance(a, str) or not a.isidentifier() or keyword.iskeyword(a):
                    raise _Refused(f"{PROGRAM}: {at}[{i}]", f"{str(a)[:60]!r} is not a Python identifier")
        elif k == "treespec_namedtuple_fields":
            if x:
                raise _Refused(
                    f"{PROGRAM}: {at}", "names namedtuple types, which this reader does not accept"
                )
        elif k in ("as_string", "as_strings", "torch_version"):
            continue  # values, written into generated code with repr() only
        else:
            _walk(x, at, depth + 1)


def _check_name(s: Any, where: str) -> None:
    """Names end up in Python source that torch.fx generates: only plain characters, no quotes."""
    if not isinstance(s, str) or not _NAME.fullmatch(s):
        raise _Refused(where, f"{str(s)[:60]!r} is not a plain name (letters, digits, '_', '.', '-')")


def _check_target(t: Any, where: str) -> None:
    import torch

    if isinstance(t, str) and t in _SYM_TARGETS:
        return
    m = _OP_TARGET.fullmatch(t) if isinstance(t, str) else None
    op = None
    if m:
        try:
            op = getattr(getattr(getattr(torch.ops, m[1]), m[2]), m[3])
        except (AttributeError, RuntimeError):
            op = None
    if not isinstance(op, torch._ops.OpOverload):
        raise _Refused(where, f"{str(t)[:80]!r} is not an aten or prims operator")


def _kept_metadata(meta: Any, where: str) -> dict[str, str]:
    if not isinstance(meta, dict) or not all(isinstance(x, str) for x in meta.values()):
        raise _Refused(where, "is not a map of strings", advice=False)
    kept = {k: meta[k] for k in _KEPT_METADATA if k in meta}
    for k, x in kept.items():
        if len(x) > 65536 or not x.isprintable():
            raise _Refused(f"{where}.{k}", "holds control characters or is longer than 64 KiB")
    return kept


def _check_expr(s: Any, where: str) -> None:
    """sympify evaluates its string as Python: accept only sympy's own printing of integer
    arithmetic (names from a fixed list, no attribute access, no powers or shifts)."""
    if not isinstance(s, str) or len(s) > 4096:
        raise _Refused(where, "is not a symbolic size expression")
    pos, depth, prev = 0, 0, None
    while pos < len(s):
        m = _EXPR_TOKEN.match(s, pos)
        if not m:
            raise _Refused(
                where, f"{s[:60]!r}: unexpected {s[pos : pos + 10]!r} in a symbolic size expression"
            )
        tok, pos = m[0], m.end()
        if m["name"] and tok not in _EXPR_FUNCTIONS | _EXPR_KEYWORDS and not _EXPR_SYMBOL.fullmatch(tok):
            raise _Refused(where, f"{s[:60]!r}: {tok!r} is not allowed in a symbolic size expression")
        if tok == "=" and prev not in _EXPR_KEYWORDS:
            raise _Refused(where, f"{s[:60]!r}: '=' only follows a keyword argument")
        if tok == "*" and prev == "*":
            raise _Refused(where, f"{s[:60]!r}: powers are not allowed in a symbolic size expression")
        depth += tok == "("
        depth -= tok == ")"
        if depth > 64 or depth < 0:
            raise _Refused(where, f"{s[:60]!r}: parentheses unbalanced or nested more than 64 deep")
        if not tok.isspace():
            prev = tok


def _check_treespec(s: Any, where: str) -> None:
    """The input/output structure: tuples, lists and dicts whose keys are identifiers (fx writes
    them into the generated forward())."""
    try:
        spec = json.loads(s) if isinstance(s, str) else None
    except (ValueError, RecursionError):
        spec = None
    if not (isinstance(spec, list) and len(spec) == 2 and isinstance(spec[1], dict)):
        raise _Refused(where, "is not a tree spec", advice=False)

    def node(n: Any, depth: int) -> None:
        if not isinstance(n, dict) or depth > MAX_DEPTH:
            raise _Refused(where, "is not a tree spec", advice=False)
        if not (n.get("type") is None or isinstance(n["type"], str)) or n.get("type") not in _TREESPEC_TYPES:
            raise _Refused(
                where,
                f"input/output type {str(n.get('type'))[:60]!r} is not a tuple, list or dict (export a "
                "module that takes and returns tensors, e.g. transformers with return_dict=False)",
                advice=False,
            )
        try:
            ctx = json.loads(n["context"]) if isinstance(n.get("context"), str) else n.get("context")
        except ValueError:
            raise _Refused(where, "has a context that is not JSON", advice=False) from None
        for key in ctx if isinstance(ctx, list) else ([] if ctx is None else [ctx]):
            if not (isinstance(key, int) or isinstance(key, str) and key.isidentifier()):
                raise _Refused(where, f"key {str(key)[:60]!r} is not a Python identifier")
        children = n.get("children_spec") or []
        if not isinstance(children, list):
            raise _Refused(where, "is not a tree spec", advice=False)
        for c in children:
            node(c, depth + 1)

    node(spec[1], 0)
