"""Simulator cost against the architecture's goal, "cost close to T dense forwards".

On the built-in digits ViT, converted with `mueller2021` (rate, T = 50) and `spikezip_count`
(count, fully spiking, T = 8) and `sit2024` (rate with spiking softmax, T = 50), over the 540 test samples at batch 64 on 2 torch threads:
  * ann      - the reference Executor on the ANN graph, once over the test set;
  * eager    - the same ViT as a plain torch module (zoo/models.py, weights read back from the ONNX);
  * simulate - snnconvert.sim.run.simulate (what `snnconvert simulate` runs: the SNN, plus the ANN
               reference on the same batch and per-layer fidelity / event counting);
  * snn_only - Simulator.run_chunk + decode alone (no ANN, no fidelity, no event counts).
Each is the median of 3 rounds after a warm-up, the four taking turns in every round; wall and
process CPU seconds (and the fastest round) are all kept, since other work on a shared machine
inflates wall time. ratio = time / (T x ann time).
One more simulate call per recipe runs under cProfile (top functions by cumulative time, a
breakdown by simulator stage) and one under torch.profiler (aten ops by self CPU time, and the
share of the wall time spent outside aten ops, i.e. Python and dispatch overhead).

    python -m bench.bench_simulator
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import example_dir, write_result  # noqa: E402
from bench.timing import timed_interleaved, wait_quiet  # noqa: E402
from bench.zoo_torch import load_zoo_module  # noqa: E402
from snnconvert.api import load_snn, run_conversion  # noqa: E402
from snnconvert.data.files import load_dataset  # noqa: E402
from snnconvert.ir.execute import Executor  # noqa: E402
from snnconvert.ir.registry import get  # noqa: E402
from snnconvert.sim.run import simulate  # noqa: E402
from snnconvert.sim.simulator import Simulator  # noqa: E402

THREADS = 2
BATCH = 64
REPS = 3
RECIPES = (("mueller2021", 50), ("sit2024", 50), ("spikezip_count", 8))

# simulator stages for the cProfile breakdown: (label, file suffix, function name); indentation shows
# nesting (cumulative times of nested stages are part of their parent's)
STAGES = (
    ("simulate (total)", "sim/run.py", "simulate"),
    ("ANN reference executor", "ir/execute.py", "run"),
    ("SNN run_chunk", "sim/simulator.py", "run_chunk"),
    ("  IF neurons (_neuron)", "sim/simulator.py", "_neuron"),
    ("    if_steps time loop", "neurons/integrate_fire.py", "if_steps"),
    ("  analog ops on running values (_decoded)", "sim/simulator.py", "_decoded"),
    ("  affine ops (_affine, on signals or running values)", "sim/simulator.py", "_affine"),
    ("    event-driven Linear rows (count coding)", "sim/simulator.py", "_event_rows"),
    ("  analog ops per step (_per_step)", "sim/simulator.py", "_per_step"),
    ("  signal -> running values (_running)", "sim/simulator.py", "_running"),
    ("  running values -> signal (_stream)", "sim/simulator.py", "_stream"),
    ("  op dispatch (registry.run_batched, all callers)", "ir/registry.py", "run_batched"),
    ("  per-layer fidelity (observe, called inside run_chunk)", "sim/run.py", "observe"),
    ("    fid_sums (float64 sums)", "sim/run.py", "fid_sums"),
    ("output decode (Simulator.decode)", "sim/simulator.py", "decode"),
)


WRAPPERS = ("bench/bench_simulator.py", "torch/utils/_contextlib.py")


def _func_name(key: tuple[str, int, str]) -> str:
    file, line, name = key
    if file == "~" or not file:
        return name
    p = Path(file)
    for anchor in ("snnconvert", "torch", "bench"):
        if anchor in p.parts:
            p = Path(*p.parts[p.parts.index(anchor) :])
            break
    return f"{p}:{line}({name})"


def cprofile(fn: Callable[[], object], top: int = 10) -> dict[str, object]:
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.runcall(fn)
    wall = time.perf_counter() - t0
    st = pstats.Stats(prof)
    rows = st.stats  # {(file, line, name): (cc, nc, tt, ct, callers)}

    def table(idx: int) -> list[dict[str, object]]:
        # leave out this file's wrappers and torch.no_grad's decorator: they only wrap simulate()
        shown = {k: v for k, v in rows.items() if not k[0].replace("\\", "/").endswith(WRAPPERS)}
        ranked = sorted(shown.items(), key=lambda kv: kv[1][idx], reverse=True)[:top]
        return [
            {
                "function": _func_name(k),
                "calls": v[1],
                "cumtime_s": round(v[3], 4),
                "tottime_s": round(v[2], 4),
            }
            for k, v in ranked
        ]

    total = max(v[3] for v in rows.values())
    stages = []
    for label, suffix, name in STAGES:
        ct = sum(v[3] for k, v in rows.items() if k[2] == name and k[0].replace("\\", "/").endswith(suffix))
        calls = sum(
            v[1] for k, v in rows.items() if k[2] == name and k[0].replace("\\", "/").endswith(suffix)
        )
        stages.append(
            {"stage": label, "cumtime_s": round(ct, 4), "share": round(ct / total, 4), "calls": calls}
        )
    return {
        "wall_s_under_cprofile": round(wall, 4),
        "by_cumtime": table(3),
        "by_tottime": table(2),
        "stages": stages,
    }


def torch_profile(fn: Callable[[], object], top: int = 10) -> dict[str, object]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
    avgs = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    # self time of aten ops = time inside kernels and their own bookkeeping; the rest of the wall
    # time is Python (graph walk, Sig bookkeeping, registry dispatch) and the torch dispatcher above aten
    aten_self = sum(e.self_cpu_time_total for e in avgs) / 1e6
    ranked = sorted(avgs, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {
        "wall_s_under_profiler": round(wall, 4),
        "aten_self_cpu_s": round(aten_self, 4),
        "outside_aten_share": round(max(0.0, 1 - aten_self / wall), 4),
        "aten_op_calls": int(sum(e.count for e in avgs)),
        "aten_self_us_per_call": round(1e6 * aten_self / max(1, sum(e.count for e in avgs)), 2),
        "top_aten_ops": [
            {"op": e.key, "calls": e.count, "self_cpu_s": round(e.self_cpu_time_total / 1e6, 4)}
            for e in ranked
        ],
    }


def main() -> None:
    torch.set_num_threads(THREADS)
    d = example_dir()
    ex = d / "ex"
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    vit, vit_diff = load_zoo_module("vit")
    rows, profiles, tprofiles, breakdown = [], {}, {}, {}
    for recipe, T in RECIPES:
        snn_dir = d / f"snn-{recipe}"
        run_conversion(ex / "model.onnx", d / "calib.json", recipe, snn_dir, portable=False)
        snn, ann = load_snn(snn_dir)
        ds = load_dataset(ex / "test.npz", snn)
        n = ds.n
        exe = Executor(ann)
        sim = Simulator(snn)
        out_name = snn.outputs[0]
        x = torch.from_numpy(ds.inputs[ann.inputs[0]])

        def run_ann(exe=exe, ds=ds) -> None:
            for _s, feeds, _y in ds.batches(BATCH):
                exe.run(feeds)

        def run_eager(x=x) -> None:
            with torch.no_grad():
                for s in range(0, len(x), BATCH):
                    vit(x[s : s + BATCH])

        def run_simulate(snn=snn, ann=ann, ds=ds, T=T):
            return simulate(snn, ann, ds, T, batch_size=BATCH)

        def run_snn_only(sim=sim, ds=ds, T=T, out_name=out_name) -> None:
            for _s, feeds, _y in ds.batches(BATCH):
                outs = sim.run_chunk(feeds, 0, T, state={})
                sim.decode(outs[out_name], 0, T, None)

        tm = timed_interleaved(
            {"ann": run_ann, "eager": run_eager, "simulate": run_simulate, "snn_only": run_snn_only}, REPS
        )
        t_ann, t_eager, t_sim, t_snn = tm["ann"], tm["eager"], tm["simulate"], tm["snn_only"]
        res = run_simulate()
        dense = T * t_ann["wall_s"]
        row = {
            "recipe": recipe,
            "coding": snn.meta.get("coding"),
            "timesteps": T,
            "samples": n,
            "batch_size": BATCH,
            "snn_nodes": len(snn.nodes),
            "ann_nodes": len(ann.nodes),
            "neuron_nodes": sum(1 for nd in snn.nodes if get(nd.op).spiking),
            "ann_accuracy": res.ann_correct / n,
            "snn_accuracy_at_T": float(res.snn_correct[-1]) / n,
            "ann_executor": t_ann,
            "torch_eager": t_eager,
            "simulate": t_sim,
            "snn_only": t_snn,
            "ratio_simulate_vs_T_ann": t_sim["wall_s"] / dense,
            "ratio_snn_only_vs_T_ann": t_snn["wall_s"] / dense,
            "ratio_simulate_vs_T_ann_min": t_sim["wall_min_s"] / (T * t_ann["wall_min_s"]),
            "ratio_snn_only_vs_T_ann_min": t_snn["wall_min_s"] / (T * t_ann["wall_min_s"]),
            "ratio_simulate_vs_T_ann_cpu": t_sim["cpu_s"] / (T * t_ann["cpu_s"]),
            "ratio_snn_only_vs_T_ann_cpu": t_snn["cpu_s"] / (T * t_ann["cpu_s"]),
            "ratio_simulate_vs_T_eager": t_sim["wall_s"] / (T * t_eager["wall_s"]),
            "ratio_snn_only_vs_T_eager": t_snn["wall_s"] / (T * t_eager["wall_s"]),
            "executor_vs_eager": t_ann["wall_s"] / t_eager["wall_s"],
        }
        rows.append(row)
        print(
            f"{recipe:15s} T={T:3d} ann {t_ann['wall_s'] * 1e3:7.1f} ms  eager {t_eager['wall_s'] * 1e3:7.1f} ms  "
            f"simulate {t_sim['wall_s']:6.2f} s (x{row['ratio_simulate_vs_T_ann']:.2f} of T ANN)  "
            f"snn-only {t_snn['wall_s']:6.2f} s (x{row['ratio_snn_only_vs_T_ann']:.2f})",
            flush=True,
        )
        wait_quiet()
        prof = cprofile(run_simulate)
        profiles[recipe] = prof["by_cumtime"]
        breakdown[recipe] = {k: v for k, v in prof.items() if k != "by_cumtime"}
        wait_quiet()
        tprofiles[recipe] = torch_profile(run_simulate)

    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    payload = {
        "model": "built-in digits ViT (snnconvert example)",
        "threads": THREADS,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "loadavg_1min": {"start": load0, "end": load1},
        "eager_vs_onnxruntime_max_abs_diff": vit_diff,
        "method": (
            f"median (and min) of {REPS} rounds after one warm-up, the four timed functions taking turns "
            "in each round; wall = perf_counter, cpu = process_time; ratio_* = time / (T x ANN executor "
            "time over the same 540 samples), *_cpu on process CPU time, *_min on the fastest round"
        ),
        "rows": rows,
        "profile_top": profiles,
        "profile_note": (
            "cProfile of one simulate() call, top 10 by cumulative time (the bench's own wrapper and "
            "torch.no_grad's decorator left out); cProfile adds a per-call cost, so Python-heavy parts "
            "look larger than in the timed runs"
        ),
        "profile_breakdown": breakdown,
        "torch_profile": tprofiles,
    }
    path = write_result("simulator", payload)
    _print_tables(rows, breakdown, tprofiles)
    print(f"-> {path}")


def _print_tables(rows: list[dict], breakdown: dict, tprofiles: dict) -> None:
    print()
    hdr = f"{'recipe':15s} {'T':>3s} {'acc':>6s} {'ANN ms':>7s} {'eager ms':>8s} {'sim s':>6s} {'snn s':>6s} {'sim/TxANN':>9s} {'snn/TxANN':>9s} {'(cpu)':>6s}"
    print(hdr)
    for r in rows:
        print(
            f"{r['recipe']:15s} {r['timesteps']:3d} {r['snn_accuracy_at_T']:6.3f} "
            f"{r['ann_executor']['wall_s'] * 1e3:7.1f} {r['torch_eager']['wall_s'] * 1e3:8.1f} "
            f"{r['simulate']['wall_s']:6.2f} {r['snn_only']['wall_s']:6.2f} "
            f"{r['ratio_simulate_vs_T_ann']:9.2f} {r['ratio_snn_only_vs_T_ann']:9.2f} "
            f"{r['ratio_snn_only_vs_T_ann_cpu']:6.2f}"
        )
    for recipe, b in breakdown.items():
        tp = tprofiles[recipe]
        print(
            f"\n{recipe}: where one simulate() call goes (cProfile, {b['wall_s_under_cprofile']:.2f} s; "
            f"{100 * tp['outside_aten_share']:.0f}% of wall outside aten ops, {tp['aten_op_calls']} aten calls)"
        )
        for s in b["stages"]:
            print(
                f"  {s['stage']:62s} {s['cumtime_s']:7.3f} s  {100 * s['share']:5.1f}%  {s['calls']:7d} calls"
            )
        print(
            "  top aten ops by self CPU: "
            + ", ".join(f"{o['op']} {o['self_cpu_s']:.2f}s" for o in tp["top_aten_ops"][:5])
        )


if __name__ == "__main__":
    main()
