"""Data-movement ops of the IR. They cost nothing and are affine in their data input, so spikes pass
through them unchanged (flags moves_data, keeps_spikes). Shape-like arguments are attributes: one
sample's shapes, fixed at import."""

from __future__ import annotations

import torch

from snnconvert.ir.registry import Attr, OpDef, register, torch_dtype

INTS = (list, tuple)


def _data_only(s: frozenset[int]) -> bool:
    return s <= {0}


def _any(s: frozenset[int]) -> bool:
    return True


MOVE = {"moves_data": True, "keeps_spikes": True}
REORDER = {**MOVE, "reorders": True}  # every element kept once: a reshape or a permutation


def _reshape(a, x):
    return torch.reshape(x, list(a["shape"]))


def _expand(a, x):
    shape = list(a["shape"])  # the broadcast result, resolved at import
    xs = [1] * (len(shape) - x.dim()) + list(x.shape)
    return x.reshape(xs).expand(*shape)


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


def _gather_nd(a, data, idx):
    idx = idx.long()
    m = idx.shape[-1]
    if data.device.type != "meta":
        sizes = torch.tensor(data.shape[:m], dtype=torch.long, device=idx.device)
        idx = torch.where(idx < 0, idx + sizes, idx)
    return data[tuple(idx[..., k] for k in range(m))]


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
    axis = a["axis"] + x.dim() if a["axis"] < 0 else a["axis"]  # ONNX allows axis == rank
    if axis == 0:
        return x.reshape(1, -1)
    inner = 1
    for d in x.shape[axis:]:
        inner *= int(d)
    return x.reshape(-1, inner)


register(
    OpDef("Reshape", _reshape, attrs={"shape": Attr(INTS, required=True)}, affine_in=_data_only, **REORDER)
)
register(
    OpDef(
        "Transpose",
        lambda a, x: x.permute(*a["perm"]),
        attrs={"perm": Attr(INTS, required=True)},
        affine_in=_data_only,
        **REORDER,
    )
)
register(OpDef("Flatten", _flatten, attrs={"axis": Attr(int, 1)}, affine_in=_data_only, **REORDER))
register(
    OpDef(
        "Concat",
        lambda a, *xs: torch.cat(xs, dim=a["axis"]),
        attrs={"axis": Attr(int, required=True)},
        affine_in=_any,
        **MOVE,
        run_many=lambda a, *xs: torch.cat(xs, dim=a["axis"] % (xs[0].dim() - 1) + 1),
    )
)
register(
    OpDef(
        "Split",
        _split,
        attrs={"axis": Attr(int, 0), "split": Attr(INTS, required=True)},
        affine_in=_data_only,
        n_outputs=-1,
        **MOVE,
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
        **MOVE,
    )
)
register(OpDef("Gather", _gather, attrs={"axis": Attr(int, 0)}, affine_in=_data_only, **MOVE))
register(OpDef("GatherND", _gather_nd, affine_in=_data_only, doc="ONNX GatherND with batch_dims = 0", **MOVE))
register(
    OpDef("Unsqueeze", _unsqueeze, attrs={"axes": Attr(INTS, required=True)}, affine_in=_data_only, **REORDER)
)
register(
    OpDef("Squeeze", _squeeze, attrs={"axes": Attr(INTS, required=True)}, affine_in=_data_only, **REORDER)
)
register(OpDef("Expand", _expand, attrs={"shape": Attr(INTS, required=True)}, affine_in=_data_only, **MOVE))
register(
    OpDef(
        "Cast",
        lambda a, x: x.to(torch_dtype(a["to"])),
        attrs={"to": Attr(str, required=True)},
        affine_in=lambda s: False,
        converts=True,
    )
)
