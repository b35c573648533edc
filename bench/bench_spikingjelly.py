"""snnconvert against SpikingJelly's ann2snn converter on the zoo's digits models.

For each of the MLP, the CNN and the ViT (trained weights read back from the shipped ONNX files into
the zoo's torch modules, checked against onnxruntime to 1e-5):
  * SpikingJelly: FXConverter(RateCodingRecipe(calibration loader, mode="99.9%")) on the torch
    module (IF neurons with soft reset, membrane starting at 0; layer-wise threshold = the 99.9th
    percentile of the ReLU output on digits_calib.npz, given as ONE batch of all 256 rows so the
    percentile is over the whole set, as snnconvert's is - with smaller batches SpikingJelly keeps a
    momentum-0.1 running average of per-batch percentiles). Simulated step by step: reset_net
    between batches, the same input at every step, outputs summed over steps.
  * snnconvert: calibrate + convert the ONNX file with recipe mueller2021 at --percentile 99.9
    (membrane starts at theta/2, MaxPool -> AvgPool), simulated with snnconvert.sim.run.simulate;
    plus, accuracy only, the same recipe with v0 = 0 (the membrane start SpikingJelly uses) and, for
    a model with MaxPool (the CNN), the recipe without maxpool_to_avgpool (MaxPool kept, analog,
    on the decoded rates), next to the accuracy of the ANN with MaxPool swapped for AvgPool.
Accuracy at T in {8, 16, 32, 50} comes from one 50-step run each (accuracy of the running output
at every step). Wall time of the T = 50 simulation over the 540 test samples, batch 64, 2 torch
threads: median of 3 rounds after a warm-up, the runs taking turns in every round (bench/timing.py).
Where SpikingJelly's rate-coding converter fails, its error is recorded, and its two transformer
recipes (STATransformerRecipe, TransformerTDEquivalentRecipe) are tried for conversion as they come. SpikingJelly's own op counter
(op_counter.SimpleEnergyProfiler) is run on the converted SNN next to snnconvert's energy report.

    pip install --no-deps spikingjelly && pip install scipy tqdm loguru packaging requests
    python -m bench.bench_spikingjelly
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import recipe_variant, write_result  # noqa: E402
from bench.timing import timed_interleaved  # noqa: E402
from bench.zoo_torch import data_file, load_npz, load_zoo_module, zoo_onnx  # noqa: E402
from snnconvert.api import load_snn, run_calibration, run_conversion, run_simulation  # noqa: E402
from snnconvert.data.files import load_dataset  # noqa: E402
from snnconvert.sim.simulator import Simulator  # noqa: E402

THREADS = 2
BATCH = 64
REPS = 3
PERCENTILE = 99.9
TS = (8, 16, 32, 50)
T_MAX = max(TS)
MODELS = ("mlp", "cnn", "vit")
COUNT_SAMPLES = 64  # samples run under SpikingJelly's op counter (it inspects every tensor: slow)


def _err(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:500]


# -- SpikingJelly ------------------------------------------------------------------------------------
def sj_convert(model: torch.nn.Module, calib_x: np.ndarray) -> torch.nn.Module:
    from spikingjelly.activation_based import ann2snn

    loader = [(torch.from_numpy(calib_x), torch.zeros(len(calib_x), dtype=torch.long))]
    recipe = ann2snn.RateCodingRecipe(dataloader=loader, mode=f"{PERCENTILE}%")
    return ann2snn.Converter(recipe=recipe, device="cpu").convert(copy.deepcopy(model))


def sj_thresholds(snn: torch.nn.Module) -> dict[str, float]:
    from spikingjelly.activation_based.ann2snn.modules import VoltageScaler

    return {
        name.removesuffix(".scaler1"): float(m.scale)
        for name, m in snn.named_modules()
        if isinstance(m, VoltageScaler) and name.endswith("scaler1")
    }


def _graph_module_types(gm: torch.nn.Module) -> dict[str, int]:
    """How many call_module nodes of each module type the converted FX graph runs."""
    out: dict[str, int] = {}
    for node in getattr(gm, "graph", None).nodes if hasattr(gm, "graph") else []:
        if node.op == "call_module":
            k = type(gm.get_submodule(node.target)).__name__
            out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items()))


@torch.no_grad()
def sj_simulate(snn: torch.nn.Module, x: np.ndarray, y: np.ndarray, T: int) -> np.ndarray:
    """Accuracy of the summed output after each step 1..T."""
    from spikingjelly.activation_based import functional

    snn.eval()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    correct = np.zeros(T, dtype=np.int64)
    for s in range(0, len(xt), BATCH):
        xb, yb = xt[s : s + BATCH], yt[s : s + BATCH]
        functional.reset_net(snn)
        total = None
        for t in range(T):
            out = snn(xb)
            total = out if total is None else total + out
            correct[t] += int((total.argmax(1) == yb).sum())
    functional.reset_net(snn)
    return correct / len(xt)


def sj_count_ops(snn: torch.nn.Module, x: np.ndarray, T: int) -> dict[str, object]:
    """SpikingJelly's SimpleEnergyProfiler over T steps on the first COUNT_SAMPLES rows, per sample."""
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.op_counter import SimpleEnergyProfiler

    xb = torch.from_numpy(x[:COUNT_SAMPLES])
    prof = SimpleEnergyProfiler()
    prof.bind_model(snn)
    functional.reset_net(snn)
    with torch.no_grad(), prof:
        for _ in range(T):
            snn(xb)
    functional.reset_net(snn)
    rep = prof.get_report()
    n = len(xb)
    return {
        "samples": n,
        "mac_per_sample": rep.counts["mac"] / n,
        "ac_per_sample": rep.counts["ac"] / n,
        "synop_per_sample": rep.counts["synop"] / n,
        "energy_compute_uj_per_sample": rep.energy_compute_pj / n / 1e6,
        "warnings": list(rep.warnings),
    }


# -- snnconvert ---------------------------------------------------------------------------------------
def _has_maxpool(name: str) -> bool:
    import onnx

    return any(n.op_type == "MaxPool" for n in onnx.load(str(zoo_onnx(name))).graph.node)


def _recipe_without(base: str, drop: str, work: Path) -> str:
    """A copy of a built-in recipe with one pass removed."""
    import yaml

    from snnconvert.passes.recipe import builtin_recipes

    r = yaml.safe_load(builtin_recipes()[base].read_text())
    r["passes"] = [e for e in r["passes"] if drop not in e]
    r["name"] = f"{base}-without-{drop}"
    p = work / f"{r['name']}.yaml"
    p.write_text(yaml.safe_dump(r))
    return str(p)


def snnconvert_prepare(name: str, work: Path) -> dict[str, Path]:
    onnx_path = zoo_onnx(name)
    cal = work / f"{name}-calib.json"
    run_calibration(onnx_path, data_file("calib"), cal)
    recipes = {
        "mueller2021": "mueller2021",
        "mueller2021_v0=0": recipe_variant("mueller2021", work, "v0zero", relu_to_if={"v0": 0.0}),
    }
    if _has_maxpool(name):  # the recipe swaps MaxPool for AvgPool; also try keeping it (analog, on rates)
        recipes["mueller2021_keep_maxpool"] = _recipe_without("mueller2021", "maxpool_to_avgpool", work)
    dirs = {}
    for label, recipe in recipes.items():
        dirs[label] = work / f"{name}-{label.replace('=', '')}"
        run_conversion(onnx_path, cal, recipe, dirs[label], percentile=PERCENTILE, portable=False)
    return dirs


def sj_other_recipes(model: torch.nn.Module, calib_x: np.ndarray) -> dict[str, str]:
    """SpikingJelly's transformer-specific FX recipes, tried as they come (conversion only)."""
    from spikingjelly.activation_based import ann2snn

    loader = [(torch.from_numpy(calib_x), torch.zeros(len(calib_x), dtype=torch.long))]
    makers = {
        "STATransformerRecipe(time_steps=16)": lambda: ann2snn.STATransformerRecipe(
            dataloader=loader, time_steps=16
        ),
        "TransformerTDEquivalentRecipe(time_steps=16)": lambda: ann2snn.TransformerTDEquivalentRecipe(
            time_steps=16
        ),
    }
    out = {}
    for label, make in makers.items():
        try:
            ann2snn.Converter(recipe=make(), device="cpu").convert(copy.deepcopy(model))
            out[label] = "converted (not simulated here)"
        except Exception as e:  # noqa: BLE001
            out[label] = _err(e)
    return out


def _maxpool_as_avgpool_accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """The ANN that maxpool_to_avgpool leaves behind, run in torch."""
    m = copy.deepcopy(model)
    for parent in m.modules():
        for k, c in parent.named_children():
            if isinstance(c, torch.nn.MaxPool2d):
                setattr(parent, k, torch.nn.AvgPool2d(c.kernel_size, c.stride, c.padding))
    with torch.no_grad():
        return float((m(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def bench_model(name: str, work: Path, calib_x, test_x, test_y) -> dict[str, object]:
    from snnconvert.api import energy_report

    row: dict[str, object] = {"model": name}
    model, diff = load_zoo_module(name)
    row["torch_vs_onnxruntime_max_abs_diff"] = diff
    with torch.no_grad():
        row["ann_accuracy"] = float((model(torch.from_numpy(test_x)).argmax(1).numpy() == test_y).mean())

    # SpikingJelly
    sj: dict[str, object] = {"recipe": f"RateCodingRecipe(mode='{PERCENTILE}%'), IFNode(v_reset=None)"}
    sj_snn = None
    try:
        t0 = time.perf_counter()
        sj_snn = sj_convert(model, calib_x)
        sj["convert_s"] = time.perf_counter() - t0
        sj["thresholds"] = sj_thresholds(sj_snn)
        sj["graph_modules"] = _graph_module_types(sj_snn)
        acc = sj_simulate(sj_snn, test_x, test_y, T_MAX)
        sj["accuracy"] = {t: float(acc[t - 1]) for t in TS}
        sj["accuracy_curve"] = [round(float(a), 5) for a in acc]
    except Exception as e:  # noqa: BLE001 - whatever SpikingJelly raises is the result
        sj["error"] = _err(e)
        sj["traceback_tail"] = traceback.format_exc().strip().splitlines()[-6:]
        sj_snn = None
        sj["other_recipes_tried"] = sj_other_recipes(model, calib_x)
    row["spikingjelly"] = sj
    if _has_maxpool(name):
        row["ann_accuracy_maxpool_as_avgpool"] = _maxpool_as_avgpool_accuracy(model, test_x, test_y)

    # snnconvert
    sc: dict[str, object] = {"recipe": f"mueller2021 --percentile {PERCENTILE}"}
    dirs = None
    try:
        dirs = snnconvert_prepare(name, work)
        for label, d in dirs.items():
            j = run_simulation(d, data_file("test"), T_MAX, batch_size=BATCH)
            entry = {
                "ann_accuracy": j["ann_accuracy"],
                "accuracy": {t: j["snn_accuracy"][t - 1] for t in TS},
                "accuracy_curve": [round(a, 5) for a in j["snn_accuracy"]],
            }
            if label == "mueller2021":
                snn, _ann = load_snn(d)
                entry["thresholds"] = {k: float(v) for k, v in snn.meta.get("scales", {}).items()}
                entry["analog_nodes"] = sorted(
                    {n.op for n in snn.nodes if snn.values[n.outputs[0]].domain != "spike"}
                )
                rep = energy_report(d)
                tot = rep["total"]
                entry["energy_report_per_sample"] = {
                    "ann_macs": tot["ann_macs"],
                    "snn_acs": tot["snn_acs"],
                    "snn_macs": tot["snn_macs"],
                    "energy_ratio_snn_over_ann": tot["ratio"],
                }
            sc[label] = entry
    except Exception as e:  # noqa: BLE001
        sc["error"] = _err(e)
        sc["traceback_tail"] = traceback.format_exc().strip().splitlines()[-6:]
        dirs = None
    row["snnconvert"] = sc

    # T = 50 wall time, same threads and batch
    fns: dict[str, Callable[[], object]] = {}
    if sj_snn is not None:
        fns["spikingjelly"] = lambda: sj_simulate(sj_snn, test_x, test_y, T_MAX)
    if dirs is not None:
        snn, ann = load_snn(dirs["mueller2021"])
        ds = load_dataset(data_file("test"), snn)
        sim = Simulator(snn)
        out = snn.outputs[0]

        def snn_only() -> None:
            for _s, feeds, _y in ds.batches(BATCH):
                outs = sim.run_chunk(feeds, 0, T_MAX, state={})
                sim.decode(outs[out], 0, T_MAX, None)

        def full() -> None:
            from snnconvert.sim.run import simulate

            simulate(snn, ann, ds, T_MAX, batch_size=BATCH)

        fns["snnconvert_snn_only"] = snn_only
        fns["snnconvert_simulate"] = full
    row["time_T50"] = timed_interleaved(fns, REPS) if fns else {}
    tm = row["time_T50"]
    if "spikingjelly" in tm and "snnconvert_simulate" in tm:
        # SpikingJelly's simulation time over ours (all of simulate: the ANN reference, the limit
        # run and per-layer fidelity included), same samples, T and batch, one run each round
        row["speedup_vs_spikingjelly"] = round(
            tm["spikingjelly"]["wall_s"] / tm["snnconvert_simulate"]["wall_s"], 3
        )

    if sj_snn is not None:
        try:
            row["spikingjelly_op_counter_T50"] = sj_count_ops(sj_snn, test_x, T_MAX)
        except Exception as e:  # noqa: BLE001
            row["spikingjelly_op_counter_T50"] = {"error": _err(e)}
    return row


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(
        description="snnconvert against SpikingJelly's ann2snn converter on the zoo's digits models."
    )
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    models = ap.parse_args(argv).models
    torch.set_num_threads(THREADS)
    os.environ.setdefault("TQDM_DISABLE", "1")  # SpikingJelly's calibration progress bar
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    try:
        import spikingjelly
        from loguru import logger as _loguru

        _loguru.remove()  # SpikingJelly logs every conversion and count through loguru
        sj_version = getattr(spikingjelly, "__version__", None)
        if sj_version is None:
            from importlib.metadata import version

            sj_version = version("spikingjelly")
    except Exception as e:  # noqa: BLE001
        print(
            f"spikingjelly is not importable ({_err(e)}); install it with `pip install --no-deps spikingjelly`"
        )
        write_result("spikingjelly", {"error": f"import spikingjelly failed: {_err(e)}"})
        raise SystemExit(1) from None
    calib_x, _ = load_npz("calib")
    test_x, test_y = load_npz("test")
    work = Path(tempfile.mkdtemp(prefix="snnbench-sj-"))
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rows = []
    for name in models:
        print(f"[{name}] ...", flush=True)
        rows.append(bench_model(name, work, calib_x, test_x, test_y))
        _print_row(rows[-1])
    payload = {
        "spikingjelly_version": sj_version,
        "torch": torch.__version__,
        "threads": THREADS,
        "batch_size": BATCH,
        "percentile": PERCENTILE,
        "timesteps": list(TS),
        "samples": len(test_y),
        "calibration": "snnconvert/data/digits_calib.npz (256 rows); SpikingJelly given it as one batch",
        "loadavg_1min": {"start": load0, "end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
        "method": (
            f"time_T50: median (and min) of {REPS} rounds after a warm-up, the runs taking turns in each "
            "round; spikingjelly = step-by-step forward of the converted GraphModule incl. per-step argmax; "
            "snnconvert_snn_only = Simulator.run_chunk over all 50 steps at once + decode; "
            "snnconvert_simulate = what `snnconvert simulate` runs (adds the ANN reference, per-layer "
            "fidelity and event counts)"
        ),
        "rows": rows,
    }
    path = write_result("spikingjelly", payload)
    _print_table(rows)
    print(f"-> {path}")


def _acc(d: dict | None, t: int) -> str:
    if not d or "accuracy" not in d:
        return "   err"
    return f"{100 * d['accuracy'][t]:6.2f}"


def _print_row(r: dict) -> None:
    sj, sc = r["spikingjelly"], r["snnconvert"]
    if "error" in sj:
        print(f"  spikingjelly failed: {sj['error']}")
    if "error" in sc:
        print(f"  snnconvert failed: {sc['error']}")
    tm = r.get("time_T50", {})
    print("  " + "  ".join(f"{k} {v['wall_s']:.2f}s" for k, v in tm.items()), flush=True)


def _print_table(rows: list[dict]) -> None:
    print()
    print(
        f"{'model':5s} {'tool':28s} {'ANN':>6s} "
        + " ".join(f"{'T=' + str(t):>6s}" for t in TS)
        + "  T=50 wall s"
    )
    for r in rows:
        sj, sc = r["spikingjelly"], r["snnconvert"]
        tm = r.get("time_T50", {})
        lines = [
            ("spikingjelly 99.9%", sj, tm.get("spikingjelly")),
            ("snnconvert mueller2021 99.9", sc.get("mueller2021"), tm.get("snnconvert_snn_only")),
            ("snnconvert  (v0=0)", sc.get("mueller2021_v0=0"), None),
        ]
        if "mueller2021_keep_maxpool" in sc:
            lines.append(("snnconvert  (keep MaxPool)", sc["mueller2021_keep_maxpool"], None))
        for label, d, t in lines:
            accs = " ".join(_acc(d, t_) for t_ in TS)
            wall = f"{t['wall_s']:8.2f}" if t else "        "
            print(f"{r['model']:5s} {label:28s} {100 * r['ann_accuracy']:6.2f} {accs}  {wall}")
        if "snnconvert_simulate" in tm:
            print(
                f"{'':5s} {'  (full simulate incl. ANN + fidelity)':28s} {'':6s} {'':27s}  {tm['snnconvert_simulate']['wall_s']:8.2f}"
            )
        if "ann_accuracy_maxpool_as_avgpool" in r:
            print(
                f"{'':5s} ANN with MaxPool -> AvgPool (what mueller2021 approximates): {100 * r['ann_accuracy_maxpool_as_avgpool']:.2f}"
            )
        if "error" in sj:
            print(f"{'':5s} spikingjelly error: {sj['error']}")
            for k, v in sj.get("other_recipes_tried", {}).items():
                print(f"{'':5s}   {k}: {v}")


if __name__ == "__main__":
    main()
