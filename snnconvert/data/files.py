"""Reading data files: .npz whose keys are the model's input names (or `x` for a single-input model)
and `y` for labels. Every rejection names the file and the key (and the first bad sample)."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from snnconvert.errors import InputError
from snnconvert.ir.execute import expected_layout, to_sample_major
from snnconvert.ir.graph import Graph


@dataclass
class Dataset:
    inputs: dict[str, np.ndarray]  # by graph input name, in model layout
    labels: np.ndarray | None
    path: str
    axes: dict[str, int] = field(default_factory=dict)  # where each input holds its samples (default 0)

    @property
    def n(self) -> int:
        k, v = next(iter(self.inputs.items()))
        return int(v.shape[self.axes.get(k, 0)])

    def batches(self, batch_size: int, limit: int | None = None):
        """Yield (start, inputs, labels) slices in order, each input sliced along its batch axis."""
        n = self.n if limit is None else min(limit, self.n)
        for s in range(0, n, batch_size):
            e = min(n, s + batch_size)
            yield (
                s,
                {k: np.take(v, np.arange(s, e), axis=self.axes.get(k, 0)) for k, v in self.inputs.items()},
                None if self.labels is None else self.labels[s:e],
            )


def load_dataset(path: str | Path, g: Graph, require_labels: bool = False) -> Dataset:
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not an .npz data file")
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        z = np.load(p, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(
            f"{p}: not a readable .npz file ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise InputError(f"{p}: expected an .npz archive with named arrays, got a single array")
    with z:
        try:
            arrays = {k: z[k] for k in z.files}
        except ValueError as e:
            raise InputError(
                f"{p}: cannot read arrays ({str(e).splitlines()[0]}); object arrays are refused"
            ) from None
    inputs: dict[str, np.ndarray] = {}
    axes: dict[str, int] = {}
    for name in g.inputs:
        key = name if name in arrays else ("x" if len(g.inputs) == 1 and "x" in arrays else None)
        if key is None:
            want = f"'{name}'" + (" (or 'x')" if len(g.inputs) == 1 and name != "x" else "")
            raise InputError(f"{p}: missing key {want} for model input '{name}'; file has {sorted(arrays)}")
        a = arrays[key]
        v = g.values[name]
        ax = g.batch_axis(name)
        axes[name] = 0 if ax is None else ax
        try:
            to_sample_major(g, name, torch.empty(a.shape, device="meta"))
        except InputError:
            raise InputError(
                f"{p}: key '{key}' has shape {list(a.shape)}, model input '{name}' expects "
                f"{expected_layout(g, name)} (N samples on axis {axes[name]})"
            ) from None
        want_float = v.dtype.startswith("float")
        if want_float and not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise InputError(f"{p}: key '{key}' has dtype {a.dtype}, expected a numeric array")
        if not want_float and not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
            raise InputError(f"{p}: key '{key}' has dtype {a.dtype}, model input '{name}' expects {v.dtype}")
        if np.issubdtype(a.dtype, np.floating):
            rows = np.moveaxis(a, axes[name], 0)
            bad = ~np.isfinite(rows.reshape(len(rows), -1)).all(axis=1) if len(rows) else np.zeros(0, bool)
            if bad.any():
                i = int(np.argmax(bad))
                kind = "NaN" if np.isnan(rows[i]).any() else "Inf"
                raise InputError(f"{p}: key '{key}' contains {kind} (first at sample {i})")
        inputs[name] = a.astype(v.dtype, copy=False)
    ns = {k: int(a.shape[axes[k]]) for k, a in inputs.items()}
    if len(set(ns.values())) != 1:
        raise InputError(f"{p}: inputs have different sample counts {ns}")
    n = next(iter(ns.values()))
    if n == 0:
        raise InputError(f"{p}: zero samples")
    labels = None
    if "y" in arrays:
        y = arrays["y"]
        if y.ndim != 1 or len(y) != n:
            raise InputError(f"{p}: key 'y' has shape {list(y.shape)}, expected [{n}] (one label per sample)")
        if not np.issubdtype(y.dtype, np.integer):
            raise InputError(f"{p}: key 'y' has dtype {y.dtype}, expected integer class labels")
        labels = y.astype(np.int64)
    elif require_labels:
        raise InputError(f"{p}: no 'y' key (labels) but labels are required here")
    return Dataset(inputs, labels, str(p), axes)
