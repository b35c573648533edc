"""The energy-report table printed by the CLI."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _n(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1e6:
        return f"{v / 1e6:,.2f}M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:,.1f}k"
    return f"{v:.3g}"


def print_energy(rep: dict[str, Any], console: Console, max_rows: int = 40) -> None:
    c = rep["constants"]
    t = Table(
        title=f"energy per sample: {rep['recipe']} ({rep['coding']}, T={rep['timesteps']}, {rep['convention']} convention)"
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
        f"Still analog: {', '.join(rep['analog_ops']) or 'nothing'}."
    )
    console.print(t)
    if len(rep["layers"]) > max_rows:
        console.print(f"({len(rep['layers']) - max_rows} more layers in the JSON report)")
