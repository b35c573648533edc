"""Save/load an IR graph as graph.json + weights.npz (no pickle anywhere)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from snnconvert.errors import InputError
from snnconvert.ir.graph import Graph, Node, Value

FORMAT = "snnconvert-ir/1"


def graph_to_json(g: Graph) -> dict:
    return {
        "format": FORMAT,
        "inputs": list(g.inputs),
        "outputs": list(g.outputs),
        "values": [v.to_json() for v in g.values.values()],
        "nodes": [n.to_json() for n in g.nodes],
        "initializers": sorted(g.initializers),
        "meta": g.meta,
    }


def save_graph(g: Graph, directory: str | Path) -> None:
    """Write into an existing directory (callers make it atomic with atomic_dir)."""
    d = Path(directory)
    j = graph_to_json(g)
    j["content_hash"] = content_hash(g)  # lets a load skip re-inferring every shape
    (d / "graph.json").write_text(json.dumps(j, indent=1, sort_keys=True) + "\n")
    np.savez(d / "weights.npz", **{k: np.asarray(v) for k, v in sorted(g.initializers.items())})


def load_graph(directory: str | Path) -> Graph:
    d = Path(directory)
    gj, wz = d / "graph.json", d / "weights.npz"
    for f in (gj, wz):
        if not f.is_file():
            raise InputError(f"{f}: missing (is {d} an SNN directory written by `snnconvert convert`?)")
    try:
        j = json.loads(gj.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{gj}: not valid JSON ({e})") from None
    if not isinstance(j, dict) or j.get("format") != FORMAT:
        raise InputError(f"{gj}: not an snnconvert IR file (format field is not '{FORMAT}')")
    try:
        with np.load(wz, allow_pickle=False) as z:
            weights = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(f"{wz}: cannot read weights ({e})") from None
    try:
        g = Graph(
            nodes=[Node.from_json(n) for n in j["nodes"]],
            values={v["name"]: Value.from_json(v) for v in j["values"]},
            inputs=list(j["inputs"]),
            outputs=list(j["outputs"]),
            initializers=weights,
            meta=dict(j.get("meta", {})),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{gj}: malformed IR ({type(e).__name__}: {e})") from None
    missing = [k for k in j.get("initializers", []) if k not in weights]
    if missing:
        raise InputError(f"{wz}: lacks weights {', '.join(missing[:5])} named in graph.json")
    old = next((v.name for v in g.values.values() if any(d < 0 for d in v.shape)), None)
    if old is not None:
        raise InputError(
            f"{gj}: value '{old}' has a batch axis (-1): written by an older snnconvert, whose IR was "
            "batched; convert the model again"
        )
    from snnconvert.ir.validate import validate

    # structure always; shapes again only if the file is not what was saved (edited by hand)
    validate(g, source=str(gj), check_shapes=j.get("content_hash") != content_hash(g))
    return g


def content_hash(g: Graph) -> str:
    """A hash of the graph's structure and weights: ties calibration files to one model."""
    h = hashlib.sha256()
    struct = {k: v for k, v in graph_to_json(g).items() if k != "meta"}
    h.update(json.dumps(struct, sort_keys=True).encode())
    for k in sorted(g.initializers):
        a = np.ascontiguousarray(g.initializers[k])
        h.update(k.encode())
        h.update(str(a.dtype).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]
