"""The energy report as a table printed by the CLI, as CSV and as Markdown."""

from __future__ import annotations

import csv
import io
from typing import Any

from rich.console import Console
from rich.table import Table

from snnconvert.report.spikes import describe_spikes


def _n(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1e6:
        return f"{v / 1e6:,.2f}M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:,.1f}k"
    return f"{v:.3g}"


def other_work(rep: dict[str, Any]) -> str:
    """One sentence on the elementwise work: charged, or what charging it would add."""
    t, c = rep["total"], rep["constants"]
    ann, snn = t.get("energy_other_ann_pj", 0.0) / 1e6, t.get("energy_other_snn_pj", 0.0) / 1e6
    if c.get("charge_other"):
        return f"Elementwise work charged: ANN {ann:.3g} µJ, SNN {snn:.3g} µJ ({c['other_source']})."
    return (
        f"Elementwise work not charged ({rep['convention']} convention; --charge-other would add ANN "
        f"{ann:.3g} µJ, SNN {snn:.3g} µJ)."
    )


def print_energy(rep: dict[str, Any], console: Console, max_rows: int = 40) -> None:
    c = rep["constants"]
    t = Table(
        title=f"energy per sample: {rep['recipe']} ({rep['coding']}, T={rep['timesteps']}, "
        f"{describe_spikes(rep['spikes'])}, {rep['convention']} convention)"
    )
    for col in (
        "layer",
        "op",
        "domain",
        "ANN MACs",
        "SNN ACs",
        "SNN MACs",
        "rate",
        "cosine",
        "ANN pJ",
        "SNN pJ",
        "SNN/ANN",
    ):
        t.add_column(col, justify="left" if col in ("layer", "op", "domain") else "right")
    for r in rep["layers"][:max_rows]:
        t.add_row(
            r["name"][-32:],
            r["op"],
            r["domain"] + ("*" if r["spike_driven"] else ""),
            _n(r["ann_macs"]),
            _n(r["snn_acs"]),
            _n(r["snn_macs"]),
            "-" if r["firing_rate"] is None else f"{r['firing_rate']:.3f}",
            "-" if r["cosine"] is None else f"{r['cosine']:.4f}",
            _n(r["energy_ann_pj"]),
            _n(r["energy_snn_pj"]),
            "-" if r["ratio"] is None else f"{r['ratio']:.3f}",
        )
    tot = rep["total"]
    t.add_row(
        "TOTAL",
        "",
        "",
        _n(tot["ann_macs"]),
        _n(tot["snn_acs"]),
        _n(tot["snn_macs"]),
        "",
        "",
        _n(tot["energy_ann_pj"]),
        _n(tot["energy_snn_pj"]),
        "-" if tot["ratio"] is None else f"{tot['ratio']:.3f}",
        style="bold",
    )
    t.caption = (
        f"* spike-driven. E_MAC {c['mac_pj']} pJ, E_AC {c['ac_pj']} pJ ({c['source']}). "
        f"Spike-driven fraction of synaptic ops: {tot['spike_driven_fraction']:.3f}. "
        f"Still analog: {', '.join(rep['analog_ops']) or 'nothing'}. {other_work(rep)}"
    )
    console.print(t)
    if len(rep["layers"]) > max_rows:
        console.print(f"({len(rep['layers']) - max_rows} more layers in the JSON report)")


COLUMNS = (
    "name",
    "op",
    "domain",
    "ann_macs",
    "snn_acs",
    "snn_macs",
    "firing_rate",
    "cosine",
    "energy_ann_pj",
    "energy_snn_pj",
    "ratio",
)


def table_rows(rep: dict[str, Any]) -> list[list[Any]]:
    return [[layer[c] for c in COLUMNS] for layer in rep["layers"]]


def to_csv(rep: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(COLUMNS)
    for row in table_rows(rep):
        w.writerow(["" if v is None else v for v in row])
    t = rep["total"]
    w.writerow(
        [
            "TOTAL",
            "",
            "",
            t["ann_macs"],
            t["snn_acs"],
            t["snn_macs"],
            "",
            "",
            t["energy_ann_pj"],
            t["energy_snn_pj"],
            t["ratio"],
        ]
    )
    return buf.getvalue()


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.4g}"
    return str(v)


def to_markdown(rep: dict[str, Any]) -> str:
    c = rep["constants"]
    lines = [
        f"# Energy report: {rep['recipe']} ({rep['coding']} coding, T = {rep['timesteps']}, {rep['samples']} samples)",
        "",
        f"Convention: **{rep['convention']}**; E_MAC = {c['mac_pj']} pJ, E_AC = {c['ac_pj']} pJ ({c['source']}).",
        "",
        f"Events: {describe_spikes(rep['spikes'])}.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in table_rows(rep):
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    t = rep["total"]
    lines.append(
        f"| **total** | | | {_fmt(t['ann_macs'])} | {_fmt(t['snn_acs'])} | {_fmt(t['snn_macs'])} | | | "
        f"{_fmt(t['energy_ann_pj'])} | {_fmt(t['energy_snn_pj'])} | {_fmt(t['ratio'])} |"
    )
    lines += [
        "",
        f"Spike-driven fraction of synaptic operations: {t['spike_driven_fraction']:.3f}.",
        f"Still analog: {', '.join(rep['analog_ops']) or 'nothing'}.",
        other_work(rep),
    ]
    return "\n".join(lines) + "\n"
