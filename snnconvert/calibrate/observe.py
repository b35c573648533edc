"""Run calibration data through the ANN reference and feed every activation into a sketch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from snnconvert.calibrate.sketch import QuantileSketch, SketchError
from snnconvert.data.files import Dataset
from snnconvert.errors import InputError
from snnconvert.ir.execute import Executor
from snnconvert.ir.graph import MASK_FLOOR, Graph
from snnconvert.ir.registry import broadcasts_leading, get, has_flag


def observed_values(g: Graph) -> list[str]:
    """Float activations a pass may normalise: every float node output except pure data moves (their
    outputs hold their inputs' numbers, so observing them again would only cost time; normalisation
    looks through them to the producing op)."""
    out = []
    for n in g.nodes:
        if has_flag(n.op, "moves_data", n.attrs):
            continue
        for o in n.outputs:
            if g.values[o].dtype.startswith("float"):
                out.append(o)
    return out


SHIFTED = "#input_minus_row_max"


def shifted_key(softmax_output: str) -> str:
    """Calibration key of a softmax's input minus its row maximum (what SI-exp will see)."""
    return softmax_output + SHIFTED


def calibrate(
    g: Graph,
    data: Dataset,
    samples: int | None = None,
    batch_size: int = 64,
    alpha: float = 0.005,
    progress: Callable[[int], None] | None = None,
    masked: dict[str, int] | None = None,
) -> dict[str, QuantileSketch]:
    """One sketch per observed value over the first `samples` samples of `data`; `masked`, if
    given, receives per value the number of masked entries seen (left out of its sketch)."""
    if samples is not None:
        if samples <= 0:
            raise InputError(f"--samples must be positive, got {samples}")
        if samples > data.n:
            raise InputError(
                f"{data.path}: --samples {samples} is larger than the {data.n} samples in the file"
            )
    if batch_size <= 0:
        raise InputError(f"--batch-size must be positive, got {batch_size}")
    values = observed_values(g)
    names = set(values)
    sketches = {n: QuantileSketch(alpha=alpha) for n in values}
    axes = {n: channel_axis(g, n) for n in values}  # (a walk back through producers: once, not per batch)
    # softmax inputs are also recorded shifted by their row max: the range a spiking softmax sees
    shifted: dict[str, list[tuple[str, int]]] = {}
    for n in g.nodes:
        if n.op == "Softmax" and n.inputs[0] not in g.initializers:
            key = shifted_key(n.outputs[0])
            rank = len(g.values[n.inputs[0]].shape)  # observed tensors are sample-major: one more axis
            shifted.setdefault(n.inputs[0], []).append((key, int(n.attrs.get("axis", -1)) % rank + 1))
            sketches[key] = QuantileSketch(alpha=alpha)
    ex = Executor(g)

    def observe(name: str, t: torch.Tensor) -> None:
        for key, axis in shifted.get(name, ()):
            t = t.detach()
            _update(key, name, t - t.amax(dim=axis, keepdim=True))
        if name not in names:
            return
        _update(name, name, t.detach())

    def _update(key: str, name: str, t: torch.Tensor) -> None:
        axis = axes.get(name) if key == name else None
        channel = None if axis is None else axis + 1  # observed tensors are sample-major
        if t.is_floating_point():
            hidden = t <= MASK_FLOOR
            if bool(hidden.any()):
                # masked entries (scores + finfo.min, where(mask, -inf, x)) hold no data to
                # calibrate; the rest are sketched
                if masked is not None and key == name:
                    masked[name] = masked.get(name, 0) + int(hidden.sum())
                t, channel = t[~hidden], None
        try:  # the sketch rejects NaN/Inf itself (cheaply, before touching its counts)
            sketches[key].update(t, channel_axis=channel)
        except SketchError:
            node = g.producer(name).name if g.producer(name) is not None else "?"
            raise InputError(
                f"{g.meta.get('source', 'model')}: activation '{name}' of node '{node}' becomes NaN/Inf "
                f"on {data.path} (the model overflows float32 or has non-finite weights)"
            ) from None

    for _start, feeds, _ in data.batches(batch_size, samples):
        ex.run(feeds, observe=observe)
        if progress is not None:
            progress(len(next(iter(feeds.values()))))
    return sketches


def channel_axis(g: Graph, name: str) -> int | None:
    """The axis of a value's channels, whose calibrated max |x| calibrate records one by one (and
    spike_all's per-channel thresholds follow): the axis the op that made it fixes (the registry's
    channel_axis: a convolution's or a pool's feature map [1, C, ...], whatever its rank), looked for
    back through ops that keep its shape and its channels (an activation, a neuron, a residual sum,
    a normalisation: their input 0); failing that, by rank: axis 1 of attention's [1, heads,
    queries, keys] (rank 4), the last axis for features [features] and token features [1, tokens,
    features]."""
    shape = g.values[name].shape
    if not shape:
        return None
    x = name
    for _ in range(len(g.nodes)):
        n = g.producer(x)
        if n is None or not n.inputs:
            break
        op = get(n.op)
        if op.channel_axis is not None:
            ranks = [
                np.ndim(g.initializers[i]) if i in g.initializers else len(g.values[i].shape)
                for i in n.inputs
            ]
            axis = op.channel_axis(op.with_defaults(n.attrs), ranks, len(shape))
            return axis if 0 <= axis < len(shape) else None
        x = n.inputs[0]
        keeps = (
            op.spiking or op.leading_axes is broadcasts_leading or has_flag(n.op, "normalization", n.attrs)
        )
        if not keeps or x in g.initializers or x not in g.values or g.values[x].shape != shape:
            break
    return 1 if len(shape) == 4 else len(shape) - 1


def nonzero_percentile(s: QuantileSketch, p: float) -> float:
    """p-th percentile of the non-zero values (SNN Toolbox's convention for ReLU outputs)."""
    n, z = s.count, s.zero_count
    if n - z <= 1:
        return float(s.max)
    neg = s.percentile(0.0) < 0
    if neg:  # signed tensor: zeros are not the dominant mass, use all values
        return float(s.percentile(p))
    # rank among non-zeros -> rank among all (zeros sort first when all values are >= 0)
    r = z + p / 100.0 * (n - z - 1)
    return float(s.percentile(100.0 * r / (n - 1)))


__all__ = ["calibrate", "channel_axis", "observed_values", "nonzero_percentile", "np"]
