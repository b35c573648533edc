"""The `snnconvert` command line: thin shells over snnconvert.api, rich summaries, one-line errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from snnconvert import __version__
from snnconvert.atomic import check_output
from snnconvert.errors import SnnConvertError

app = typer.Typer(
    help="Convert a trained transformer (ONNX) into a spiking neural network and report, per layer, "
    "what the conversion costs in accuracy and saves in energy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)
_state = {"debug": False}


def _version(v: bool) -> None:
    if v:
        print(f"snnconvert {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _state["debug"] = debug


@contextmanager
def _progress(total: int | None, label: str) -> Iterator[Callable[..., None]]:
    """A progress bar on a terminal; nothing when output is redirected. tick(k, total=None)
    advances it by k and, once the work knows it (data loaded), sets its total."""
    if not err.is_terminal:
        yield lambda k, total=None: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),  # "0/?" until the total is known, never "0/0"
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as p:
        task = p.add_task(label, total=total or None)

        def tick(k: int, total: int | None = None) -> None:
            if total:
                p.update(task, total=total)
            p.advance(task, k)

        yield tick


def _parse_shapes(specs: list[str] | None) -> dict[str, list[int]] | None:
    from snnconvert.errors import InputError

    if not specs:
        return None
    shapes = {}
    for s in specs:
        name, _, dims = s.partition("=")
        try:
            shape = [-1 if d.strip().upper() in ("N", "B", "-1") else int(d) for d in dims.split(",")]
        except ValueError:
            raise InputError(f"--input-shape '{s}': expected NAME=N,d1,d2,... (integers)") from None
        if not name.strip():
            raise InputError(f"--input-shape '{s}': the input name is missing (NAME=N,d1,d2,...)")
        if any(d <= 0 and d != -1 for d in shape):
            raise InputError(f"--input-shape '{s}': dimensions other than N must be positive integers")
        shapes[name] = shape
    return shapes


InputShape = Annotated[
    list[str] | None,
    typer.Option(
        "--input-shape", help="Fix a dynamic input: NAME=N,128 (N = the samples' axis). Repeatable."
    ),
]
BatchAxis = Annotated[
    list[str] | None,
    typer.Option(
        "--batch-axis",
        help="NAME=AXIS: the axis of an input that holds the samples, when it is not the first "
        "(e.g. x=1 for a sequence-first [seq, batch, d] input). Repeatable; recorded in the SNN directory.",
    ),
]


def _parse_pairs(specs: list[str] | None, convert: Callable[[str], Any], bad: str) -> dict[str, Any] | None:
    """NAME=VALUE options (repeatable) as {NAME: convert(VALUE)}; `bad` formats the one-line
    error for a spec that is not NAME=VALUE or whose VALUE `convert` refuses."""
    from snnconvert.errors import InputError

    if not specs:
        return None
    out = {}
    for s in specs:
        name, sep, value = s.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = convert(value)
        except ValueError:
            raise InputError(bad.format(s)) from None
    return out


def _parse_axes(specs: list[str] | None) -> dict[str, int] | None:
    return _parse_pairs(specs, int, "--batch-axis '{}': expected NAME=AXIS (an integer axis)")


def _parse_op_pj(specs: list[str] | None) -> dict[str, float] | None:
    return _parse_pairs(specs, float, "--op-pj expects KIND=PJ (e.g. exp=20), got '{}'")


ModelArg = Annotated[
    Path,
    typer.Argument(help="Model: .onnx, .pt2 (torch.export), or a state_dict .pt/.pth with --model-factory."),
]
ModelFactoryOpt = Annotated[
    str | None,
    typer.Option(
        "--model-factory",
        help="module:function that builds the nn.Module a state_dict belongs to (your code, imported "
        "from the working directory or PYTHONPATH); give --input-shape for forward's arguments.",
    ),
]
ModelKwargsOpt = Annotated[
    str | None, typer.Option("--model-kwargs", help="JSON object of keyword arguments for --model-factory.")
]


def _parse_factory(spec: str | None, kwargs: str | None) -> Any:
    """--model-factory and --model-kwargs as a ModelFactory (None without a factory)."""
    import json

    from snnconvert.errors import InputError

    if spec is None:
        if kwargs is not None:
            raise InputError("--model-kwargs needs --model-factory")
        return None
    args = {}
    if kwargs is not None:
        try:
            args = json.loads(kwargs)
        except ValueError as e:
            raise InputError(f"--model-kwargs: not valid JSON ({e})") from None
        if not isinstance(args, dict):
            raise InputError(
                f'--model-kwargs: expected a JSON object {{"name": value}}, got {type(args).__name__}'
            )
    from snnconvert.frontends.torch import ModelFactory

    return ModelFactory(spec, args)


# -- commands --------------------------------------------------------------------------------------
@app.command()
def example(
    directory: Annotated[
        Path | None, typer.Argument(help="Directory to write into (created).", show_default=False)
    ] = None,
    model: Annotated[str, typer.Option("--model", help="Zoo model to write (see --list).")] = "digits_vit",
    list_models: Annotated[
        bool, typer.Option("--list", help="List the zoo's models, one line each, and exit.")
    ] = False,
) -> None:
    """Write a zoo model (model.onnx) with its calib.npz and test.npz; default: the digits ViT."""
    from snnconvert.api import example_sources, list_examples, write_example
    from snnconvert.errors import InputError

    if list_models:
        rows = list_examples()
        width = max(len(r["name"]) for r in rows)
        rwidth = max(len(r["recipe"]) for r in rows)
        for r in rows:  # print, not rich: one line per model whatever the terminal width
            acc = "-" if r["test_accuracy"] is None else f"{100 * r['test_accuracy']:6.2f} %"
            state = f"  (not shipped: {', '.join(r['missing'])})" if r["missing"] else ""
            print(
                f"{r['name']:<{width}}  recipe {r['recipe']:<{rwidth}}  ANN test accuracy {acc} "
                f"(n = {r['test_samples']})  {r['description']}{state}"
            )
        return
    if directory is None:
        raise InputError("example: give a DIR to write into, or --list to see the zoo's models")
    example_sources(model)  # an unknown or unshipped model: fail before anything is created
    check_output(directory, kind="dir")
    files = write_example(directory, model)
    out.print(f"wrote {', '.join(files)} ({model}) into {directory}")
    out.print(
        f"next: snnconvert calibrate {directory}/model.onnx --data {directory}/calib.npz --out {directory}/calib.json"
    )


@app.command()
def inspect(
    model: ModelArg,
    input_shape: InputShape = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the summary as JSON.")] = None,
    batch_axis: BatchAxis = None,
    model_factory: ModelFactoryOpt = None,
    model_kwargs: ModelKwargsOpt = None,
) -> None:
    """Inputs/outputs, op histogram, and which nodes each recipe can convert."""
    from snnconvert.api import load_model
    from snnconvert.inspect import inspect_graph

    check_output(json_out)
    factory = _parse_factory(model_factory, model_kwargs)
    g = load_model(model, _parse_shapes(input_shape), _parse_axes(batch_axis), factory)
    info = inspect_graph(g)
    t = Table(title=f"{model.name}: {len(g.nodes)} nodes, {info['parameters']:,} parameters")
    t.add_column("kind")
    t.add_column("name")
    t.add_column("shape")
    t.add_column("dtype")
    for io in info["inputs"]:
        t.add_row("input", io["name"], str(io["shape"]), io["dtype"])
    for io in info["outputs"]:
        t.add_row("output", io["name"], str(io["shape"]), io["dtype"])
    out.print(t)
    h = Table(title="ops")
    for c in ("op", "count", "MACs/sample"):
        h.add_column(c, justify="right" if c != "op" else "left")
    for op, row in info["ops"].items():
        h.add_row(op, str(row["count"]), f"{row['macs']:,}")
    out.print(h)
    r = Table(title="recipes")
    for c in ("recipe", "coding", "ev/step", "spiking nodes", "analog nodes", "what spikes"):
        r.add_column(c)
    for name, row in info["recipes"].items():
        lo, hi = row["levels_per_event_min"], row["levels_per_event"]
        levels = str(hi) if lo == hi else f"{lo}-{hi}"  # spike_all's tolerance: more where L is raised
        r.add_row(name, row["coding"], levels, str(row["spiking"]), str(row["analog"]), row["what"])
    out.print(r)
    if json_out is not None:
        from snnconvert.atomic import write_json

        write_json(json_out, info)


@app.command()
def calibrate(
    model: ModelArg,
    data: Annotated[Path, typer.Option("--data", help="Calibration data (.npz).")],
    out_file: Annotated[Path, typer.Option("--out", help="Calibration file to write (JSON).")],
    samples: Annotated[int | None, typer.Option("--samples", help="Use only the first N samples.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 64,
    input_shape: InputShape = None,
    batch_axis: BatchAxis = None,
    model_factory: ModelFactoryOpt = None,
    model_kwargs: ModelKwargsOpt = None,
) -> None:
    """Record robust percentiles of every activation that may spike (streaming, memory-bounded)."""
    import numpy as np

    from snnconvert.api import run_calibration

    check_output(out_file)
    factory = _parse_factory(model_factory, model_kwargs)
    total = samples or 0
    if not total:
        try:
            with np.load(data) as z:
                total = len(z[z.files[0]])
        except Exception:
            total = 0
    with _progress(total, "calibrating") as tick:
        info = run_calibration(
            model,
            data,
            out_file,
            samples=samples,
            batch_size=batch_size,
            progress=tick,
            input_shapes=_parse_shapes(input_shape),
            batch_axes=_parse_axes(batch_axis),
            factory=factory,
        )
    out.print(f"calibrated {info['tensors']} tensors on {info['samples']} samples -> {out_file}")


@app.command()
def convert(
    model: ModelArg,
    calibration: Annotated[Path, typer.Option("--calibration", help="File from `snnconvert calibrate`.")],
    recipe: Annotated[str, typer.Option("--recipe", help="Built-in recipe name or a YAML file.")],
    out_dir: Annotated[Path, typer.Option("--out", help="SNN directory to write.")],
    percentile: Annotated[
        float | None, typer.Option("--percentile", help="Override the recipe's percentile.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a recipe setting (repeatable): a field (timesteps=16), PASS.PARAM "
            "(spike_all.levels=8) or a PARAM only one pass has (masking_ratio=0.5); VALUE is YAML.",
        ),
    ] = None,
    input_shape: InputShape = None,
    batch_axis: BatchAxis = None,
    model_factory: ModelFactoryOpt = None,
    model_kwargs: ModelKwargsOpt = None,
) -> None:
    """Apply a recipe's passes and write the spiking IR, the ANN IR and a portable PyTorch SNN."""
    from snnconvert.api import run_conversion
    from snnconvert.report.spikes import describe_spikes

    check_output(out_dir, kind="dir")
    s = run_conversion(
        model,
        calibration,
        recipe,
        out_dir,
        percentile=percentile,
        input_shapes=_parse_shapes(input_shape),
        batch_axes=_parse_axes(batch_axis),
        factory=_parse_factory(model_factory, model_kwargs),
        overrides=set_ or (),
    )
    out.print(
        f"[bold]{s['recipe']}[/] ({s['coding']} coding): {s['neurons']} neuron layers, "
        + (f"{len(s['spiking_subnetworks'])} spiking softmax, " if s["spiking_subnetworks"] else "")
        + f"{len(s['analog_nodes'])} analog nodes; {describe_spikes(s['spikes'])} -> {out_dir}"
    )
    if s["analog_nonlinear"]:
        on = "totals" if s["coding"] == "count" else "means"
        ops = ", ".join(f"{op} x{k}" for op, k in sorted(s["analog_nonlinear"].items()))
        out.print(f"  analog, on running {on}: {ops}")
    for note in s["notes"]:
        out.print(f"  note: {note}")


@app.command()
def simulate(
    snn_dir: Annotated[Path, typer.Argument(help="SNN directory from `snnconvert convert`.")],
    data: Annotated[Path, typer.Option("--data", help="Test data (.npz), labels in 'y' optional.")],
    timesteps: Annotated[int, typer.Option("--timesteps", "-T", help="Simulation steps.")] = 50,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the result JSON here too.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Accuracy-vs-t plot (PNG).")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 64,
    samples: Annotated[int | None, typer.Option("--samples", help="Use only the first N samples.")] = None,
    analog_mode: Annotated[
        str | None, typer.Option("--analog-mode", help="mean or step (rate coding).")
    ] = None,
    memory_budget: Annotated[
        str | None,
        typer.Option(
            "--memory-budget",
            help="Memory to plan batches and time chunks for, e.g. 6G or 512M [default: a quarter of RAM].",
        ),
    ] = None,
    reaching: Annotated[
        bool | None,
        typer.Option(
            "--reaching/--no-reaching",
            help="Per-layer fidelity also over the entries that reach the output (one gradient pass "
            "of the ANN per batch) [default: for models with a mask or id input].",
        ),
    ] = None,
) -> None:
    """Run the SNN for T steps against the ANN on the same data: accuracy per step, spikes per layer.
    Launched by torchrun, the processes share the batches and the first one writes the result."""
    from snnconvert.api import run_simulation
    from snnconvert.errors import InputError
    from snnconvert.report.simulation import print_simulation

    if device != "cpu" and not (device == "cuda" or device.startswith("cuda:") and device[5:].isdigit()):
        raise InputError(f"--device must be cpu, cuda or cuda:N, got '{device}'")

    for f in (out_file, plot, snn_dir / "simulation.json" if snn_dir.is_dir() else None):
        check_output(f)
    if plot is not None:
        from snnconvert.report.plots import require_matplotlib

        require_matplotlib()
    with _progress(None, f"simulating T={timesteps}") as tick:
        j = run_simulation(
            snn_dir,
            data,
            timesteps,
            out=out_file,
            batch_size=batch_size,
            device=device,
            samples=samples,
            analog_mode=analog_mode,
            progress=tick,
            memory_budget=memory_budget,
            reaching=reaching,
        )
    if int(os.environ.get("RANK", "0")) != 0:
        return  # one report from a torchrun launch: the first process's
    print_simulation(j, out)
    if plot is not None:
        from snnconvert.report.plots import plot_accuracy

        plot_accuracy(j, plot)
        out.print(f"plot -> {plot}")


@app.command("energy-report")
def energy_report(
    snn_dir: Annotated[Path, typer.Argument(help="SNN directory, after `snnconvert simulate`.")],
    out_file: Annotated[Path | None, typer.Option("--out", help="Report JSON.")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Per-layer table as CSV.")] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Per-layer table as Markdown.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Per-layer energy bar chart (PNG).")] = None,
    mac_pj: Annotated[
        float | None, typer.Option("--mac-pj", help="Energy of one MAC (pJ), default 4.6.")
    ] = None,
    ac_pj: Annotated[
        float | None, typer.Option("--ac-pj", help="Energy of one AC (pJ), default 0.9.")
    ] = None,
    convention: Annotated[
        str, typer.Option("--convention", help="measured, sit or spikformer.")
    ] = "measured",
    mem_pj_per_byte: Annotated[
        float, typer.Option("--mem-pj-per-byte", help="Memory-access energy (off: 0).")
    ] = 0.0,
    charge_other: Annotated[
        bool | None,
        typer.Option(
            "--charge-other/--no-charge-other",
            help="Charge elementwise work (add, mul, div, exp, sqrt, compare; neuron updates) in the ANN and "
            "the SNN [default: charged under the measured convention, not under sit / spikformer].",
            show_default=False,
        ),
    ] = None,
    op_pj: Annotated[
        list[str] | None,
        typer.Option("--op-pj", help="KIND=PJ: the energy of one elementwise op, e.g. exp=20 (repeatable)."),
    ] = None,
) -> None:
    """Per layer: ANN MACs vs SNN ACs from measured spikes, energy, and what still runs analog."""
    from snnconvert.api import run_energy_report
    from snnconvert.report.energy import print_energy

    for f in (out_file, csv, markdown, plot, snn_dir / "energy.json" if snn_dir.is_dir() else None):
        check_output(f)
    if plot is not None:
        from snnconvert.report.plots import require_matplotlib

        require_matplotlib()
    rep = run_energy_report(
        snn_dir,
        out_file,
        csv,
        markdown,
        mac_pj=mac_pj,
        ac_pj=ac_pj,
        convention=convention,
        mem_pj_per_byte=mem_pj_per_byte,
        charge_other=charge_other,
        op_pj=_parse_op_pj(op_pj),
    )
    print_energy(rep, out)
    if plot is not None:
        from snnconvert.report.plots import plot_energy

        plot_energy(rep, plot)
        out.print(f"plot -> {plot}")


def main(argv: list[str] | None = None) -> Any:
    """Entry point: user errors become one line on stderr and a non-zero exit, never a traceback."""
    try:
        return app(args=argv, standalone_mode=False)
    except SnnConvertError as e:
        if _state["debug"]:
            raise
        err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted", markup=False)
        sys.exit(130)
    except Exception as e:  # click usage errors and genuine bugs
        # typer >= 0.20 raises its vendored click's exceptions (typer._click), older ones click's own
        if any(c.__name__ == "ClickException" for c in type(e).__mro__) and hasattr(e, "format_message"):
            err.print(f"error: {e.format_message()}", markup=False, highlight=False, soft_wrap=True)
            sys.exit(e.exit_code)
        if _state["debug"] or "--debug" in sys.argv:
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        err.print(
            f"internal error: {type(e).__name__}: {first} (rerun with --debug for the traceback)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
