"""Shared fixtures: tiny hand-built graphs, and the built-in example converted once per session."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from snnconvert.ir.build import GraphBuilder

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core: one thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # for the CLI subprocesses some tests start
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


def mlp_graph(sizes=(6, 5, 4), seed=0, relu_last=False):
    """Linear -> Relu -> Linear ... on a per-sample (sizes[0],) vector, fed as [N, sizes[0]]: the smallest
    graph with neurons between layers."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    x = b.input("x", (sizes[0],))
    h = x
    for i, (a, c) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = b.const(f"w{i}", (rng.normal(size=(a, c)) / np.sqrt(a)).astype(np.float32))
        bias = b.const(f"b{i}", (0.1 * rng.normal(size=c)).astype(np.float32))
        h = b.node("Linear", [h, w, bias], name=f"fc{i}")
        if i < len(sizes) - 2 or relu_last:
            h = b.node("Relu", [h], name=f"relu{i}")
    return b.output(h)


@pytest.fixture
def mlp():
    return mlp_graph()
