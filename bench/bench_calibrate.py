"""Calibration memory does not grow with the sample count: peak RSS of `calibrate` on the built-in
ViT for 1,000 and 20,000 samples (digits tiled with small noise), each in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import write_result

CHILD = r"""
import resource, sys, time, numpy as np
from importlib import resources
from snnconvert.api import run_calibration
n, d = int(sys.argv[1]), sys.argv[2]
x = np.load(resources.files('snnconvert') / 'data' / 'digits_test.npz')['x']
rng = np.random.default_rng(0)
reps = -(-n // len(x))
big = np.concatenate([x + 0.01 * rng.standard_normal(x.shape).astype(np.float32) for _ in range(reps)])[:n]
np.savez(d + '/data.npz', x=big)
del big
t = time.perf_counter()
run_calibration(resources.files('snnconvert') / 'zoo' / 'digits_vit.onnx', d + '/data.npz', d + '/c.json')
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - t)
"""


def main() -> None:
    rows = {}
    for n in (1000, 20000):
        with tempfile.TemporaryDirectory() as d:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(n), d], capture_output=True, text=True, check=True
            )
            kb, secs = out.stdout.split()
            rows[n] = {
                "peak_rss_mib": int(kb) / 1024,
                "seconds": float(secs),
                "calibration_bytes": Path(d, "c.json").stat().st_size,
            }
        print(n, json.dumps(rows[n]), flush=True)
    ratio = rows[20000]["peak_rss_mib"] / rows[1000]["peak_rss_mib"]
    print(f"peak RSS 20k / 1k = {ratio:.3f}")
    write_result(
        "calibrate_memory",
        {
            "samples": rows,
            "ratio_20k_over_1k": ratio,
            "note": "the 20k run's input file is read whole by np.load (the data, not the sketches)",
        },
    )


if __name__ == "__main__":
    main()
