"""The registry's op flags: the one place that knows what an op is to the other stages."""

from __future__ import annotations

import dataclasses

import pytest

import snnconvert.ir  # noqa: F401  (registers the ops)
from snnconvert.ir.registry import FLAGS, OPS, OpDef, has_flag

FIELDS = {f.name for f in dataclasses.fields(OpDef)}


def test_every_flag_is_a_field_of_the_op_definition():
    assert set(FLAGS) <= FIELDS


def test_an_unknown_flag_is_refused():
    with pytest.raises(ValueError, match="unknown op flag 'moves'"):
        has_flag("Reshape", "moves")


def test_flags_that_depend_on_attributes():
    assert has_flag("Pad", "keeps_spikes", {"pads": [1, 1]})  # constant 0 by default
    assert not has_flag("Pad", "keeps_spikes", {"pads": [1, 1], "value": 1.0})
    for mode in ("reflect", "edge", "wrap"):
        assert has_flag("Pad", "keeps_spikes", {"pads": [1, 1], "mode": mode, "value": 1.0})
    assert has_flag("Pad", "moves_data", {"pads": [1, 1], "value": 1.0})
    assert has_flag("Einsum", "synaptic", {"equation": "bi,ij->bj"})
    assert not has_flag("Einsum", "synaptic", {"equation": "...ij->...ji"})


def _all(flag: str) -> set[str]:
    attrs = {"equation": "ij,jk->ik", "pads": [0, 0]}
    return {op for op in OPS if has_flag(op, flag, attrs)}


def test_flags_agree_with_what_the_op_computes():
    # spikes pass only through ops affine in their data input; moves and conversions cost nothing
    for op in _all("keeps_spikes") | _all("scaling") | _all("accumulates_once") | _all("pool"):
        assert OPS[op].affine_in(frozenset({0})), op
    for op in _all("moves_data") | _all("converts"):
        assert OPS[op].cost is None, op
    for op in OPS:
        assert OPS[op].cost is not None or op in _all("moves_data") | _all("converts"), op
    assert _all("layer") <= _all("synaptic")
    assert _all("reorders") <= _all("moves_data")
    assert _all("spike_source") <= _all("activation")
    assert not _all("moves_data") & (_all("synaptic") | _all("normalization") | _all("spiking"))


def test_facts_the_stages_rely_on():
    assert {"Reshape", "Transpose", "Concat", "Split", "Gather", "Slice"} <= _all("moves_data")
    assert {"Add", "Sub", "Neg", "AvgPool", "GlobalAvgPool", "ReduceMean", "ReduceSum"} <= _all(
        "keeps_spikes"
    )
    assert _all("reorders") == {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze"}
    assert _all("scaling") == {"Mul", "Div"}
    assert {"Linear", "Conv", "MatMul", "Einsum"} == _all("synaptic")
    assert _all("layer") == {"Linear", "Conv"}
    assert _all("spike_source") == {"Relu"}
    assert {"Softmax", "LayerNorm"} <= _all("normalization")
    assert {"Cast"} == _all("converts")
    assert {"Equal", "Where", "Greater", "Less"} <= _all("selects")
