"""Data-movement ops of the IR. They cost nothing and are affine in their data input, so spikes pass
through them unchanged. Shape-like arguments are attributes, fixed at import (batch axis = -1)."""

from __future__ import annotations

import torch

from snnconvert.ir.registry import Attr, OpDef, register, torch_dtype

INTS = (list, tuple)


def _data_only(s: frozenset[int]) -> bool:
    return s <= {0}


def _any(s: frozenset[int]) -> bool:
    return True


def _reshape(a, x):
    shape = list(a["shape"])
    # ONNX semantics: 0 copies the input dim (unless allowzero); the batch axis is -1 in the IR.
    for i, d in enumerate(shape):
        if d == 0:
            shape[i] = x.shape[i]
    return torch.reshape(x, shape)


def _expand(a, x):
    shape = list(a["shape"])
    nd = max(len(shape), x.dim())
    shape = [1] * (nd - len(shape)) + shape
    xs = [1] * (nd - x.dim()) + list(x.shape)
    # -1 marks the batch axis: keep the input's size there; ONNX Expand broadcasts both ways.
    target = [xs[i] if d == -1 else max(d, xs[i]) if xs[i] != 1 else d for i, d in enumerate(shape)]
    return x.expand(*target) if x.dim() == nd else x.reshape(xs).expand(*target)


def _slice(a, x):
    idx = [slice(None)] * x.dim()
    for st, en, ax, sp in zip(a["starts"], a["ends"], a["axes"], a["steps"], strict=True):
        ax = ax % x.dim()
        n = x.shape[ax]
        if sp < 0:
            # torch has no negative-step slicing: select the indices explicitly
            rng = list(range(*slice(st, en, sp).indices(n)))
            x = x.index_select(ax, torch.tensor(rng, dtype=torch.long, device=x.device))
        else:
            idx[ax] = slice(*slice(st, en, sp).indices(n))
    return x[tuple(idx)]


def _split(a, x):
    return tuple(torch.split(x, list(a["split"]), dim=a["axis"]))


def _gather(a, data, idx):
    axis = a["axis"] % data.dim()
    idx = idx.long()
    if data.device.type != "meta":
        idx = torch.where(idx < 0, idx + data.shape[axis], idx)
    flat = data.index_select(axis, idx.reshape(-1))
    return flat.reshape(data.shape[:axis] + idx.shape + data.shape[axis + 1 :])


def _unsqueeze(a, x):
    out_rank = x.dim() + len(a["axes"])
    for ax in sorted(d % out_rank for d in a["axes"]):
        x = x.unsqueeze(ax)
    return x


def _squeeze(a, x):
    axes = sorted((d % x.dim() for d in a["axes"]), reverse=True)
    for ax in axes:
        x = x.squeeze(ax)
    return x


def _flatten(a, x):
    axis = a["axis"] % x.dim() if x.dim() else 0
    if axis == 0:
        return x.reshape(1, -1)
    inner = 1
    for d in x.shape[axis:]:  # static per-sample dims; the batch stays symbolic under torch.export
        inner *= int(d)
    return x.reshape(-1, inner)


register(OpDef("Reshape", _reshape, attrs={"shape": Attr(INTS, required=True)}, affine_in=_data_only))
register(
    OpDef(
        "Transpose",
        lambda a, x: x.permute(*a["perm"]),
        attrs={"perm": Attr(INTS, required=True)},
        affine_in=_data_only,
    )
)
register(OpDef("Flatten", _flatten, attrs={"axis": Attr(int, 1)}, affine_in=_data_only))
register(
    OpDef(
        "Concat",
        lambda a, *xs: torch.cat(xs, dim=a["axis"]),
        attrs={"axis": Attr(int, required=True)},
        affine_in=_any,
    )
)
register(
    OpDef(
        "Split",
        _split,
        attrs={"axis": Attr(int, 0), "split": Attr(INTS, required=True)},
        affine_in=_data_only,
        n_outputs=-1,
    )
)
register(
    OpDef(
        "Slice",
        _slice,
        attrs={
            "starts": Attr(INTS, required=True),
            "ends": Attr(INTS, required=True),
            "axes": Attr(INTS, required=True),
            "steps": Attr(INTS, required=True),
        },
        affine_in=_data_only,
    )
)
register(OpDef("Gather", _gather, attrs={"axis": Attr(int, 0)}, affine_in=_data_only))
register(OpDef("Unsqueeze", _unsqueeze, attrs={"axes": Attr(INTS, required=True)}, affine_in=_data_only))
register(OpDef("Squeeze", _squeeze, attrs={"axes": Attr(INTS, required=True)}, affine_in=_data_only))
register(OpDef("Expand", _expand, attrs={"shape": Attr(INTS, required=True)}, affine_in=_data_only))
register(
    OpDef(
        "Cast",
        lambda a, x: x.to(torch_dtype(a["to"])),
        attrs={"to": Attr(str, required=True)},
        affine_in=lambda s: False,
    )
)
register(
    OpDef(
        "BatchBroadcast",
        lambda a, x, ref: x.expand((ref.shape[0],) + tuple(x.shape[1:])),
        affine_in=_data_only,
        doc="a constant [1, ...] repeated to the batch size of `ref` (e.g. a CLS token)",
    )
)
