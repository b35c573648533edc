"""Shared fixtures: tiny hand-built graphs (helpers.mlp_graph: test modules import it from helpers,
since `conftest` names a different module in tests/robustness)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from helpers import mlp_graph

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core: one thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # for the CLI subprocesses some tests start
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def mlp():
    return mlp_graph()
