"""The per-sample references of the ops in ir/ops_elementwise, ops_reduce and ops_index work under
torch.vmap: vmap over 3 samples of shape [1, ...] equals the op run on each sample alone, and (for an
op that leaves axis 0 alone) the op run once on the 3 samples as one batch [3, ...]. Constant
operands (indices, weights) are shared, not vmapped. A vmap fallback warning (no batching rule: a
per-sample loop in disguise) fails the test."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from snnconvert.ir import ops_elementwise, ops_index, ops_reduce
from snnconvert.ir.registry import OPS, run_op

MODULES = {m.__name__ for m in (ops_elementwise, ops_index, ops_reduce)}
OURS = sorted(n for n, d in OPS.items() if d.run.__module__ in MODULES)
SAMPLES = 3


def _float(*shape):
    return lambda g: torch.randn(*shape, generator=g)


def _positive(*shape):
    return lambda g: torch.rand(*shape, generator=g) + 0.5


def _halves(*shape):
    return lambda g: torch.randint(-6, 7, shape, generator=g).float() / 2


def _bool(*shape):
    return lambda g: torch.rand(*shape, generator=g) < 0.5


def _int(lo, hi, *shape):
    return lambda g: torch.randint(lo, hi, shape, generator=g)


@dataclass
class Spec:
    """An op application: per-sample shapes of the vmapped inputs (drawn with a leading 1, the
    sample's batch-of-one axis) and shared constants, in input order."""

    op: str
    attrs: dict[str, Any]
    args: list  # ("x", draw of the per-sample shape without the leading 1) or ("c", tensor)
    batch_ok: bool = True  # the op leaves axis 0 alone: equal to one run on the [3, ...] batch
    id: str = ""
    tags: list = field(default_factory=list)


X = ("x", _float(4, 5))
Y = ("x", _float(1, 5))


def _specs() -> list[Spec]:
    s: list[Spec] = []
    for op in ("Abs", "Sin", "Cos", "Sign", "Floor", "Ceil", "Round", "Softplus"):
        s.append(Spec(op, {}, [("x", _halves(4, 5))]))
    s.append(Spec("Reciprocal", {}, [("x", _positive(4, 5))]))
    s.append(Spec("Log", {}, [("x", _positive(4, 5))]))
    s.append(Spec("Not", {}, [("x", _bool(4, 5))]))
    s.append(Spec("HardSigmoid", {"alpha": 0.2, "beta": 0.5}, [("x", _halves(4, 5))]))
    s.append(Spec("HardSwish", {}, [("x", _halves(4, 5))]))
    for op in ("Greater", "Less", "GreaterOrEqual", "LessOrEqual"):
        s.append(Spec(op, {}, [("x", _halves(4, 5)), ("c", torch.tensor(0.5))]))
    for op in ("Or", "Xor"):
        s.append(Spec(op, {}, [("x", _bool(4, 5)), ("x", _bool(1, 5))]))
    s.append(Spec("Mod", {"fmod": 0}, [("x", _int(-20, 20, 4, 5)), ("c", torch.tensor([3, -3, 4, -5, 7]))]))
    s.append(Spec("Mod", {"fmod": 1}, [X, ("c", torch.tensor(0.7))], id="Mod-fmod1"))
    s.append(Spec("Max", {}, [X, Y, ("c", torch.zeros(5))]))
    s.append(Spec("Min", {}, [X, Y]))
    for op in ops_reduce._REDUCTIONS:
        draw = _positive(3, 4, 5) if op in ("ReduceLogSum", "ReduceProd") else _float(3, 4, 5)
        s.append(Spec(op, {"axes": [1, 3], "keepdims": 1}, [("x", draw)]))
        s.append(Spec(op, {"axes": [2], "keepdims": 0}, [("x", draw)], id=f"{op}-keep0"))
        s.append(Spec(op, {"axes": [], "keepdims": 1}, [("x", draw)], id=f"{op}-no-axes"))
        s.append(
            Spec(op, {"axes": [0, 1, 2, 3], "keepdims": 1}, [("x", draw)], batch_ok=False, id=f"{op}-all")
        )
    for op in ("ArgMax", "ArgMin"):
        s.append(Spec(op, {"axis": 2, "keepdims": 0, "select_last_index": 1}, [("x", _int(0, 3, 4, 5))]))
        s.append(Spec(op, {"axis": 1, "keepdims": 1, "select_last_index": 0}, [X], id=f"{op}-first"))
    s.append(Spec("LogSoftmax", {"axis": 2}, [X]))
    s.append(
        Spec(
            "InstanceNorm",
            {"epsilon": 1e-5},
            [("x", _float(3, 4, 5)), ("c", torch.randn(3)), ("c", torch.randn(3))],
        )
    )
    s.append(
        Spec("Einsum", {"equation": "bhid,bhjd->bhij"}, [("x", _float(2, 4, 3)), ("x", _float(2, 5, 3))])
    )
    s.append(
        Spec(
            "Einsum",
            {"equation": "bid,jd->bij"},
            [("x", _float(4, 3)), ("c", torch.randn(6, 3))],
            id="Einsum-weight",
        )
    )
    s.append(Spec("Einsum", {"equation": "...ij->...ji"}, [X], id="Einsum-ellipsis"))
    s.append(
        Spec("Einsum", {"equation": "bi->i"}, [("x", _float(4))], batch_ok=False, id="Einsum-over-axis0")
    )
    for excl in (0, 1):
        for rev in (0, 1):
            s.append(
                Spec("CumSum", {"axis": 2, "exclusive": excl, "reverse": rev}, [X], id=f"CumSum-{excl}{rev}")
            )
    s.append(
        Spec("CumSum", {"axis": 0, "exclusive": 1, "reverse": 0}, [X], batch_ok=False, id="CumSum-axis0")
    )
    s.append(Spec("GatherElements", {"axis": 2}, [X, ("x", _int(-5, 5, 4, 3))]))
    s.append(
        Spec(
            "GatherElements",
            {"axis": 1},
            [X, ("c", torch.tensor([[[3, -1, 0, 2, 1]]]))],
            batch_ok=False,
            id="GatherElements-const",
        )
    )
    s.append(Spec("Pad", {"pads": [0, 1, 2, 0, 2, -1], "mode": "constant", "value": 0.5}, [X]))
    for mode in ("reflect", "edge", "wrap"):
        s.append(Spec("Pad", {"pads": [0, 2, 3, 0, 1, 2], "mode": mode, "value": 0.0}, [X], id=f"Pad-{mode}"))
    s.append(
        Spec(
            "Pad",
            {"pads": [1, 0, 0, 0, 0, 0], "mode": "edge", "value": 0.0},
            [X],
            batch_ok=False,
            id="Pad-axis0",
        )
    )
    s.append(Spec("Trilu", {"upper": 1, "k": 1}, [X]))
    s.append(Spec("Trilu", {"upper": 0, "k": -1}, [("x", _float(2, 4, 5))], id="Trilu-lower-4d"))
    s.append(Spec("Tile", {"repeats": [1, 2, 3]}, [X]))
    s.append(Spec("Tile", {"repeats": [2, 1, 1]}, [X], batch_ok=False, id="Tile-axis0"))
    rows = torch.tensor([[[0, 1], [0, 3]]])
    for red in ("none", "mul", "max", "min"):
        s.append(
            Spec(
                "ScatterND",
                {"reduction": red},
                [X, ("c", rows), ("x", _float(2, 5))],
                batch_ok=False,
                id=f"ScatterND-{red}",
            )
        )
    s.append(
        Spec(
            "ScatterND",
            {"reduction": "add"},
            [X, ("c", torch.tensor([[[0, 1, 1], [0, 1, 1]]])), ("x", _float(2))],
            batch_ok=False,
            id="ScatterND-add-repeated",
        )
    )
    s.append(
        Spec(
            "ScatterND",
            {"reduction": "none"},
            [X, ("c", rows), ("c", torch.ones(1, 2, 5))],
            batch_ok=False,
            id="ScatterND-const-updates",
        )
    )
    for sp in s:
        sp.id = sp.id or sp.op
    return s


SPECS = _specs()


def test_every_op_has_a_spec():
    assert set(OURS) - {s.op for s in SPECS} == set()
    assert len({s.id for s in SPECS}) == len(SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=[s.id for s in SPECS])
def test_reference_works_under_vmap(spec: Spec):
    g = torch.Generator().manual_seed(0)
    # per input: [3, 1, ...] samples (vmapped) or the shared constant
    args = [
        torch.stack([a[1](g).unsqueeze(0) for _ in range(SAMPLES)]) if a[0] == "x" else a[1]
        for a in spec.args
    ]
    batched = [a[0] == "x" for a in spec.args]
    in_dims = tuple(0 if b else None for b in batched)

    def per_sample(*xs):
        return run_op(spec.op, spec.attrs, list(xs))[0]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a vmap fallback ("performance drop") is a failure
        got = torch.vmap(per_sample, in_dims=in_dims)(*args)
    alone = torch.stack(
        [per_sample(*(a[i] if b else a for a, b in zip(args, batched, strict=True))) for i in range(SAMPLES)]
    )
    torch.testing.assert_close(got, alone, rtol=1e-6, atol=1e-6)
    if spec.batch_ok:  # the samples as one batch along their axis 0: the op never looks across it
        batch = per_sample(*(a.flatten(0, 1) if b else a for a, b in zip(args, batched, strict=True)))
        torch.testing.assert_close(got.reshape(batch.shape), batch, rtol=1e-6, atol=1e-6)


KINDS = {"mac", "add", "mul", "div", "exp", "sqrt", "cmp"}


@pytest.mark.parametrize("spec", SPECS, ids=[s.id for s in SPECS])
def test_cost_is_per_sample_counts_by_kind(spec: Spec):
    """The op count from per-sample shapes: known kinds, whole non-negative numbers."""
    from snnconvert.ir.registry import get, infer_shapes

    g = torch.Generator().manual_seed(0)
    d = get(spec.op)
    if d.cost is None:  # data movement: free
        return
    values = [a[1](g).unsqueeze(0) if a[0] == "x" else a[1] for a in spec.args]
    ins = [tuple(v.shape) for v in values]
    dtypes = [str(v.dtype).removeprefix("torch.") for v in values]
    consts = [None if a[0] == "x" else a[1].numpy() for a in spec.args]
    outs = [s for s, _ in infer_shapes(spec.op, spec.attrs, ins, dtypes, consts)]
    cost = d.cost(d.with_defaults(spec.attrs), ins, outs)
    assert set(cost) <= KINDS, cost
    assert all(isinstance(v, int) and v >= 0 for v in cost.values()), cost
