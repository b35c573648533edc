"""Wall-clock timing on a machine shared with other work.

`timed_interleaved` runs every function once as a warm-up (first touches of freshly allocated memory
can cost several times a steady-state run on a VM), then REPS rounds in which the functions take
turns, so a burst of outside load hits all of them rather than one. Before each round it waits (up
to `max_wait` seconds) until other processes use less than `quiet_cores` CPU cores, measured from
/proc/stat while this process sleeps; what it found is recorded with the times.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable


def _cpu_times() -> tuple[float, float] | None:
    try:
        with open("/proc/stat") as f:
            parts = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0.0)  # idle + iowait
    return sum(parts), idle


def busy_cores(interval: float = 0.5) -> float | None:
    """CPU cores kept busy by other processes over `interval` seconds (we sleep meanwhile)."""
    a = _cpu_times()
    time.sleep(interval)
    b = _cpu_times()
    if a is None or b is None or b[0] <= a[0]:
        return None
    return (1.0 - (b[1] - a[1]) / (b[0] - a[0])) * (os.cpu_count() or 1)


def wait_quiet(quiet_cores: float = 0.3, max_wait: float = 30.0) -> dict[str, object]:
    t0 = time.perf_counter()
    busy = busy_cores()
    while busy is not None and busy > quiet_cores and time.perf_counter() - t0 < max_wait:
        busy = busy_cores(1.0)
    return {
        "other_busy_cores": None if busy is None else round(busy, 2),
        "quiet": busy is None or busy <= quiet_cores,
        "waited_s": round(time.perf_counter() - t0, 1),
    }


def timed_interleaved(
    fns: dict[str, Callable[[], object]], reps: int = 3, max_wait: float = 30.0, warmup: bool = True
) -> dict[str, dict[str, object]]:
    """Per function: median and min wall seconds, median process CPU seconds, every round's wall
    time, and the outside load seen before each round. (`warmup=False` for runs of minutes, whose
    first touches of memory are a small part of them.)"""
    for fn in fns.values() if warmup else ():
        fn()  # warm-up
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    load = []
    for _ in range(reps):
        load.append(wait_quiet(max_wait=max_wait))
        for k, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return {
        k: {
            "wall_s": statistics.median(wall[k]),
            "wall_min_s": min(wall[k]),
            "cpu_s": statistics.median(cpu[k]),
            "wall_runs_s": [round(w, 5) for w in wall[k]],
            "other_busy_cores_before_rounds": [x["other_busy_cores"] for x in load],
            "all_rounds_quiet": all(x["quiet"] for x in load),
        }
        for k in fns
    }
