"""The coding is derived once (issue O item 4): the recipe's coding is checked against what each
pass makes when the recipe is read, and the final pass (assign_domains) labels every spike value
with it and refuses a neuron made for another coding, naming it; loading a saved graph checks the
same."""

from __future__ import annotations

import pytest
from helpers import converted, mlp_graph, random_calibration

from snnconvert.errors import GraphError, InputError
from snnconvert.ir.graph import Node
from snnconvert.ir.validate import validate
from snnconvert.passes import PASSES, PassContext, run_pass
from snnconvert.passes.recipe import parse_recipe
from snnconvert.passes.spikify import assign_domains


def test_a_rate_recipe_with_the_count_only_pass_is_refused_naming_the_pass():
    assert PASSES["spike_all"].codings == ("count",)
    with pytest.raises(InputError, match=r"r\.yaml: passes\[0\]\.spike_all: makes count-coded .*'rate'"):
        parse_recipe({"name": "r", "coding": "rate", "passes": ["spike_all"]}, "r.yaml")
    parse_recipe({"name": "r", "coding": "count", "passes": ["spike_all"]}, "r.yaml")  # accepted


@pytest.mark.parametrize("coding", ["rate", "count"])
def test_final_pass_labels_every_spike_value_with_the_graph_coding(coding):
    g = mlp_graph((6, 16, 4))
    cal, _ = random_calibration(g)
    s, _ = converted(g, cal, [("normalize", {}), ("relu_to_if", {})], coding)
    assert s.meta["coding"] == coding
    ifs = [n for n in s.nodes if n.op == "IF"]
    assert ifs and all(n.attrs.get("coding", "rate") == coding for n in ifs)
    spikes = [v for v in s.values.values() if v.domain == "spike"]
    assert spikes and all(v.coding == coding for v in spikes)
    assert all(v.coding is None for v in s.values.values() if v.domain == "analog")


def test_a_neuron_of_another_coding_is_named():
    g = mlp_graph((6, 16, 4))
    cal, _ = random_calibration(g)
    s = run_pass("spike_all", g, {"levels": 8}, PassContext(calibration=cal, coding="count"))
    neuron = next(n for n in s.nodes if n.op == "IF")
    with pytest.raises(
        GraphError, match=f"node '{neuron.name}' \\(IF\\) is count-coded in a rate-coded graph"
    ):
        assign_domains(s, "rate")


def test_loading_checks_the_coding_of_neurons_and_values():
    g = mlp_graph((6, 16, 4))
    cal, _ = random_calibration(g)
    s, _ = converted(g, cal, [("spike_all", {"levels": 8})], "count")
    validate(s)
    bad = s.copy()
    n = next(n for n in bad.nodes if n.op == "IF")
    bad.nodes[bad.nodes.index(n)] = Node(n.name, n.op, n.inputs, n.outputs, {**n.attrs, "coding": "rate"})
    with pytest.raises(GraphError, match=f"node '{n.name}' \\(IF\\) is rate-coded in a count-coded graph"):
        validate(bad, source="graph.json")
    bad = s.copy()
    bad.values[n.outputs[0]].coding = "rate"
    with pytest.raises(GraphError, match=f"value '{n.outputs[0]}' .* labelled rate-coded"):
        validate(bad, source="graph.json")
