"""What one event is (issue M item 6): the most events a neuron sends in a step and whether they can
be negative, as the converted graph's neurons say, and as inspect reads it from each recipe."""

from __future__ import annotations

from helpers import converted, mlp_graph, random_calibration

from snnconvert.inspect import inspect_graph
from snnconvert.ir.ops_spiking import spike_format
from snnconvert.report.spikes import describe_spikes


def test_the_neurons_say_what_an_event_is():
    g = mlp_graph((6, 5, 4))
    cal, _ = random_calibration(g)
    assert spike_format(g) == {"levels_per_event": 0, "signed": False, "neuron_kinds": []}
    assert describe_spikes(spike_format(g)) == "no neurons"
    rate, _ = converted(g, cal, [("normalize", {}), ("relu_to_if", {})], "rate")
    assert spike_format(rate) == {"levels_per_event": 1, "signed": False, "neuron_kinds": ["IF"]}
    assert describe_spikes(spike_format(rate)) == "binary spikes"
    multi, _ = converted(g, cal, [("normalize", {}), ("relu_to_if", {"max_spikes_per_step": 3})], "rate")
    assert spike_format(multi)["levels_per_event"] == 3 and not spike_format(multi)["signed"]
    count, _ = converted(g, cal, [("spike_all", {"levels": 8, "max_spikes_per_step": 4})], "count")
    f = spike_format(count)
    assert f == {"levels_per_event": 4, "signed": True, "neuron_kinds": ["IF"]}  # count coding takes back
    assert describe_spikes(f) == "up to 4 events per step, signed"


def test_inspect_reads_it_from_each_recipe():
    rec = inspect_graph(mlp_graph())["recipes"]
    assert rec["mueller2021"]["levels_per_event"] == 1
    # its YAML: max_spikes_per_step 4 at L = 16, which tolerance may double up to max_levels 256
    zip_ = rec["spikezip_count"]
    assert (zip_["levels_per_event_min"], zip_["levels_per_event"]) == (4, 4 * 256 // 16)
    assert rec["spikformer_ssa"]["levels_per_event"] == rec["spikformer_ssa"]["levels_per_event_min"] == 1
