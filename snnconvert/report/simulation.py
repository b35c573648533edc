"""The `simulate` summary: accuracy curve checkpoints and the per-layer fidelity table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from snnconvert.ir.registry import has_flag
from snnconvert.report.spikes import describe_spikes


def checkpoints(T: int) -> list[int]:
    pts = sorted({t for t in (1, 2, 4, 8, 16, 32, 50, 64, 100, 128, 256, 512) if t <= T} | {T})
    return pts


def limit_notes(j: dict[str, Any], tolerance_pp: float = 0.5, min_cosine: float = 0.99) -> list[str]:
    """Say so when the conversion itself, not the number of steps, costs accuracy (or, for data
    without labels, output cosine)."""
    share = j.get("output_sample_share")
    if share is not None and share < 0.01:
        return [
            f"the ANN's output hardly depends on its input (only {100 * share:.2g} % of its energy varies "
            "between samples, e.g. positional embeddings dominating a random-init encoder): plain cosine "
            f"says little here; with the ANN's mean over the samples taken out it is "
            f"{_num(j.get('cosine_centred'))} (limit {_num(j.get('limit_cosine_centred'))})"
        ]
    cos = j.get("limit_cosine")
    if not j.get("labelled") and cos is not None and cos < min_cosine:
        return [
            f"the converted network itself reaches output cosine {cos:.4f} with every neuron settled: "
            "more timesteps cannot recover this; finer quantisation can (count coding: spike_all's "
            "per_channel and tolerance, e.g. --set per_channel=true --set tolerance=0.03)"
        ]
    if not j.get("labelled") or j.get("limit_accuracy") is None:
        return []
    gap = 100 * (j["ann_accuracy"] - j["limit_accuracy"])
    if gap <= tolerance_pp:
        return []
    return [
        f"the converted network itself scores {100 * j['limit_accuracy']:.2f}% with every neuron settled "
        f"({gap:.2f} pp below the ANN): more timesteps cannot recover this; check the conversion notes "
        "(e.g. maxpool_to_avgpool on a model trained with MaxPool, or a low --percentile)"
    ]


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def print_simulation(j: dict[str, Any], console: Console, max_layers: int = 40) -> None:
    n, T = j["samples"], j["timesteps"]
    t = Table(
        title=f"SNN vs ANN on {n} samples ({j['coding']} coding, {describe_spikes(j['spikes'])}, {T} steps; "
        f"1 sample = {100 / n:.3g} pp)"
    )
    t.add_column("t", justify="right")
    if j.get("labelled"):
        t.add_column("SNN acc", justify="right")
        t.add_column("loss vs ANN (pp)", justify="right")
    t.add_column("agreement", justify="right")
    t.add_column("output cosine", justify="right")
    for step in checkpoints(T):
        row = [str(step)]
        if j.get("labelled"):
            acc = j["snn_accuracy"][step - 1]
            row += [f"{100 * acc:.2f}%", f"{100 * (j['ann_accuracy'] - acc):+.2f}"]
        cos = j["cosine"][step - 1]
        agr = j["agreement"][step - 1]
        row += ["-" if agr is None else f"{100 * agr:.2f}%", _num(cos)]
        t.add_row(*row)
    limit_cos = j.get("limit_cosine")
    limit_cos = "" if limit_cos is None else f"output cosine {limit_cos:.4f}"
    if j.get("labelled"):
        t.caption = (
            f"ANN accuracy {100 * j['ann_accuracy']:.2f}%; the converted network converges to "
            f"{100 * j['limit_accuracy']:.2f}%{', ' + limit_cos if limit_cos else ''} (T -> inf)"
        )
    elif limit_cos:
        t.caption = f"the converted network converges to {limit_cos} (T -> inf)"
    console.print(t)
    for note in limit_notes(j):
        console.print(f"note: {note}")
    x = j.get("execution")
    if x:  # how it ran, so a batch lowered to fit the memory budget is not a surprise
        console.print(
            f"ran: batches of {x['batch_size']}, chunks of {x['time_chunk']} steps, "
            f"{x['processes']} process(es), budget {x['memory_budget_bytes'] / 2**30:.1f} GiB"
        )
    sec = (x or {}).get("seconds")
    if sec:  # where the time went (the process's start and imports not included)
        short = {
            "ann_reference": "ANN",
            "snn_steps": "SNN steps",
            "layer_fidelity": "layers",
            "limit_run": "limit",
        }
        parts = ", ".join(f"{short.get(k, k)} {v:.2f}" for k, v in sec.items() if k != "total")
        console.print(f"time (s) {sec.get('total', sum(sec.values())):.2f}: {parts}")
        by_op = list(x.get("snn_steps_by_op", {}).items())
        if by_op:
            top = ", ".join(f"{k} {v:.2f}" for k, v in by_op[:4])
            console.print(f"SNN steps by op (s): {top}{', ...' if len(by_op) > 4 else ''}")
    # where some entries cannot reach the output (padded tokens), the fidelity shown is over those
    # that can: a padded token's hidden state is free to differ, and its error hid the conversion's
    some = [r["reaching_share"] for r in j["layers"] if (r.get("reaching_share") or 1.0) < 1.0]
    key = "_reaching" if some else ""
    title = "per layer (decoded value at T vs ANN activation"
    lt = Table(title=title + (", over the entries that reach the output)" if some else ")"))
    for c in ("layer", "op", "domain", "spikes/sample", "firing rate", "cosine", "rel. error"):
        lt.add_column(c, justify="left" if c in ("layer", "op", "domain") else "right")
    # an analog reshape or permutation has its input's fidelity: nothing new to show (a Gather, Slice
    # or Concat does: the fidelity of the elements it keeps)
    shown = [r for r in j["layers"] if r["domain"] == "spike" or not has_flag(r["op"], "reorders")]
    for r in shown[:max_layers]:
        lt.add_row(
            r["name"][-40:],
            r["op"],
            r["domain"],
            f"{r['spikes_per_sample']:.1f}" if r["domain"] == "spike" else "-",
            f"{r['firing_rate']:.4f}" if r["domain"] == "spike" else "-",
            _num(r.get("cosine" + key, r["cosine"])),
            _num(r.get("rel_error" + key, r["rel_error"])),
        )
    notes = []
    if some:
        notes.append(
            f"{len(some)} layers have entries that cannot reach the output ({100 * min(some):.0f}-"
            f"{100 * max(some):.0f} % of them can: padding, a classifier's unused tokens); "
            "cosine_reaching / rel_error_reaching in the JSON, every entry in cosine / rel_error"
        )
    if len(shown) > max_layers:
        notes.append(f"{len(shown) - max_layers} more layers in the JSON result")
    lt.caption = "; ".join(notes) or None
    console.print(lt)
