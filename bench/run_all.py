"""Run every benchmark under bench/ as `python -m bench.NAME`, one after the other, from the
repository root; a failing one does not stop the rest. Ends with a summary of which ran, how long
they took and which result files (bench/results/*.json) each wrote; exits non-zero if any failed.

    python bench/run_all.py [--only NAME ...] [--skip NAME ...] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"

# the known benchmarks, in this order; any other bench_*.py found is run after them
KNOWN = (
    "bench_sketch",
    "bench_calibrate",
    "bench_mueller_grid",
    "bench_spiking_softmax",
    "bench_simulator",
    "bench_vit_base",  # needs the tv_b16 export of real_models (skips without it)
    "bench_spikingjelly",
    "fuzz_onnx",
    "real_models",  # export + run of the real-world export matrix (bench/real_models.py)
    "digits_timm_vit",  # trains timm's ViT on digits (timm from real_models' CACHE/site)
    "bench_fully_spiking_models",  # issue M's table: built-in ViT, the timm ViT, all-MiniLM-L6-v2
)


def discover() -> list[str]:
    present = {p.stem for p in BENCH.glob("*.py")}
    extra = sorted(n for n in present if n.startswith("bench_") and n not in KNOWN)
    return [n for n in KNOWN if n in present] + extra


def _snapshot() -> dict[str, float]:
    return {p.name: p.stat().st_mtime for p in RESULTS.glob("*.json")} if RESULTS.is_dir() else {}


def run_one(name: str, timeout: float | None) -> dict[str, object]:
    before = _snapshot()
    t0 = time.perf_counter()
    print(f"\n=== {name} " + "=" * max(0, 70 - len(name)), flush=True)
    try:
        rc = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=ROOT, timeout=timeout).returncode
        status = "ok" if rc == 0 else f"failed (exit {rc})"
    except subprocess.TimeoutExpired:
        rc, status = -1, f"timed out after {timeout:g} s"
    after = _snapshot()
    wrote = sorted(k for k, m in after.items() if before.get(k) != m)
    return {"name": name, "rc": rc, "status": status, "seconds": time.perf_counter() - t0, "wrote": wrote}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Run every benchmark under bench/ as `python -m bench.NAME`, one after the other, from the repository root."
    )
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these (module names)")
    ap.add_argument("--skip", nargs="+", metavar="NAME", default=[], help="do not run these")
    ap.add_argument("--timeout", type=float, default=None, help="seconds allowed per benchmark")
    args = ap.parse_args(argv)
    names = discover()
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            print(f"run_all: no such benchmark under bench/: {', '.join(unknown)} (have: {', '.join(names)})")
            return 2
        names = [n for n in names if n in args.only]
    names = [n for n in names if n not in set(args.skip)]
    print(f"run_all: {len(names)} benchmarks: {', '.join(names)}", flush=True)
    rows = [run_one(n, args.timeout) for n in names]
    print("\n=== summary " + "=" * 60)
    for r in rows:
        wrote = ", ".join(f"results/{w}" for w in r["wrote"]) or "no results written"
        print(f"{r['name']:22s} {r['status']:24s} {r['seconds']:8.1f} s   {wrote}")
    failed = [r["name"] for r in rows if r["rc"] != 0]
    if failed:
        print(f"{len(failed)} of {len(rows)} failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
