"""Ops that run many samples through their reference as they are (`leading_axes`) must give what the
reference gives one sample at a time, and the rule must refuse the layouts where they would not."""

from __future__ import annotations

import pytest
import torch

from snnconvert.ir.registry import get, run_batched, run_op

N = 5
g = torch.Generator().manual_seed(0)


def _rand(*shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=g)


# (op, attrs, per-sample or shared inputs, batched flags): shapes as one sample sees them
CASES = [
    ("Linear", {}, [(7, 3), (3, 4), (4,)], [True, False, False]),
    ("MatMul", {}, [(2, 7, 3), (2, 3, 7)], [True, True]),
    ("MatMul", {}, [(2, 7, 3), (3, 5)], [True, False]),
    ("MatMul", {}, [(7, 3), (2, 3, 5)], [False, True]),  # the shared operand has fewer axes
    ("Add", {}, [(4, 6), (6,)], [True, False]),
    ("Add", {}, [(4, 1), (1, 6)], [True, True]),
    ("Mul", {}, [(4, 6), (4, 6)], [True, False]),
    ("Div", {}, [(4, 6), ()], [True, False]),
    ("Relu", {}, [(3, 4, 5)], [True]),
    ("Gelu", {"approximate": "none"}, [(3, 5)], [True]),
    ("Softmax", {"axis": -1}, [(2, 3, 5)], [True]),
    ("LayerNorm", {"axis": -1, "epsilon": 1e-5}, [(3, 5), (5,), (5,)], [True, False, False]),
]


@pytest.mark.parametrize("op,attrs,shapes,batched", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_many_samples_at_once_equal_one_at_a_time(op, attrs, shapes, batched):
    d = get(op)
    ranks = [len(s) for s in shapes]
    assert d.leading_axes is not None and d.leading_axes(d.with_defaults(attrs), ranks, batched)
    xs = [_rand(N, *s) if b else _rand(*s) for s, b in zip(shapes, batched, strict=True)]
    many = run_batched(op, attrs, xs, batched)
    for i in range(N):  # the reference, one sample at a time
        one = run_op(op, attrs, [x[i] if b else x for x, b in zip(xs, batched, strict=True)])
        for m, o in zip(many, one, strict=True):
            torch.testing.assert_close(m[i], o, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "op,attrs,ranks,batched",
    [
        ("Add", {}, [2, 1], [True, True]),  # [N,a,b] + [N,b] would line N up with a
        ("Add", {}, [1, 2], [True, False]),  # a shared operand with more axes than the sample
        ("MatMul", {}, [1, 2], [True, False]),  # a 1-D operand is a vector, not a row of samples
        ("Linear", {}, [2, 2], [True, True]),  # a run-time weight
        ("Softmax", {"axis": 1}, [3], [True]),  # a positive axis counts from the sample's first
        ("LayerNorm", {"axis": 1, "epsilon": 1e-5}, [2, 1, 1], [True, False, False]),
    ],
)
def test_layouts_the_rule_refuses(op, attrs, ranks, batched):
    d = get(op)
    assert not d.leading_axes(d.with_defaults(attrs), ranks, batched)


def test_a_refused_layout_still_runs_per_sample():
    """[N,4,6] + [N,6]: per sample, a row added to every row (vmap, not broadcasting)."""
    x, y = _rand(N, 4, 6), _rand(N, 6)
    (out,) = run_batched("Add", {}, [x, y], [True, True])
    torch.testing.assert_close(out, x + y[:, None, :])
