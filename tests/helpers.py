"""Helpers shared by test modules (imported as `helpers`: pytest puts tests/ on sys.path): the CLI
run in-process, and the portable SNN run where snnconvert cannot be imported."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import numpy as np


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from snnconvert import cli as c

    out, err = io.StringIO(), io.StringIO()
    old = c.out.file, c.err.file
    c.out.file, c.err.file = out, err
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            c.main([str(a) for a in args])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        c.out.file, c.err.file = old
        c._state["debug"] = False
    return code, out.getvalue(), err.getvalue()


def assert_portable_matches_simulator(snn_dir, x: np.ndarray, T: int, tmp_path) -> None:
    """Run SNN_DIR/portable in a fresh interpreter where snnconvert cannot be imported, for T steps
    on x, decoded as portable.json says (rate: the mean of the per-step outputs; count: their sum);
    it must match the simulator's decoded output (1e-4)."""
    from snnconvert.api import load_snn
    from snnconvert.ir.execute import sample_rows
    from snnconvert.sim.simulator import Simulator

    np.save(tmp_path / "x.npy", x)
    code = f"""
import sys; sys.modules['snnconvert'] = None
import json, numpy as np, torch
step = torch.export.load({str(snn_dir / "portable" / "snn_step.pt2")!r}).module()
meta = json.load(open({str(snn_dir / "portable" / "portable.json")!r}))
x = torch.from_numpy(np.load({str(tmp_path / "x.npy")!r}))
axis = meta['inputs'][0]['batch_axis'] or 0
state = [torch.zeros(x.shape[axis], *s['shape']) for s in meta['state']]
batched = torch.vmap(step, in_dims=(axis, None) + (0,) * len(state))
total = 0
for t in range({T}):
    y, *state = batched(x, torch.tensor(t), *state)
    total = total + y
np.save({str(tmp_path / "y.npy")!r}, (total / ({T} if meta['coding'] == 'rate' else 1)).numpy())
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    snn, _ = load_snn(snn_dir)
    sim = Simulator(snn)
    dec, _ = sim.decode(sim.run_chunk({snn.inputs[0]: x}, 0, T, {})[snn.outputs[0]], 0, T, None)
    dec = sample_rows(snn, snn.outputs[0], dec, lead=2)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), dec[-1].numpy(), atol=1e-4, rtol=1e-4)


def calibration_of(g, feeds: dict[str, np.ndarray], batch_size: int = 64):
    """The Calibration `snnconvert calibrate` would write for `g` on `feeds` (model layout), masked
    entries counted."""
    from snnconvert.calibrate.file import Calibration
    from snnconvert.calibrate.observe import calibrate
    from snnconvert.data.files import Dataset

    masked: dict[str, int] = {}
    sk = calibrate(g, Dataset(feeds, None, "mem"), batch_size=batch_size, masked=masked)
    return Calibration("h", sk, masked=masked)


def random_calibration(g, n: int = 256, seed: int = 0, batch_size: int = 64):
    """(calibration, x): n standard-normal samples of g's one input 'x', on its batch axis."""
    shape, a = list(g.values["x"].shape), g.batch_axis("x")
    shape = [n, *shape] if a is None else [*shape[:a], n, *shape[a + 1 :]]
    x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    return calibration_of(g, {"x": x}, batch_size), x


def converted(g, cal, passes: list[tuple[str, dict]], coding: str):
    """(graph, notes): `passes` run in order as a recipe would run them, then the final pass that
    labels domains and checks the coding."""
    from snnconvert.passes import PassContext, run_pass
    from snnconvert.passes.spikify import assign_domains

    ctx = PassContext(calibration=cal, coding=coding)
    for name, params in passes:
        g = run_pass(name, g, params, ctx)
    assign_domains(g, coding)
    return g, ctx.notes


def mlp_graph(sizes=(6, 5, 4), seed=0, relu_last=False):
    """Linear -> Relu -> Linear ... on a per-sample (sizes[0],) vector, fed as [N, sizes[0]]: the smallest
    graph with neurons between layers."""
    from snnconvert.ir.build import GraphBuilder

    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input("x", (sizes[0],))
    h = x
    for i, (a, c) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = b.const(f"w{i}", (rng.normal(size=(a, c)) / np.sqrt(a)).astype(np.float32))
        bias = b.const(f"b{i}", (0.1 * rng.normal(size=c)).astype(np.float32))
        h = b.node("Linear", [h, w, bias], name=f"fc{i}")
        if i < len(sizes) - 2 or relu_last:
            h = b.node("Relu", [h], name=f"relu{i}")
    return b.output(h)


def npz(path) -> dict[str, np.ndarray]:
    """Every array of an .npz file, read into memory (no pickles)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
