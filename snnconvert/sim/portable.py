"""The portable SNN: one timestep as a torch.export program with the state as explicit inputs and
outputs, so it runs with plain PyTorch and no snnconvert installed.

    step(x, t, *state) -> (y_t, *new_state)

for ONE sample: x is the sample without its batch axis, every state tensor starts at zero (shapes
in portable.json), `t` is the number of steps already run (0 at the start), and y_t is the
output's increment at this step: its running mean (rate coding) or running total (count coding)
is the SNN's output. torch.vmap(step) runs a batch. One sample because torch.vmap's rules for
several ops (cat, layer_norm) read the batch size as a number, which would fix it in the trace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from snnconvert.atomic import write_json
from snnconvert.ir.execute import model_shape, sample_rows
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
        g = self.sim.g
        feeds = {  # one sample -> a model-layout batch of one
            k: x.unsqueeze(g.batch_axis(k) or 0) for k, x in zip(self.input_names, args[:n_in], strict=True)
        }
        t = args[n_in]
        state = {k: v.unsqueeze(0) for k, v in zip(self.keys, args[n_in + 1 :], strict=True)}
        # advance, not run_chunk: a grad-mode switch inside the trace would become a set_grad
        # subgraph that costs a quarter of the export and of the save of a ViT-Base step
        outs = self.sim.advance(feeds, t.to(torch.float32), 1, state)
        sig = outs[self.out]
        y = sig.data if sig.static else sig.data[0]
        if sig.static and self.sim.coding == "count":
            y = y * (t == 0).to(y.dtype)
        return (sample_rows(g, self.out, y)[0], *[state[k][0] for k in self.keys])


def _model_zeros(g: Graph, name: str, batch: int) -> torch.Tensor:
    """A model-layout input of `batch` samples."""
    return torch.zeros(model_shape(g, name, batch), dtype=torch_dtype(g.values[name].dtype))


def state_layout(g: Graph, analog_mode: str) -> list[tuple[str, tuple[int, ...], str]]:
    """(key, per-sample shape, dtype) of every state tensor, found by running one step on meta
    tensors (shapes only: a ViT-Base step would otherwise cost seconds), on one real sample if an
    op cannot run on meta."""
    for device in ("meta", "cpu"):
        sim = Simulator(g, device=device, analog_mode=analog_mode)
        feeds = {k: _model_zeros(g, k, 1).to(device) for k in g.inputs}
        state: dict[str, torch.Tensor] = {}
        try:
            sim.run_chunk(feeds, 0, 1, state)
        except Exception:
            if device == "cpu":
                raise
            continue
        return [(k, tuple(v.shape[1:]), str(v.dtype).replace("torch.", "")) for k, v in sorted(state.items())]
    raise AssertionError("unreachable")


def export_portable(g: Graph, directory: str | Path) -> dict[str, Any]:
    """Write portable/snn_step.pt2 and portable/portable.json into an SNN directory."""
    mode = g.meta.get("analog_mode", "mean")
    layout = state_layout(g, mode)
    keys = [k for k, _, _ in layout]
    mod = StepModule(g, keys, mode).eval()
    # One sample, shapes fixed: torch.vmap's rules for several ops (cat, layer_norm) read the
    # batch size as a number, so a dynamic batch cannot be traced through them; a user vectorises
    # the one-sample program with torch.vmap (README), which runs it on any batch.
    xs = tuple(_model_zeros(g, k, 1).squeeze(g.batch_axis(k) or 0) for k in g.inputs)
    st = tuple(torch.zeros(shp) for _, shp, _ in layout)
    args = (*xs, torch.tensor(0), *st)
    try:
        ep = torch.export.export(mod, args, strict=False)
    except Exception as e:  # torch.export raises many types; the SNN itself is unaffected
        raise PortableExportError(str(e).splitlines()[0][:160] if str(e) else type(e).__name__) from e
    d = Path(directory) / "portable"
    d.mkdir(exist_ok=True)
    torch.export.save(ep, str(d / STEP_FILE))
    meta = {
        "format": "snnconvert-portable/1",
        "inputs": [
            {
                "name": k,
                "shape": list(g.values[k].shape),
                "batch_axis": g.batch_axis(k),
                "dtype": g.values[k].dtype,
            }
            for k in g.inputs
        ],
        "output": {
            "name": g.outputs[0],
            "shape": list(g.values[g.outputs[0]].shape),
            "batch_axis": g.batch_axis(g.outputs[0]),
        },
        "state": [{"key": k, "shape": list(s), "dtype": dt} for k, s, dt in layout],
        "coding": g.meta.get("coding", "rate"),
        "decode": "mean of the per-step outputs"
        if g.meta.get("coding", "rate") == "rate"
        else "sum of the per-step outputs",
        "timesteps": g.meta.get("timesteps", 50),
        "usage": "step(*inputs, t, *state) -> (y_t, *state) for ONE sample (each input without its batch "
        "axis); t = steps already run; state starts at zeros; torch.vmap(step, in_dims=(batch axis of each "
        "input..., None, 0, ...)) runs a batch",
    }
    write_json(d / META_FILE, meta)
    return meta
