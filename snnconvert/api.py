"""One library function per CLI command; the CLI only parses arguments and prints."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snnconvert.atomic import atomic_dir, atomic_path, write_json
from snnconvert.errors import InputError
from snnconvert.ir.graph import Graph
from snnconvert.ir.serialize import content_hash, load_graph, save_graph

if TYPE_CHECKING:
    from snnconvert.frontends.torch import ModelFactory

DEFAULT_EXAMPLE = "digits_vit"


# -- models ----------------------------------------------------------------------------------------
def load_model(
    path: str | Path,
    input_shapes: dict[str, list[int]] | None = None,
    batch_axes: dict[str, int] | None = None,
    factory: ModelFactory | None = None,
) -> Graph:
    """An ONNX file, a PyTorch ExportedProgram (.pt2), or a state_dict (.pt/.pth) with the factory that
    builds its module: the PyTorch ones are exported to ONNX in memory and imported the same way."""
    p = Path(path)
    if p.suffix in (".pt", ".pth", ".pt2", ".ckpt"):
        from snnconvert.frontends.torch import load_torch

        return load_torch(p, input_shapes, batch_axes, factory)
    if factory is not None:
        raise InputError(f"{p}: --model-factory goes with a state_dict (.pt/.pth), not an ONNX model")
    from snnconvert.frontends.onnx import load_onnx

    return load_onnx(p, input_shapes, batch_axes)


# -- example ---------------------------------------------------------------------------------------
def zoo_examples() -> dict[str, dict[str, Any]]:
    """The zoo's models by example name, from the shipped zoo.json that tools/train_zoo.py writes (the
    one place a model's file, data files, description, recipe and accuracy are recorded)."""
    index = json.loads((resources.files("snnconvert") / "zoo" / "zoo.json").read_text())
    return {e["example"]: e for e in index["models"].values() if "example" in e}


def _example_sources(entry: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """What an example directory holds: its file name -> (package folder, shipped file)."""
    return {
        "model.onnx": ("zoo", entry["file"]),
        "calib.npz": ("data", entry["data"]["calib"]),
        "test.npz": ("data", entry["data"]["test"]),
    }


def _shipped(sources: dict[str, tuple[str, str]]) -> list[str]:
    root = resources.files("snnconvert")
    return [res for pkg, res in sources.values() if not (root / pkg / res).is_file()]


def list_examples() -> list[dict[str, Any]]:
    """One row per zoo model for `snnconvert example --list`, sorted by name."""
    rows = []
    for name, e in sorted(zoo_examples().items()):
        rows.append(
            {
                "name": name,
                "description": e.get("description", ""),
                "recipe": e.get("recipe", ""),
                "test_accuracy": e.get("test_accuracy"),
                "test_samples": e.get("test_samples"),
                "missing": _shipped(_example_sources(e)),
            }
        )
    return rows


def example_sources(model: str) -> dict[str, tuple[str, str]]:
    """The shipped files of one zoo model, or a one-line error naming the models there are."""
    entries = zoo_examples()
    ready = sorted(n for n, e in entries.items() if not _shipped(_example_sources(e)))
    if model not in entries:
        raise InputError(f"--model {model}: not in the zoo (models: {', '.join(ready)})")
    sources = _example_sources(entries[model])
    missing = _shipped(sources)
    if missing:
        raise InputError(
            f"--model {model}: its files are not shipped ({', '.join(missing)}); models: {', '.join(ready)}"
        )
    return sources


def write_example(out_dir: str | Path, model: str = DEFAULT_EXAMPLE) -> list[str]:
    """A zoo model (model.onnx) and its calibration/test splits (shipped: no training, no download)."""
    sources = example_sources(model)
    root = resources.files("snnconvert")
    d = Path(out_dir)
    if d.is_dir():  # the user's directory ('.' perhaps): each file written whole, nothing else touched
        for name, (pkg, res) in sources.items():
            with atomic_path(d / name) as tmp:
                tmp.write_bytes((root / pkg / res).read_bytes())
        return list(sources)
    with atomic_dir(d) as tmp:
        for name, (pkg, res) in sources.items():
            (tmp / name).write_bytes((root / pkg / res).read_bytes())
    return list(sources)


# -- calibrate -------------------------------------------------------------------------------------
def run_calibration(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    samples: int | None = None,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
    input_shapes: dict[str, list[int]] | None = None,
    batch_axes: dict[str, int] | None = None,
    factory: ModelFactory | None = None,
) -> dict[str, Any]:
    from snnconvert.calibrate.file import Calibration
    from snnconvert.calibrate.observe import calibrate
    from snnconvert.data.files import load_dataset

    g = load_model(model, input_shapes, batch_axes, factory)
    ds = load_dataset(data, g)
    masked: dict[str, int] = {}
    sketches = calibrate(g, ds, samples=samples, batch_size=batch_size, progress=progress, masked=masked)
    n = ds.n if samples is None else samples
    cal = Calibration(
        content_hash(g),
        sketches,
        {
            "model": Path(model).name,
            "data": Path(data).name,
            "samples": n,
            "settings": {"batch_size": batch_size, "alpha": 0.005},
        },
        masked=masked,
    )
    cal.save(out)
    return {"tensors": len(sketches), "samples": n, "model_hash": cal.model_hash}


# -- convert ---------------------------------------------------------------------------------------
def run_conversion(
    model: str | Path,
    calibration: str | Path,
    recipe: str,
    out_dir: str | Path,
    percentile: float | None = None,
    input_shapes: dict[str, list[int]] | None = None,
    portable: bool = True,
    batch_axes: dict[str, int] | None = None,
    factory: ModelFactory | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """`overrides` are `--set KEY=VALUE` strings (snnconvert.passes.recipe.apply_overrides); the recipe
    written to the SNN directory is the effective one, overrides and --percentile included."""
    from snnconvert.calibrate.file import load_calibration
    from snnconvert.passes import PassContext, run_pass
    from snnconvert.passes.recipe import load_recipe
    from snnconvert.passes.spikify import assign_domains

    r = load_recipe(recipe, overrides)
    if percentile is not None and not (50.0 <= percentile <= 100.0):
        raise InputError(f"--percentile must be in [50, 100], got {percentile}")
    if percentile is not None:  # in the recipe itself, so that recipe.json records what ran
        r.passes = [
            (n, {**p, "percentile": float(percentile)} if n == "normalize" else p) for n, p in r.passes
        ]
    ann = load_model(model, input_shapes, batch_axes, factory)
    cal = load_calibration(calibration, content_hash(ann))
    ctx = PassContext(calibration=cal, coding=r.coding)
    g = ann
    for name, params in r.passes:
        g = run_pass(name, g, params, ctx)
    assign_domains(g, r.coding)
    ctx.notes.extend(coverage_notes(ann, g, r))
    g.meta.update(  # the coding was set by assign_domains, which checked every neuron against it
        recipe=r.name,
        timesteps=r.timesteps,
        analog_mode=r.simulate.get("analog", "mean"),
        energy=r.energy,
        model_hash=cal.model_hash,
        notes=ctx.notes,
    )
    from snnconvert.ir.validate import validate

    validate(g, source="converted graph")
    summary = conversion_summary(g)
    with atomic_dir(out_dir) as tmp:
        save_graph(g, tmp)
        (tmp / "ann").mkdir()
        save_graph(ann, tmp / "ann")
        write_json(tmp / "recipe.json", r.to_json())
        summary["portable"] = None
        if portable:
            from snnconvert.sim.portable import PortableExportError, export_portable

            try:
                export_portable(g, tmp)
                summary["portable"] = "portable/snn_step.pt2"
            except PortableExportError as e:  # the SNN itself is fine; say plainly what is missing
                summary["notes"].append(f"portable artefact not written: torch.export failed ({e})")
        write_json(tmp / "summary.json", summary)
    return summary


def coverage_notes(ann: Graph, g: Graph, recipe: Any) -> list[str]:
    """One line per pass that was meant to spike some op type and left some of them analog, so a
    recipe that converts nothing (mueller2021 on a GELU model) says so instead of saying nothing."""
    from collections import Counter

    from snnconvert.ir.registry import has_flag
    from snnconvert.passes import PASSES

    before, after = Counter(n.op for n in ann.nodes), Counter(n.op for n in g.nodes)
    notes = []
    for name, _ in recipe.passes:
        for op in PASSES[name].spikes:
            if op == "*":
                continue
            left, had = after.get(op, 0), before.get(op, 0)
            if had and not left:
                continue
            activations = sorted(k for k in before if k != op and has_flag(k, "activation"))
            hint = (
                f"; its activations are {', '.join(f'{a} (x{before[a]})' for a in activations)}: "
                "the recipe spikezip_count spikes every op output"
                if activations and op == "Relu"
                else ""
            )
            if not had:
                notes.append(
                    f"{recipe.name}: {name} spikes {op}, and the model has none, so it converted nothing{hint}"
                )
            else:
                notes.append(
                    f"{recipe.name}: {name} converted {had - left} of {had} {op} nodes; {left} stay analog"
                )
    return notes


def conversion_summary(g: Graph) -> dict[str, Any]:
    from collections import Counter

    from snnconvert.ir.ops_spiking import spike_format
    from snnconvert.ir.registry import get, has_flag

    nodes = []
    varying: set[str] = set()  # values that change over time: downstream of a neuron
    for n in g.nodes:
        if get(n.op).spiking or any(i in varying for i in n.inputs):
            varying.update(n.outputs)
    for n in g.nodes:
        ins = [g.values[i].domain for i in n.inputs if i in g.values]
        out = g.values[n.outputs[0]].domain
        op = get(n.op)
        row = {"node": n.name, "op": n.op, "inputs": ins, "output": out, "spiking": op.spiking}
        if op.events is not None:  # neurons inside that settle within one application
            row["neurons_inside"] = True
            row["analog_parts"] = op.analog_parts
        nodes.append(row)
    analog = [
        (row, n)
        for row, n in zip(nodes, g.nodes, strict=True)
        if not row["spiking"] and not row.get("neurons_inside") and row["output"] == "analog"
    ]
    return {
        "recipe": g.meta.get("recipe"),
        "coding": g.meta.get("coding"),
        "neurons": sum(1 for n in nodes if n["spiking"]),
        "spiking_subnetworks": [n["node"] for n in nodes if n.get("neurons_inside")],
        "spike_values": sum(1 for v in g.values.values() if v.domain == "spike"),
        "spikes": spike_format(g),  # what one event is: levels per step, signed
        "analog_nodes": [row["node"] for row, _ in analog],
        # non-linear ops that stay analog, applied to their inputs' running values (rate: means,
        # count: totals); simulate's per-layer fidelity measures each
        "analog_nonlinear": dict(
            Counter(
                n.op
                for _, n in analog
                if n.outputs[0] in varying
                and any(has_flag(n.op, f, n.attrs) for f in ("activation", "normalization"))
            )
        ),
        "nodes": nodes,
        "notes": g.meta.get("notes", []),
    }


# -- simulate --------------------------------------------------------------------------------------
def load_snn(snn_dir: str | Path) -> tuple[Graph, Graph]:
    d = Path(snn_dir)
    if not d.is_dir():
        raise InputError(f"{d}: no such SNN directory (write one with `snnconvert convert`)")
    return load_graph(d), load_graph(d / "ann")


def run_simulation(
    snn_dir: str | Path,
    data: str | Path,
    timesteps: int,
    out: str | Path | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    samples: int | None = None,
    analog_mode: str | None = None,
    progress: Callable[..., None] | None = None,  # progress(done, total=None)
    memory_budget: str | None = None,  # "6G", "512M"; default a quarter of memory
    time_chunk: int | None = None,
    reaching: bool | None = None,
) -> dict[str, Any]:
    """`simulate`; launched by torchrun (WORLD_SIZE > 1), the processes share the batches out and
    the first one writes the merged result."""
    import numpy as np

    from snnconvert.atomic import atomic_path
    from snnconvert.data.files import load_dataset
    from snnconvert.sim.budget import parse_budget
    from snnconvert.sim.distributed import process_group
    from snnconvert.sim.run import check_timesteps, result_json, simulate

    check_timesteps(timesteps)
    budget = parse_budget(memory_budget)
    started = time.perf_counter()
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available here")
    snn, ann = load_snn(snn_dir)
    ds = load_dataset(data, snn)
    loaded = time.perf_counter() - started
    with process_group(device) as group:
        rank = 0 if group is None else group.rank()
        res = simulate(
            snn,
            ann,
            ds,
            timesteps,
            batch_size=batch_size,
            device=device,
            analog_mode=analog_mode,
            samples=samples,
            progress=progress if rank == 0 else None,
            memory_budget=budget,
            time_chunk=time_chunk,
            group=group,
            reaching=reaching,
        )
    j = result_json(res, snn)
    # (the process's start and imports come before: a whole command's wall time less `total`)
    j["execution"]["seconds"] = {"load": round(loaded, 3), **j["execution"]["seconds"]}
    j["execution"]["seconds"]["total"] = round(time.perf_counter() - started, 3)
    j["data"] = Path(data).name
    j["analog_mode"] = analog_mode or snn.meta.get("analog_mode", "mean")
    if rank != 0:
        return j  # the first process writes
    d = Path(snn_dir)
    with atomic_path(d / "events.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k: (v / res.samples).cpu().numpy() for k, v in sorted(res.events.items())})
    # the times go beside the result, not in it: two runs of the same work write the same bytes
    timing = {k: j["execution"][k] for k in TIMING_KEYS if k in j["execution"]}
    stored = {**j, "execution": {k: v for k, v in j["execution"].items() if k not in timing}}
    write_json(d / "simulation.json", stored)
    write_json(d / "simulation_timing.json", timing)
    if out is not None:
        write_json(out, stored)
    return j  # (with the times, for the console)


TIMING_KEYS = ("seconds", "snn_steps_by_op")  # of a simulation's `execution`: wall times


# -- energy-report ---------------------------------------------------------------------------------
def energy_report(
    snn_dir: str | Path,
    mac_pj: float | None = None,
    ac_pj: float | None = None,
    convention: str = "measured",
    mem_pj_per_byte: float = 0.0,
    charge_other: bool | None = None,
    op_pj: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The energy report of an SNN directory that `simulate` has run (snnconvert.energy.report)."""
    import numpy as np

    from snnconvert.energy.report import build_report, check_convention

    d = Path(snn_dir)
    check_convention(convention)
    snn, _ann = load_snn(d)
    if not (d / "simulation.json").is_file() or not (d / "events.npz").is_file():
        raise InputError(f"{d}: no simulation result; run `snnconvert simulate {d} --data DATA.npz` first")
    sim = read_json(d / "simulation.json", "simulation result")
    try:
        with np.load(d / "events.npz", allow_pickle=False) as z:
            events = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise InputError(
            f"{d / 'events.npz'}: cannot read event counts ({type(e).__name__}); rerun `snnconvert simulate`"
        ) from None
    return build_report(
        snn, sim, events, mac_pj, ac_pj, convention, mem_pj_per_byte, str(d), charge_other, op_pj
    )


def run_energy_report(
    snn_dir: str | Path,
    out: str | Path | None = None,
    csv_path: str | Path | None = None,
    md_path: str | Path | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """`energy_report` (settings: mac_pj, ac_pj, convention, mem_pj_per_byte, charge_other, op_pj), written to the SNN
    directory's energy.json, and to `out` (JSON), `csv_path` and `md_path` when given."""
    from snnconvert.atomic import write_text
    from snnconvert.report.energy import to_csv, to_markdown

    rep = energy_report(snn_dir, **settings)
    write_json(Path(snn_dir) / "energy.json", rep)
    if out is not None:
        write_json(out, rep)
    if csv_path is not None:
        write_text(csv_path, to_csv(rep))
    if md_path is not None:
        write_text(md_path, to_markdown(rep))
    return rep


def read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{path}: missing ({what})")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
