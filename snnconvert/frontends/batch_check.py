"""Is the per-sample program the model? The IR is the model at batch 1; that is the model only if
samples do not interact (no statistic over the batch, no reshape that mixes samples). onnxruntime
runs the file on two samples at once and on each alone: each output must be the two single-sample
outputs stacked along one axis, which is also where that output keeps its samples."""

from __future__ import annotations

import numpy as np
import onnx

from snnconvert.errors import InputError, UnsupportedModelError
from snnconvert.ir.graph import Graph

_NOTE_NO_BATCH = (
    "onnxruntime cannot run the model on 2 samples at once ({why}); each sample runs alone, as the "
    "model was exported"
)


def _draw(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    if dtype.startswith("float"):
        return rng.standard_normal(shape).astype(dtype)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    return rng.integers(0, 2, shape).astype(dtype)  # ids, masks, positions: 0 and 1 are valid in any vocab


def _stack_axis(one: np.ndarray, two: np.ndarray, both: np.ndarray) -> tuple[bool, int | None]:
    """(consistent, axis): `both` is `one` and `two` stacked along `axis` (None: same for every sample)."""
    if one.shape != two.shape:
        return False, None

    def close(a: np.ndarray, b: np.ndarray) -> bool:
        if a.shape != b.shape:
            return False
        if not np.issubdtype(a.dtype, np.floating):
            return bool(np.array_equal(a, b))
        scale = float(np.nanmax(np.abs(b), initial=0.0)) if np.isfinite(b).any() else 1.0
        return bool(np.allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, scale), equal_nan=True))

    for k in range(one.ndim):
        if both.shape[k] == 2 * one.shape[k] and close(both, np.concatenate([one, two], axis=k)):
            return True, k if one.shape[k] == 1 else None
    if both.shape == (2, *one.shape) and close(both, np.stack([one, two])):
        return True, None  # the batch-of-one axis was squeezed away: samples on a new leading axis
    if both.shape == one.shape and close(both, one) and close(both, two):
        return True, None
    return False, None


def output_batch_axes(
    model: onnx.ModelProto, g: Graph, onnx_outputs: list[str], source: str, runner
) -> tuple[dict[str, int | None], str | None]:
    """{IR output: its batch-of-one axis or None} and a note; UnsupportedModelError naming the first
    node whose output mixes samples. `runner` is an OrtRunner that exposes the model's outputs."""

    rng = np.random.default_rng(0)
    axes = g.meta["batch_axes"]
    one, two = ({n: _draw(rng, g.values[n].shape, g.values[n].dtype) for n in g.inputs} for _ in range(2))
    both = {n: np.concatenate([one[n], two[n]], axis=axes[n]) for n in g.inputs}
    names = list(dict.fromkeys(onnx_outputs))
    ir_name = dict(zip(onnx_outputs, g.outputs, strict=True))
    try:
        y2 = runner.run(both, "running the model on 2 samples", names)
    except InputError as e:
        why = str(e).split(" failed: ", 1)[-1][:160]
        return {ir_name[o]: g.batch_axis(ir_name[o]) for o in names}, _NOTE_NO_BATCH.format(why=why)
    y1 = runner.run(one, "running the model on one sample", names)
    y1b = runner.run(two, "running the model on one sample", names)
    out: dict[str, int | None] = {}
    for o in names:
        ok, k = _stack_axis(y1[o], y1b[o], y2[o])
        if not ok:
            raise UnsupportedModelError(_mixing_message(model, one, two, both, o, source))
        out[ir_name[o]] = k
    return out, None


def _mixing_message(model, one, two, both, output: str, source: str) -> str:
    """Name the first node whose output for 2 samples is not its outputs for each sample stacked."""
    from snnconvert.frontends.ort import _classify, ort_values

    dynamic, _ = _classify(model, set(one))  # shape arithmetic differs with the batch size by design
    values = [o for n in model.graph.node for o in n.output if o in dynamic]
    try:
        v1 = ort_values(model, one, values, source, "locating")
        v1b = ort_values(model, two, values, source, "locating")
        v2 = ort_values(model, both, values, source, "locating")
    except InputError:
        v1 = v1b = v2 = {}
    for n in model.graph.node:
        for o in n.output:
            if o in v2 and not _stack_axis(v1[o], v1b[o], v2[o])[0]:
                return (
                    f"{source}: node '{n.name or o}' ({n.op_type}) mixes samples: on 2 samples at once its "
                    "output is not its outputs for each sample stacked (snnconvert converts models that treat "
                    "samples independently; if the samples are not on the axis taken, "
                    f"{_axes_said(one)}, give --batch-axis NAME=AXIS)"
                )
    return (
        f"{source}: output '{output}' mixes samples: on 2 samples at once it is not the per-sample outputs "
        f"stacked (if the samples are not on the axis taken, {_axes_said(one)}, give --batch-axis NAME=AXIS)"
    )


def _axes_said(one: dict[str, np.ndarray]) -> str:
    return "the size-1 axis of " + ", ".join(f"{k} {list(v.shape)}" for k, v in one.items())
