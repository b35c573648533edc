"""The portable SNN: one timestep as a torch.export program with the state as explicit inputs and
outputs, so it runs with plain PyTorch and no snnconvert installed.

    step(x, t, *state) -> (y_t, *new_state)

`t` is the number of steps already run (0 at the start), every state tensor starts at zero
(shapes in portable.json), and y_t is the output's increment at this step: its running mean
(rate coding) or running total (count coding) is the SNN's output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from snnconvert.atomic import write_json
from snnconvert.ir.graph import Graph
from snnconvert.ir.registry import torch_dtype
from snnconvert.sim.simulator import Simulator

STEP_FILE = "snn_step.pt2"
META_FILE = "portable.json"


class PortableExportError(Exception):
    """torch.export could not trace the one-step module (the SNN directory is still valid)."""


class StepModule(torch.nn.Module):
    """Simulator.run_chunk with one step and the state dict flattened into a fixed key order."""

    def __init__(self, g: Graph, keys: list[str], analog_mode: str):
        super().__init__()
        self.sim = Simulator(g, analog_mode=analog_mode)
        self.keys = keys
        self.input_names = list(g.inputs)
        self.out = g.outputs[0]

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n_in = len(self.input_names)
        feeds = dict(zip(self.input_names, args[:n_in], strict=True))
        t = args[n_in]
        state = dict(zip(self.keys, args[n_in + 1 :], strict=True))
        outs = self.sim.run_chunk(feeds, t.to(torch.float32), 1, state)
        sig = outs[self.out]
        y = sig.data if sig.static else sig.data[0]
        if sig.static and self.sim.coding == "count":
            y = y * (t == 0).to(y.dtype)
        return (y, *[state[k] for k in self.keys])


def state_layout(g: Graph, analog_mode: str) -> list[tuple[str, tuple[int, ...], str]]:
    """(key, per-sample shape, dtype) of every state tensor, found by running one step at batch 2."""
    sim = Simulator(g, analog_mode=analog_mode)
    feeds = {
        k: torch.zeros((2,) + tuple(g.values[k].shape[1:]), dtype=torch_dtype(g.values[k].dtype))
        for k in g.inputs
    }
    state: dict[str, torch.Tensor] = {}
    sim.run_chunk(feeds, 0, 1, state)
    return [(k, tuple(v.shape[1:]), str(v.dtype).replace("torch.", "")) for k, v in sorted(state.items())]


def export_portable(g: Graph, directory: str | Path) -> dict[str, Any]:
    """Write portable/snn_step.pt2 and portable/portable.json into an SNN directory."""
    mode = g.meta.get("analog_mode", "mean")
    layout = state_layout(g, mode)
    keys = [k for k, _, _ in layout]
    mod = StepModule(g, keys, mode).eval()
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    xs = tuple(
        torch.zeros((2,) + tuple(g.values[k].shape[1:]), dtype=torch_dtype(g.values[k].dtype))
        for k in g.inputs
    )
    st = tuple(torch.zeros((2,) + shp) for _, shp, _ in layout)
    args = (*xs, torch.tensor(0), *st)
    dyn = tuple({0: batch} for _ in xs) + (None,) + tuple({0: batch} for _ in st)
    try:
        ep = torch.export.export(mod, args, dynamic_shapes=(dyn,), strict=False)
    except Exception as e:  # torch.export raises many types; the SNN itself is unaffected
        raise PortableExportError(str(e).splitlines()[0][:160] if str(e) else type(e).__name__) from e
    d = Path(directory) / "portable"
    d.mkdir(exist_ok=True)
    torch.export.save(ep, str(d / STEP_FILE))
    meta = {
        "format": "snnconvert-portable/1",
        "inputs": [
            {"name": k, "shape": list(g.values[k].shape), "dtype": g.values[k].dtype} for k in g.inputs
        ],
        "output": {"name": g.outputs[0], "shape": list(g.values[g.outputs[0]].shape)},
        "state": [{"key": k, "shape": list(s), "dtype": dt} for k, s, dt in layout],
        "coding": g.meta.get("coding", "rate"),
        "decode": "mean of the per-step outputs"
        if g.meta.get("coding", "rate") == "rate"
        else "sum of the per-step outputs",
        "timesteps": g.meta.get("timesteps", 50),
        "usage": "step(*inputs, t, *state) -> (y_t, *state); t = steps already run; state starts at zeros",
    }
    write_json(d / META_FILE, meta)
    return meta
