"""PNG plots (matplotlib is an optional extra: `pip install snnconvert[plot]`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from snnconvert.atomic import atomic_path
from snnconvert.errors import InputError


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install 'snnconvert[plot]'") from None


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(j: dict[str, Any], path: str | Path) -> None:
    plt = _figure()
    T = j["timesteps"]
    ts = list(range(1, T + 1))
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    if j.get("labelled"):
        ax.plot(ts, [100 * a for a in j["snn_accuracy"]], label="SNN accuracy")
        ax.axhline(
            100 * j["ann_accuracy"], color="k", ls="--", lw=1, label=f"ANN {100 * j['ann_accuracy']:.2f}%"
        )
        if j.get("limit_accuracy") is not None:
            ax.axhline(
                100 * j["limit_accuracy"],
                color="tab:red",
                ls=":",
                lw=1,
                label=f"converged (T -> inf) {100 * j['limit_accuracy']:.2f}%",
            )
    if j["agreement"] and j["agreement"][0] is not None:
        ax.plot(ts, [100 * a for a in j["agreement"]], label="agreement with ANN", alpha=0.8)
    else:
        ax.plot(
            ts, [100 * c if c is not None else float("nan") for c in j["cosine"]], label="output cosine x 100"
        )
    ax.set_xlabel("timestep t")
    ax.set_ylabel("%")
    ax.set_title(f"{j['coding']} coding, {j['samples']} samples")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def plot_energy(rep: dict[str, Any], path: str | Path, top: int = 30) -> None:
    plt = _figure()
    rows = [r for r in rep["layers"] if r["energy_ann_pj"] > 0 or r["energy_snn_pj"] > 0]
    rows = sorted(rows, key=lambda r: -max(r["energy_ann_pj"], r["energy_snn_pj"]))[:top]
    names = [r["name"][-28:] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(rows) + 1.5), dpi=120)
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [r["energy_ann_pj"] for r in rows], height=0.4, label="ANN")
    ax.barh([i - 0.2 for i in y], [r["energy_snn_pj"] for r in rows], height=0.4, label="SNN")
    ax.set_yticks(list(y), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("energy per sample (pJ)")
    ax.set_xscale("symlog")
    ax.legend()
    ax.set_title(f"per-layer energy ({rep['convention']} convention)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
