"""torchvision vit_b_16 at real size (issue L item 4): seconds of `inspect`, `calibrate` (16
samples) and `convert`, each a whole CLI process as a user runs it, and how long after its launch
`simulate` begins its first SNN step. Targets: inspect + calibrate + convert <= 60 s on this
machine, first step <= 5 s.

    python -m bench.bench_vit_base [--recipe sit2024]

Needs the export from `python -m bench.real_models export --only tv_b16` (torchvision, random
weights, no download); skipped with a message if it is missing. Writes bench/results/vit_base.json.
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

from bench.common import write_result
from bench.real_models import CACHE

# run inside the simulate process: the wall time from interpreter start to the first SNN step
FIRST_STEP = r"""
import sys, time
t0 = time.time()
from snnconvert.sim import simulator
orig = simulator.Simulator.advance
def advance(self, *a, **k):
    if not getattr(advance, "seen", False):
        advance.seen = True
        print(f"FIRST_STEP {time.time() - t0:.3f}", file=sys.stderr, flush=True)
    return orig(self, *a, **k)
simulator.Simulator.advance = advance
from snnconvert.cli import main
main(sys.argv[1:])
"""


def _cli(*args: str) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB of the children so far) of one CLI process."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "snnconvert", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"snnconvert {args[0]} failed: {r.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default="sit2024")
    ap.add_argument("--exporter", default="ts17")
    args = ap.parse_args(argv)
    d = CACHE / "tv_b16" / args.exporter
    if not (d / "model.onnx").is_file():
        print(f"{d}/model.onnx missing: run `python -m bench.real_models export --only tv_b16` first")
        return 0
    model, calib, test = d / "model.onnx", d / "calib.npz", d / "test.npz"
    w = Path(tempfile.mkdtemp(prefix="snnbench-vitb-"))
    times: dict[str, float] = {}
    times["inspect"], _ = _cli("inspect", str(model))
    times["calibrate"], _ = _cli("calibrate", str(model), "--data", str(calib), "--samples", "16",
                                 "--out", str(w / "calib.json"))  # fmt: skip
    times["convert"], rss = _cli("convert", str(model), "--calibration", str(w / "calib.json"),
                                 "--recipe", args.recipe, "--out", str(w / "snn"))  # fmt: skip
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", FIRST_STEP, "simulate", str(w / "snn"), "--data", str(test), "--samples", "2",
         "--batch-size", "1", "--timesteps", "2", "--out", str(w / "sim.json")],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    total = time.perf_counter() - t
    first = next((float(x.split()[1]) for x in r.stderr.splitlines() if x.startswith("FIRST_STEP")), None)
    sim = json.loads((w / "sim.json").read_text()) if r.returncode == 0 else {}
    payload = {
        "model": f"torchvision vit_b_16, random init ({args.exporter} export, {model.stat().st_size / 1e6:.0f} MB)",
        "recipe": args.recipe,
        "cpu_count": os.cpu_count(),
        "seconds": {k: round(v, 2) for k, v in times.items()},
        "inspect_calibrate_convert_s": round(sum(times.values()), 2),
        "target_s": 60,
        "simulate_first_step_s": first,
        "simulate_first_step_target_s": 5,
        "simulate_2_samples_T2_s": round(total, 2),
        "simulate_cosine_T2": sim.get("cosine", [None])[-1],
        "peak_rss_mib": round(rss),
        "method": "each stage a whole `python -m snnconvert` process; first step = wall time from the simulate "
        "interpreter's start to Simulator.advance's first call",
    }
    print(json.dumps(payload, indent=1))
    write_result("vit_base", payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
