"""IR: save/load round trip without pickle, validation errors that name the node, op references
against numpy, shape inference and MAC counts against closed forms."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import mlp_graph

from snnconvert.errors import GraphError, InputError
from snnconvert.ir.build import GraphBuilder
from snnconvert.ir.cost import node_cost
from snnconvert.ir.execute import run_graph
from snnconvert.ir.registry import OPS, OpDef, infer_shapes, run_op
from snnconvert.ir.serialize import content_hash, load_graph, save_graph
from snnconvert.ir.validate import validate


def test_round_trip(tmp_path):
    g = mlp_graph()
    save_graph(g, tmp_path)
    h = load_graph(tmp_path)
    assert [n.to_json() for n in h.nodes] == [n.to_json() for n in g.nodes]
    assert content_hash(h) == content_hash(g)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    torch.testing.assert_close(run_graph(h, {"x": x})[h.outputs[0]], run_graph(g, {"x": x})[g.outputs[0]])
    with np.load(tmp_path / "weights.npz", allow_pickle=False) as z:  # no object arrays inside
        assert all(z[k].dtype != object for k in z.files)


def test_hash_changes_with_weights(tmp_path):
    g = mlp_graph()
    h = mlp_graph(seed=1)
    assert content_hash(g) != content_hash(h)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda j: j["nodes"][0].__setitem__("op", "Frobnicate"), "node 'fc0' .*unknown op"),
        (
            lambda j: j["nodes"][1].__setitem__("inputs", ["nowhere"]),
            "node 'relu0'.*'nowhere' is not defined",
        ),
        (lambda j: j["values"][2].__setitem__("shape", [7]), "node 'relu0'.*declared \\[7\\]"),
        (
            lambda j: j["values"][2].__setitem__("shape", [-1, 7]),
            "'relu0' has a batch axis .*older snnconvert",
        ),
        (lambda j: j["nodes"][0]["attrs"].__setitem__("bogus", 1), "node 'fc0'.*unknown attribute"),
        (lambda j: j.__setitem__("outputs", []), "no outputs"),
        (lambda j: j.__setitem__("format", "other"), "not an snnconvert IR file"),
    ],
)
def test_tampered_graph_is_rejected_naming_the_node(tmp_path, mutate, match):
    save_graph(mlp_graph(), tmp_path)
    j = json.loads((tmp_path / "graph.json").read_text())
    mutate(j)
    (tmp_path / "graph.json").write_text(json.dumps(j))
    with pytest.raises((GraphError, InputError), match=match):
        load_graph(tmp_path)


def test_missing_files(tmp_path):
    with pytest.raises(InputError, match="graph.json: missing"):
        load_graph(tmp_path)
    save_graph(mlp_graph(), tmp_path)
    (tmp_path / "weights.npz").write_bytes(b"garbage")
    with pytest.raises(InputError, match="weights.npz: cannot read"):
        load_graph(tmp_path)


def test_op_references_against_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 8)).astype(np.float32)
    s, b = rng.normal(size=8).astype(np.float32), rng.normal(size=8).astype(np.float32)
    ln = run_op(
        "LayerNorm",
        {"axis": -1, "epsilon": 1e-5},
        [torch.from_numpy(x), torch.from_numpy(s), torch.from_numpy(b)],
    )[0]
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(ln.numpy(), (x - mu) / np.sqrt(var + 1e-5) * s + b, atol=1e-5)
    sm = run_op("Softmax", {"axis": -1}, [torch.from_numpy(x)])[0].numpy()
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(sm, e / e.sum(-1, keepdims=True), atol=1e-6)
    th = torch.tensor(0.5)
    ref = run_op("IF", {"coding": "count", "lo": -2.0, "hi": 3.0}, [torch.from_numpy(x), th])[0].numpy()
    np.testing.assert_allclose(ref, 0.5 * np.clip(np.round(x / 0.5), -2, 3))
    ref = run_op("IF", {"coding": "rate"}, [torch.from_numpy(x), th])[0].numpy()
    np.testing.assert_allclose(ref, np.clip(x, 0, 0.5))


def test_shape_inference_gives_per_sample_shapes_and_rejects_unvectorisable_ops(monkeypatch):
    """Shapes are one sample's: no batch axis in them, so a per-sample op may move any axis (even
    the batch-of-one axis an export keeps); an op whose reference cannot run under vmap fails at
    add_node, naming the node."""
    ((shape, dt),) = infer_shapes("Transpose", {"perm": [1, 0]}, [(3, 4)], ["float32"], [None])
    assert shape == (4, 3) and dt == "float32"
    ((shape, _),) = infer_shapes("Transpose", {"perm": [1, 0, 2]}, [(1, 3, 4)], ["float32"], [None])
    assert shape == (3, 1, 4)
    b = GraphBuilder()
    x = b.input("x", (1, 3, 4), batch_axis=0)
    t = b.node("Transpose", [x], {"perm": [1, 0, 2]}, name="t")
    assert b.g.values[t].shape == (3, 1, 4)

    def into_fresh_buffer(attrs, x):  # runs on one sample, but writes it into an unbatched buffer
        out = torch.zeros(x.shape, dtype=x.dtype, device=x.device)
        out.copy_(x)
        return out

    monkeypatch.setitem(OPS, "IntoBuffer", OpDef("IntoBuffer", into_fresh_buffer))
    assert run_op("IntoBuffer", {}, [torch.ones(3, 4)])[0].shape == (3, 4)  # fine unbatched
    with pytest.raises(GraphError, match="node 'buf' \\(IntoBuffer\\).*vmap"):
        b.node("IntoBuffer", [x], name="buf")
    assert not b.g.has_node("buf")


def test_mac_counts():
    b = GraphBuilder()
    x = b.input("x", (5, 8))
    y = b.node("Linear", [x, b.const("w", np.zeros((8, 3), np.float32))], name="fc")
    im = b.input("im", (1, 2, 6, 6), batch_axis=0)
    c = b.node(
        "Conv",
        [im, b.const("k", np.zeros((4, 2, 3, 3), np.float32))],
        {"strides": [2, 2], "pads": [1, 1, 1, 1], "dilations": [1, 1]},
        name="conv",
    )
    m = b.node("MatMul", [x, b.node("Transpose", [x], {"perm": [1, 0]}, name="t")], name="mm")
    g = b.output(y, c, m)
    validate(g)
    assert node_cost(g, g.node("fc"))["mac"] == 5 * 8 * 3
    assert node_cost(g, g.node("conv"))["mac"] == 4 * 3 * 3 * (2 * 3 * 3)
    assert node_cost(g, g.node("mm"))["mac"] == 5 * 5 * 8
