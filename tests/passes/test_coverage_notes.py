"""A recipe that converts nothing, or only some of what it is meant for, says so (issue L item 5)."""

from __future__ import annotations

import numpy as np

from snnconvert.api import coverage_notes
from snnconvert.ir.build import GraphBuilder
from snnconvert.passes.recipe import load_recipe


def _mlp(act: str, n: int = 2):
    b = GraphBuilder()
    h = b.input("x", (4,))
    for i in range(n):
        h = b.node("Linear", [h, b.const(f"w{i}", np.eye(4, dtype=np.float32))], name=f"fc{i}")
        h = b.node(act, [h], name=f"act{i}")
    return b.output(h)


def test_gelu_model_under_relu_recipe_names_the_recipe_that_applies():
    g = _mlp("Gelu")
    notes = coverage_notes(g, g, load_recipe("mueller2021"))
    assert len(notes) == 1
    assert "converted nothing" in notes[0] and "Gelu (x2)" in notes[0] and "spikezip_count" in notes[0]


def test_partial_conversion_counts_what_stayed_analog():
    ann = _mlp("Relu")
    snn = ann.copy()
    snn.nodes[1].op = "IF"  # one of the two ReLUs converted
    notes = coverage_notes(ann, snn, load_recipe("mueller2021"))
    assert notes == ["mueller2021: relu_to_if converted 1 of 2 Relu nodes; 1 stay analog"]


def test_full_conversion_is_silent():
    ann = _mlp("Relu")
    snn = ann.copy()
    for n in snn.nodes:
        if n.op == "Relu":
            n.op = "IF"
    assert coverage_notes(ann, snn, load_recipe("mueller2021")) == []
