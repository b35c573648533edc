"""Shared bench helpers: the built-in example in a temp dir, recipe variants, JSON results."""

from __future__ import annotations

import json
import platform
import tempfile
import time
from pathlib import Path

import yaml

from snnconvert.api import run_calibration, write_example
from snnconvert.passes.recipe import builtin_recipes

RESULTS = Path(__file__).parent / "results"


def example_dir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="snnbench-"))
    write_example(d / "ex")
    run_calibration(d / "ex" / "model.onnx", d / "ex" / "calib.npz", d / "calib.json")
    return d


def recipe_variant(base: str, d: Path, tag: str, **pass_params) -> str:
    """A copy of a built-in recipe with some pass parameters changed, e.g. relu_to_if={'v0': 0}."""
    r = yaml.safe_load(builtin_recipes()[base].read_text())
    for entry in r["passes"]:
        ((name, params),) = entry.items()
        if name in pass_params:
            params.update(pass_params[name])
    r["name"] = f"{base}-{tag}"
    p = d / f"{base}-{tag}.yaml"
    p.write_text(yaml.safe_dump(r))
    return str(p)


def accuracy_curve(j: dict, ts) -> dict:
    """A simulation result's ANN accuracy and, at each t in ts, SNN accuracy and loss in pp."""
    ann = j["ann_accuracy"]
    return {
        "ann_accuracy": ann,
        "samples": j["samples"],
        "snn_accuracy": {t: j["snn_accuracy"][t - 1] for t in ts},
        "loss_pp": {t: round(100 * (ann - j["snn_accuracy"][t - 1]), 3) for t in ts},
    }


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "bench": name,
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d"),
        **payload,
    }
    p = RESULTS / f"{name}.json"
    p.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    return p
