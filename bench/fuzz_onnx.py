"""Fuzz the ONNX frontend (and what follows it) with mutated copies of the built-in example model.

`mutants(seed, n)` yields (description, bytes) deterministically: byte flips, truncations, dropped
nodes, renamed or swapped node inputs, changed attributes (perm, axis, epsilon, ...), changed shape
constants, initializers with other shapes or dtypes, graph inputs with other dims, rank or element
type, op types swapped for an unknown or another known op, outputs removed or renamed, other opsets.

`python -m bench.fuzz_onnx [-n 240] [--seed 0] [--jobs 2] [--timeout 120]` runs every mutant in
subprocesses: `snnconvert inspect M`, and when that succeeds `calibrate` (16 samples), `convert`
and `simulate --samples 16 --timesteps 4`. Each case ends as one of
  accepted      every command exited 0
  clean_error   a command exited non-zero with one stderr line 'error: ...' and no traceback
  traceback     a traceback, an 'internal error: ...' line (an exception that is not an
                SnnConvertError) or any other stderr for a failure: a bug
  hang          a command ran past the timeout
  crash         a command died from a signal (segfault in a native library, out of memory)
and the counts go to bench/results/fuzz.json with every non-clean case listed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RESULTS = Path(__file__).parent / "results"

# -- the base model ----------------------------------------------------------------------------------


def base_bytes() -> bytes:
    return (resources.files("snnconvert") / "zoo" / "digits_vit.onnx").read_bytes()


_BASE: dict[bytes, onnx.ModelProto] = {}


def _parse(raw: bytes) -> onnx.ModelProto:
    if raw not in _BASE:
        if len(_BASE) > 2:
            _BASE.clear()
        _BASE[raw] = onnx.load_model_from_string(raw)
    m = onnx.ModelProto()
    m.CopyFrom(_BASE[raw])
    return m


# -- mutators: (rng, raw bytes) -> (description, bytes) -------------------------------------------
Mutator = Callable[[random.Random, bytes], tuple[str, bytes]]
MUTATORS: list[tuple[str, Mutator]] = []


def mutator(name: str):
    def deco(f):
        MUTATORS.append((name, f))
        return f

    return deco


def _proto(f: Callable[[random.Random, onnx.ModelProto], str]) -> Mutator:
    """A mutator that edits the parsed model and serialises it again."""

    def run(rng: random.Random, raw: bytes) -> tuple[str, bytes]:
        m = _parse(raw)
        desc = f(rng, m)
        return desc, m.SerializeToString()

    run.__name__ = f.__name__
    return run


def _node(rng: random.Random, m: onnx.ModelProto, pred=lambda n: True) -> onnx.NodeProto | None:
    nodes = [n for n in m.graph.node if pred(n)]
    return rng.choice(nodes) if nodes else None


def _values(m: onnx.ModelProto) -> list[str]:
    names = [i.name for i in m.graph.input] + [i.name for i in m.graph.initializer]
    for n in m.graph.node:
        names += [o for o in n.output if o]
    return names


@mutator("flip-bytes")
def _flip(rng, raw):
    b = bytearray(raw)
    k = rng.choice([1, 1, 2, 4, 16])
    where = []
    for _ in range(k):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
        where.append(i)
    return f"flip {k} bit(s) at {sorted(where)[:4]}", bytes(b)


@mutator("flip-header-bytes")
def _flip_head(rng, raw):  # the graph structure precedes most weights: hit it more often
    b = bytearray(raw)
    i = rng.randrange(min(len(b), 4096))
    b[i] = rng.randrange(256)
    return f"set byte {i} to {b[i]}", bytes(b)


@mutator("truncate")
def _truncate(rng, raw):
    n = rng.choice([rng.randrange(1, 64), rng.randrange(len(raw)), len(raw) - rng.randrange(1, 64)])
    return f"truncate to {n} of {len(raw)} bytes", raw[:n]


@mutator("splice")
def _splice(rng, raw):
    i, k = rng.randrange(len(raw)), rng.randrange(1, 32)
    if rng.random() < 0.5:
        return f"delete {k} bytes at {i}", raw[:i] + raw[i + k :]
    return f"insert {k} random bytes at {i}", raw[:i] + rng.randbytes(k) + raw[i:]


@mutator("drop-node")
@_proto
def _drop(rng, m):
    n = _node(rng, m)
    m.graph.node.remove(n)
    return f"drop node {n.name} ({n.op_type})"


@mutator("rename-input")
@_proto
def _rename(rng, m):
    n = _node(rng, m, lambda n: len(n.input) > 0)
    j = rng.randrange(len(n.input))
    old = n.input[j]
    new = rng.choice([*_values(m), "no_such_value", ""])
    n.input[j] = new
    return f"node {n.name} ({n.op_type}) input {j}: {old} -> {new or '<empty>'}"


@mutator("swap-inputs")
@_proto
def _swap(rng, m):
    n = _node(rng, m, lambda n: len(n.input) > 1)
    a = list(n.input)
    rng.shuffle(a)
    del n.input[:]
    n.input.extend(a)
    return f"node {n.name} ({n.op_type}) inputs shuffled to {a}"


@mutator("change-attribute")
@_proto
def _attr(rng, m):
    n = _node(rng, m, lambda n: len(n.attribute) > 0)
    a = rng.choice(list(n.attribute))
    old = helper.get_attribute_value(a)
    if a.type == onnx.AttributeProto.INT:
        a.i = rng.choice([-5, -2, -1, 0, 1, 2, 3, 7, 1 << 40])
        new = a.i
    elif a.type == onnx.AttributeProto.INTS:
        v = list(a.ints)
        choice = rng.randrange(4)
        if choice == 0 and v:
            rng.shuffle(v)
        elif choice == 1:
            v = v[:-1]
        elif choice == 2:
            v = [*v, rng.randrange(-2, 8)]
        else:
            v = [rng.randrange(-3, 8) for _ in v]
        del a.ints[:]
        a.ints.extend(v)
        new = v
    elif a.type == onnx.AttributeProto.FLOAT:
        a.f = rng.choice([0.0, -1.0, 1e30, float("nan"), float("inf")])
        new = a.f
    else:
        n.attribute.remove(a)
        new = "<removed>"
    return f"node {n.name} ({n.op_type}) attribute {a.name}: {old} -> {new}"


@mutator("remove-attribute")
@_proto
def _rm_attr(rng, m):
    n = _node(rng, m, lambda n: len(n.attribute) > 0)
    a = rng.choice(list(n.attribute))
    n.attribute.remove(a)
    return f"node {n.name} ({n.op_type}) attribute {a.name} removed"


@mutator("change-shape-constant")
@_proto
def _shape_const(rng, m):
    ints = [i for i in m.graph.initializer if i.data_type == TensorProto.INT64 and len(i.dims) <= 1]
    init = rng.choice(ints)
    a = numpy_helper.to_array(init).copy().reshape(-1)
    if a.size and rng.random() < 0.8:
        j = rng.randrange(a.size)
        a[j] = rng.choice([-2, -1, 0, 1, 2, 3, 7, 48, 1000])
        desc = f"entry {j} -> {a[j]}"
    else:
        a = np.append(a, rng.choice([1, 2, -1]))
        desc = "one more entry"
    if not init.dims and a.size == 1:
        a = a.reshape(())  # keep a scalar a scalar
    init.CopyFrom(numpy_helper.from_array(a, init.name))
    return f"shape constant {init.name}: {desc}"


@mutator("change-initializer-shape")
@_proto
def _init_shape(rng, m):
    init = rng.choice([i for i in m.graph.initializer if i.data_type == TensorProto.FLOAT])
    a = numpy_helper.to_array(init)
    k = rng.randrange(4)
    if k == 0 and a.ndim:
        b, desc = np.take(a, range(max(1, a.shape[-1] - 1)), axis=-1), "last axis shortened"
    elif k == 1:
        b, desc = a[None], "extra leading axis"
    elif k == 2 and a.ndim >= 2:
        b, desc = np.ascontiguousarray(a.T), "transposed"
    else:
        b, desc = a.reshape(-1), "flattened"
    init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(b), init.name))
    return f"initializer {init.name} {list(a.shape)} -> {list(b.shape)} ({desc})"


@mutator("change-initializer-dtype")
@_proto
def _init_dtype(rng, m):
    init = rng.choice(list(m.graph.initializer))
    a = numpy_helper.to_array(init)
    dt = rng.choice([np.float64, np.float16, np.int64, np.int32, np.bool_, np.uint8])
    init.CopyFrom(numpy_helper.from_array(a.astype(dt), init.name))
    return f"initializer {init.name} {a.dtype} -> {np.dtype(dt).name}"


@mutator("initializer-nan")
@_proto
def _init_nan(rng, m):
    init = rng.choice([i for i in m.graph.initializer if i.data_type == TensorProto.FLOAT])
    a = numpy_helper.to_array(init).copy()
    v = rng.choice([np.nan, np.inf, -np.inf, 1e38])
    a.reshape(-1)[rng.randrange(max(1, a.size))] = v
    init.CopyFrom(numpy_helper.from_array(a, init.name))
    return f"initializer {init.name}: one entry -> {v}"


@mutator("change-input-dims")
@_proto
def _input_dims(rng, m):
    inp = m.graph.input[0]
    tt = inp.type.tensor_type
    dims = tt.shape.dim
    k = rng.randrange(5)
    if k == 0:
        j = rng.randrange(len(dims))
        dims[j].Clear()
        dims[j].dim_value = rng.choice([0, 1, 2, 3, 7, 16])
        return f"input {inp.name} dim {j} -> {dims[j].dim_value}"
    if k == 1:
        dims.add().dim_value = rng.choice([1, 2])
        return f"input {inp.name}: extra trailing dim"
    if k == 2:
        del dims[-1]
        return f"input {inp.name}: last dim removed"
    if k == 3:
        tt.elem_type = rng.choice(
            [TensorProto.INT64, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.STRING]
        )
        return f"input {inp.name}: elem_type -> {tt.elem_type}"
    tt.ClearField("shape")
    return f"input {inp.name}: shape removed"


UNKNOWN_OPS = ["FooBar", "Frobnicate", "Sin", "Einsum", "TopK"]
KNOWN_SWAPS = ["Relu", "Softmax", "Add", "Mul", "MatMul", "Transpose", "Sigmoid", "Identity", "Sub", "Concat"]


@mutator("unknown-op")
@_proto
def _unknown_op(rng, m):
    n = _node(rng, m)
    old, n.op_type = n.op_type, rng.choice(UNKNOWN_OPS)
    return f"node {n.name}: op {old} -> {n.op_type}"


@mutator("swap-op")
@_proto
def _swap_op(rng, m):
    n = _node(rng, m)
    old, n.op_type = n.op_type, rng.choice([o for o in KNOWN_SWAPS if o != n.op_type])
    return f"node {n.name}: op {old} -> {n.op_type}"


@mutator("custom-domain")
@_proto
def _domain(rng, m):
    n = _node(rng, m)
    n.domain = "com.example"
    return f"node {n.name} ({n.op_type}): domain -> com.example"


@mutator("outputs")
@_proto
def _outputs(rng, m):
    k = rng.randrange(3)
    if k == 0:
        del m.graph.output[:]
        return "all graph outputs removed"
    if k == 1:
        name = rng.choice(_values(m))
        m.graph.output[0].name = name
        return f"graph output renamed to {name}"
    extra = helper.make_tensor_value_info(rng.choice(_values(m)), TensorProto.FLOAT, None)
    m.graph.output.append(extra)
    return f"second graph output {extra.name}"


@mutator("opset")
@_proto
def _opset(rng, m):
    v = rng.choice([1, 9, 10, 11, 13, 17, onnx.defs.onnx_opset_version(), onnx.defs.onnx_opset_version() + 1])
    m.opset_import[0].version = v
    return f"opset -> {v}"


@mutator("duplicate-output-name")
@_proto
def _dup(rng, m):
    a, b = rng.sample(list(m.graph.node), 2)
    b.output[0] = a.output[0]
    return f"node {b.name} ({b.op_type}) writes {a.output[0]} like {a.name}"


BYTE_LEVEL = ("flip-bytes", "flip-header-bytes", "truncate", "splice")


def mutants(seed: int = 0, n: int = 200, raw: bytes | None = None) -> Iterator[tuple[str, bytes]]:
    """n mutated copies of the built-in ONNX model, the same for the same (seed, n): mutators taken
    in turn (every kind is exercised), each with its own random choices; about one in four cases
    applies two mutations."""
    raw = base_bytes() if raw is None else raw
    rng = random.Random(seed)
    for i in range(n):
        name, f = MUTATORS[i % len(MUTATORS)]
        desc, out = f(rng, raw)
        if rng.random() < 0.25 and name not in BYTE_LEVEL:
            _, f2 = rng.choice([mt for mt in MUTATORS if mt[0] not in BYTE_LEVEL])  # a second edit
            try:
                desc2, out2 = f2(rng, out)
                desc, out = f"{desc}; {desc2}", out2
            except Exception:  # the first mutation left nothing for the second to act on
                pass
        yield f"{i:03d} {name}: {desc}", out


# -- running -----------------------------------------------------------------------------------------
def classify(code: int | None, err: str) -> str:
    """accepted / clean_error / traceback / hang / crash for one command's result."""
    if code is None:
        return "hang"
    if code == 0:
        return "accepted"
    if code < 0:
        return "crash"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if "Traceback" in err or len(lines) != 1 or not lines[0].startswith("error: "):
        return "traceback"
    return "clean_error"


def _cmd(args: list[str], timeout: float) -> tuple[int | None, str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    try:
        r = subprocess.run(
            [sys.executable, "-m", "snnconvert", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return None, ""
    return r.returncode, r.stderr


def run_case(desc: str, data: bytes, ex: Path, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as d:
        m = Path(d) / "m.onnx"
        m.write_bytes(data)
        steps = [
            ["inspect", str(m)],
            ["calibrate", str(m), "--data", str(ex / "calib.npz"), "--samples", "16", "--out", f"{d}/c.json"],
            [
                "convert",
                str(m),
                "--calibration",
                f"{d}/c.json",
                "--recipe",
                "mueller2021",
                "--out",
                f"{d}/snn",
            ],
            ["simulate", f"{d}/snn", "--data", str(ex / "test.npz"), "--samples", "16", "--timesteps", "4"],
        ]
        for s in steps:
            code, err = _cmd(s, timeout)
            kind = classify(code, err)
            if kind != "accepted":
                return {
                    "case": desc,
                    "result": kind,
                    "step": s[0],
                    "stderr": err.strip()[-2000:],
                }
        return {"case": desc, "result": "accepted", "step": None, "stderr": ""}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Fuzz the ONNX frontend (and what follows it) with mutated copies of the built-in example model."
    )
    ap.add_argument("-n", type=int, default=240, help="number of mutants (>= 200 for the bench)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per command")
    ap.add_argument("--out", type=Path, default=RESULTS / "fuzz.json")
    a = ap.parse_args(argv)

    from snnconvert.api import write_example

    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="fuzz-ex-") as d:
        ex = Path(d) / "ex"
        write_example(ex)
        cases = list(mutants(a.seed, a.n))
        with ThreadPoolExecutor(a.jobs) as pool:
            results = []
            for i, r in enumerate(pool.map(lambda c: run_case(c[0], c[1], ex, a.timeout), cases)):
                results.append(r)
                if r["result"] not in ("accepted", "clean_error"):
                    print(f"[{i + 1}/{len(cases)}] {r['result'].upper()}: {r['case']}: {r['stderr'][-300:]}")
                elif (i + 1) % 20 == 0:
                    print(f"[{i + 1}/{len(cases)}] {time.time() - t0:.0f} s", flush=True)
    counts = {
        k: sum(r["result"] == k for r in results)
        for k in ("accepted", "clean_error", "traceback", "hang", "crash")
    }
    by_step: dict[str, int] = {}
    for r in results:
        if r["result"] == "clean_error":
            by_step[r["step"]] = by_step.get(r["step"], 0) + 1
    payload = {
        "bench": "fuzz_onnx",
        "date": time.strftime("%Y-%m-%d"),
        "seed": a.seed,
        "cases": len(results),
        **counts,
        "clean_errors_by_step": by_step,
        "timeout_s": a.timeout,
        "wall_s": round(time.time() - t0, 1),
        "failures": [r for r in results if r["result"] not in ("accepted", "clean_error")],
        "sample_errors": sorted(
            {r["stderr"].split(": ", 2)[-1][:120] for r in results if r["result"] == "clean_error"}
        )[:60],
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    print(json.dumps({k: payload[k] for k in ("cases", *counts, "wall_s")}))
    print(f"-> {a.out}")
    return 0 if counts["traceback"] == counts["hang"] == counts["crash"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
