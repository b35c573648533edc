"""Indexing and data-movement ops beyond ops_shape: CumSum, GatherElements, Pad, Trilu, Tile, ScatterND.

Shape-like arguments (axes, pads, repeats, k) are attributes fixed at import; index tensors are
constant (or run-time) int64 inputs whose values never change an output shape. Each `run` is a
per-sample torch reference that works unchanged under torch.vmap. All but CumSum move data
(moves_data); all keep spikes (Pad only when it copies events or pads zeros).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from snnconvert.ir.ops_math import _first_only
from snnconvert.ir.registry import Attr, OpDef, numel, register

INTS = (list, tuple)
MOVE = {"moves_data": True, "keeps_spikes": True}


# -- CumSum ------------------------------------------------------------------------------------------------
def _cumsum(a, x):
    ax = a["axis"]
    if a["reverse"]:
        x = torch.flip(x, (ax,))
    y = torch.cumsum(x, ax, dtype=x.dtype)
    if a["exclusive"]:  # shift by one: y[i] = sum of x[:i]
        n = x.shape[ax]
        y = torch.cat([torch.zeros_like(y.narrow(ax, 0, 1)), y.narrow(ax, 0, n - 1)], dim=ax)
    return torch.flip(y, (ax,)) if a["reverse"] else y


# running sums of spike trains keep spikes; not accumulates_once: an event reaches every later output,
# which the energy count's unit-weight response counts
register(
    OpDef(
        "CumSum",
        _cumsum,
        attrs={"axis": Attr(int, required=True), "exclusive": Attr(int, 0), "reverse": Attr(int, 0)},
        cost=lambda a, ins, outs: {"add": numel(outs[0])},
        affine_in=_first_only,
        keeps_spikes=True,
        doc="running sum along `axis` (exclusive: without the element itself; reverse: from the end)",
    )
)


# -- GatherElements ----------------------------------------------------------------------------------------
def _gather_elements(a, data, idx):
    ax = a["axis"]
    idx = idx.long()
    idx = torch.where(idx < 0, idx + data.shape[ax], idx)
    return torch.gather(data, ax, idx)


register(
    OpDef(
        "GatherElements",
        _gather_elements,
        attrs={"axis": Attr(int, required=True)},
        affine_in=_first_only,
        **MOVE,
        doc="out[i][j][k] = data[idx[i][j][k]][j][k] along `axis` (output shaped like idx)",
    )
)


# -- Pad ---------------------------------------------------------------------------------------------------
PAD_MODES = ("constant", "reflect", "edge", "wrap")


def _source_index(i: int, n: int, mode: str) -> int:
    """Which input position output position i (in input coordinates, may be < 0 or >= n) copies."""
    if mode == "edge":
        return min(max(i, 0), n - 1)
    if mode == "wrap":
        return i % n
    if n == 1:  # reflect
        return 0
    period = 2 * (n - 1)
    i %= period
    return i if i < n else period - i


def _pad(a, x):
    pads, rank = list(a["pads"]), x.dim()
    begins, ends = pads[:rank], pads[rank:]
    if a["mode"] == "constant":
        flat: list[int] = []  # torch orders (begin, end) pairs from the last axis backwards
        for ax in reversed(range(rank)):
            flat += [begins[ax], ends[ax]]
        while flat and flat[-2:] == [0, 0]:
            flat = flat[:-2]
        if not flat:
            return x
        value = a["value"] if x.is_floating_point() else int(a["value"])
        return F.pad(x, tuple(flat), mode="constant", value=value)
    for ax in range(rank):
        if begins[ax] == 0 and ends[ax] == 0:
            continue
        n = x.shape[ax]
        src = [_source_index(i, n, a["mode"]) for i in range(-begins[ax], n + ends[ax])]
        x = x.index_select(ax, torch.tensor(src, dtype=torch.long, device=x.device))
    return x


def _pad_keeps_spikes(a) -> bool:
    """Reflect, edge and wrap copy events; a constant pads with no events only when it is 0 (another
    value adds analog ones)."""
    return a["mode"] != "constant" or float(a["value"]) == 0.0


register(
    OpDef(
        "Pad",
        _pad,
        attrs={
            "pads": Attr(INTS, required=True),
            "mode": Attr(str, "constant"),
            "value": Attr((int, float), 0.0),
        },
        affine_in=_first_only,
        moves_data=True,
        keeps_spikes=_pad_keeps_spikes,
        doc="ONNX Pad: pads = begins of every axis, then ends (negative crops); mode constant, reflect, "
        "edge or wrap",
    )
)


# -- Trilu, Tile -------------------------------------------------------------------------------------------
# a mask: entries kept or zeroed
register(
    OpDef(
        "Trilu",
        lambda a, x: torch.triu(x, a["k"]) if a["upper"] else torch.tril(x, a["k"]),
        attrs={"upper": Attr(int, 1), "k": Attr(int, 0)},
        affine_in=_first_only,
        **MOVE,
        doc="keeps the upper (or lower) triangle of the last two axes from diagonal k, zeroes the rest",
    )
)
register(
    OpDef(
        "Tile",
        lambda a, x: x.repeat(*a["repeats"]),
        attrs={"repeats": Attr(INTS, required=True)},
        affine_in=_first_only,
        **MOVE,
        doc="repeats the input `repeats[i]` times along axis i",
    )
)


# -- ScatterND ---------------------------------------------------------------------------------------------
def _scatter_nd(a, data, idx, upd):
    k = idx.shape[-1]
    rest = tuple(data.shape[k:])
    strides, s = [], 1
    for d in reversed(data.shape[:k]):
        strides.insert(0, s)
        s *= int(d)
    flat = (idx.long() * torch.tensor(strides, dtype=torch.long, device=idx.device)).sum(-1).reshape(-1)
    rows = data.reshape((s,) + rest)
    new = upd.reshape((flat.shape[0],) + rest)
    red = a["reduction"]
    if red == "add":
        out = rows.index_add(0, flat, new)
    else:
        if red != "none":  # indices are distinct (the frontend checks): combine with the current rows
            cur = rows.index_select(0, flat)
            new = {"mul": torch.mul, "max": torch.maximum, "min": torch.minimum}[red](cur, new)
        out = rows.index_copy(0, flat, new)
    return out.reshape(data.shape)


# keeps spikes when data and updates both spike (keeps_spikes asks that of every run-time input)
register(
    OpDef(
        "ScatterND",
        _scatter_nd,
        attrs={"reduction": Attr(str, "none")},
        affine_in=lambda s: 1 not in s,
        **MOVE,
        doc="data with the slices at `indices` (constant, non-negative, distinct unless reduction=add) "
        "replaced by (or combined with) updates; inputs data, indices, updates",
    )
)
