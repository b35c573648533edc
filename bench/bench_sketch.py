"""Memory and speed of QuantileSketch when streaming calibration activations.

Streams N "samples" through a dict of per-layer sketches (one per simulated layer); each sample
gives every layer a 16x48 tensor drawn from that layer's distribution (a fixed-seed mix of
Gaussian, ReLU, GELU, Student-t, signed lognormal and softmax outputs, with rare huge outliers).

For each N (default 1,000 and 20,000 samples) it measures
  * peak Python memory with tracemalloc (numpy buffers included) in one pass, and
  * time per sample (updates only, data generation excluded) in a second, untraced pass,
then writes bench/results/sketch.json and prints a summary.  The memory ratio should be ~1.0:
sketch memory is fixed at construction.

    python bench/bench_sketch.py [--samples 1000 20000] [--layers 20] [--out bench/results/sketch.json]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from snnconvert.atomic import write_json  # noqa: E402
from snnconvert.calibrate.sketch import QuantileSketch  # noqa: E402

SHAPE = (16, 48)
KINDS = ("gaussian", "relu", "gelu", "student_t2", "signed_lognormal", "softmax")
OUTLIER_RATE = 0.01  # chance per (sample, layer) that one value is a huge "massive activation"


class LayerSource:
    """Deterministic activation generator for one simulated layer."""

    def __init__(self, layer: int, seed: int):
        self.kind = KINDS[layer % len(KINDS)]
        self.rng = np.random.default_rng([seed, layer])
        self.scale = float(10.0 ** self.rng.uniform(-2.0, 2.0))

    def sample(self) -> torch.Tensor:
        r = self.rng
        if self.kind == "gaussian":
            x = r.standard_normal(SHAPE)
        elif self.kind == "relu":
            x = np.maximum(r.standard_normal(SHAPE), 0.0)
        elif self.kind == "gelu":
            z = r.standard_normal(SHAPE) * 2.0
            x = 0.5 * z * (1.0 + np.tanh(0.7978845608 * (z + 0.044715 * z**3)))
        elif self.kind == "student_t2":
            x = r.standard_t(2.0, SHAPE)
        elif self.kind == "signed_lognormal":
            x = np.where(r.random(SHAPE) < 0.5, -1.0, 1.0) * r.lognormal(0.0, 2.0, SHAPE)
        else:  # softmax over the last axis
            z = np.exp(r.standard_normal(SHAPE) * 3.0)
            x = z / z.sum(axis=1, keepdims=True)
        x = x * self.scale
        if r.random() < OUTLIER_RATE:
            x.flat[r.integers(x.size)] *= 1e4
        return torch.from_numpy(x.astype(np.float32))


def stream(n_samples: int, n_layers: int, seed: int) -> tuple[dict[str, QuantileSketch], float, float]:
    """Feed n_samples through fresh sketches; returns them and the wall / CPU seconds spent in update().

    CPU time is reported too because wall time is inflated when other processes share the cores.
    """
    sources = [LayerSource(i, seed) for i in range(n_layers)]
    sketches = {f"layer{i:02d}": QuantileSketch() for i in range(n_layers)}
    names = list(sketches)
    spent = cpu = 0.0
    for _ in range(n_samples):
        for name, src in zip(names, sources, strict=True):
            x = src.sample()
            c0, t0 = time.process_time(), time.perf_counter()
            sketches[name].update(x)
            spent += time.perf_counter() - t0
            cpu += time.process_time() - c0
    return sketches, spent, cpu


def measure(n_samples: int, n_layers: int, seed: int) -> dict:
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    sketches, _, _ = stream(n_samples, n_layers, seed)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    nbytes = sum(s.nbytes for s in sketches.values())
    del sketches

    # Second pass without tracemalloc (it slows allocation-heavy code) for the timing.
    wall0 = time.perf_counter()
    sketches, spent, cpu = stream(n_samples, n_layers, seed)
    wall = time.perf_counter() - wall0
    counts = {s.count for s in sketches.values()}
    assert counts == {n_samples * math.prod(SHAPE)}, counts
    return {
        "samples": n_samples,
        "values_per_layer": n_samples * math.prod(SHAPE),
        "peak_traced_bytes": peak - base,
        "retained_traced_bytes": current - base,
        "sketch_nbytes_total": nbytes,
        "update_seconds": spent,
        "update_us_per_sample": spent / n_samples * 1e6,
        "update_us_per_layer_update": spent / (n_samples * n_layers) * 1e6,
        "update_cpu_us_per_sample": cpu / n_samples * 1e6,
        "wall_seconds_incl_data_generation": wall,
        "p99_9_per_layer": {k: s.percentile(99.9) for k, s in sketches.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Memory and speed of QuantileSketch when streaming calibration activations."
    )
    ap.add_argument("--samples", type=int, nargs=2, default=[1000, 20000], metavar=("SMALL", "LARGE"))
    ap.add_argument("--layers", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sketch.json")
    args = ap.parse_args(argv)

    stream(5, args.layers, args.seed + 1)  # warm-up: one-time lazy allocations must not count as "peak"
    small, large = (measure(n, args.layers, args.seed) for n in args.samples)
    result = {
        "benchmark": "quantile_sketch_streaming",
        "layers": args.layers,
        "sample_shape": list(SHAPE),
        "sketch": {"alpha": 0.005, "min_magnitude": 1e-12, "max_magnitude": 1e12},
        "nbytes_per_sketch": QuantileSketch().nbytes,
        "small": small,
        "large": large,
        "peak_memory_ratio_large_over_small": large["peak_traced_bytes"] / small["peak_traced_bytes"],
        "update_us_per_sample": large["update_us_per_sample"],
        "update_cpu_us_per_sample": large["update_cpu_us_per_sample"],
        "environment": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            # > cpu_count means other processes competed for the cores: trust the CPU-time figures more
            "loadavg_1min_at_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)

    kib = 1024.0
    print(f"QuantileSketch streaming: {args.layers} layers, samples of {SHAPE[0]}x{SHAPE[1]} values")
    print(f"  nbytes per sketch: {result['nbytes_per_sketch']:,} B")
    for r in (small, large):
        print(
            f"  {r['samples']:>6,} samples: peak traced {r['peak_traced_bytes'] / kib:8.1f} KiB, "
            f"{r['update_us_per_sample']:7.1f} us/sample wall, {r['update_cpu_us_per_sample']:7.1f} us/sample CPU "
            f"({r['update_us_per_layer_update']:.1f} us/update)"
        )
    print(
        f"  peak memory ratio {large['samples']:,}/{small['samples']:,}: {result['peak_memory_ratio_large_over_small']:.3f}"
    )
    print(f"  wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
