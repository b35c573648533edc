"""The energy report: per layer ANN vs SNN energy under a stated convention and constants.

The conventions are stated in ``CONVENTION_NOTE``, which every report carries (``convention_note``).
It reads the spiking graph and the simulation's results as data (api reads the SNN directory);
snnconvert.report.energy formats it (table, CSV, Markdown).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snnconvert.energy.count import count_nodes
from snnconvert.errors import InputError
from snnconvert.ir.graph import Graph
from snnconvert.ir.ops_spiking import spike_format
from snnconvert.ir.registry import get, has_flag

CONVENTIONS = ("measured", "sit", "spikformer")
DEFAULT_MAC_PJ = 4.6
DEFAULT_AC_PJ = 0.9
SOURCE = "Horowitz, ISSCC 2014, 45 nm: 32-bit float MAC 4.6 pJ, AC 0.9 pJ"
#: pJ per elementwise operation (32-bit float, 45 nm): add and multiply are Horowitz's (ISSCC 2014);
#: a comparison is taken as an add, a division and a square root as 4 multiplies, an exponential as
#: 8 (iterative and polynomial evaluation): these multiples are our stated assumption, --op-pj
#: overrides any of them.
OTHER_PJ = {"add": 0.9, "cmp": 0.9, "mul": 3.7, "div": 14.8, "sqrt": 14.8, "exp": 29.6}
OTHER_SOURCE = (
    "add 0.9 pJ, multiply 3.7 pJ (Horowitz, ISSCC 2014, 45 nm fp32); comparison = add; "
    "division, square root = 4 multiplies; exponential = 8 multiplies (assumed)"
)
CONVENTION_NOTE = """Conventions (all per sample, spikes over all T steps):
- measured (ours): SNN ACs = measured input events x fan-out; every op fed by analog values
  costs its MACs each time it runs (once if its input is the same at every step, else T times).
- sit (Li et al. 2024): FLOPs_SNN(l) = FLOPs_ANN(l) x SpikeNum(l) / NeuronNum(l) for layers fed by
  spikes, charged at E_AC; layers fed by analog values charged FLOPs_ANN x E_MAC once.
- spikformer (Zhou et al. 2023): the first synaptic layer (encoding) at E_MAC every step, synaptic
  operations (events x fan-out) at E_AC, other analog layers at E_MAC per execution.
Elementwise work (exp, division, sqrt, comparisons, additions of analog values, neuron updates) is
counted and listed per layer, never dropped, and by default (measured convention) charged, in the
ANN and in the SNN alike, at the per-operation energies in `constants.other_pj` (--op-pj KIND=PJ
overrides one). The papers' conventions (sit, spikformer) leave it out, as the papers do, unless
--charge-other asks; --no-charge-other leaves it out of the measured one."""


def charges_other(convention: str, charge_other: bool | None) -> bool:
    """Whether elementwise work is charged: as asked, else by the convention (measured: yes)."""
    return convention == "measured" if charge_other is None else bool(charge_other)


def check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise InputError(f"--convention must be one of {', '.join(CONVENTIONS)}, got '{convention}'")


def build_report(
    snn: Graph,
    sim: dict[str, Any],
    events: dict[str, np.ndarray],
    mac_pj: float | None = None,
    ac_pj: float | None = None,
    convention: str = "measured",
    mem_pj_per_byte: float = 0.0,
    snn_dir: str = "",
    charge_other: bool | None = None,
    op_pj: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The report of a spiking graph from its simulation result (`sim`, simulation.json) and the
    events it recorded per sample (events.npz); `snn_dir` names where they came from.
    `charge_other`: elementwise work charged at `OTHER_PJ` (with `op_pj`'s overrides); None: as
    the convention has it (`charges_other`)."""
    check_convention(convention)
    charge_other = charges_other(convention, charge_other)
    other_pj = other_energies(op_pj)
    recipe_energy = snn.meta.get("energy", {}) or {}
    e_mac = float(mac_pj if mac_pj is not None else recipe_energy.get("mac_pj", DEFAULT_MAC_PJ))
    e_ac = float(ac_pj if ac_pj is not None else recipe_energy.get("ac_pj", DEFAULT_AC_PJ))
    checked = [("--mac-pj", e_mac), ("--ac-pj", e_ac), ("--mem-pj-per-byte", mem_pj_per_byte)]
    for name, v in checked + [(f"--op-pj {k}", v) for k, v in other_pj.items()]:
        if not np.isfinite(v) or v < 0:
            raise InputError(f"{name} must be a non-negative number, got {v}")
    T = int(sim["timesteps"])
    static = {layer["name"]: bool(layer.get("static", False)) for layer in sim["layers"]}
    fidelity = {layer["name"]: layer for layer in sim["layers"]}
    rows = count_nodes(snn, events, static, T)
    first_synaptic = next(
        (r.name for r in rows if has_flag(r.op, "synaptic", snn.producer(r.name).attrs)), None
    )
    layers = []
    for r in rows:
        ann_e = r.ann_macs * e_mac
        acs, macs = r.snn_acs, r.snn_macs
        if convention == "sit":
            if r.spike_inputs:
                in_neurons = _spike_in_neurons(snn, r.name)
                acs, macs = r.ann_macs * (r.events_in / max(1, in_neurons)), 0.0
            else:
                acs, macs = 0.0, r.ann_macs
        elif convention == "spikformer" and r.name == first_synaptic and not r.spike_inputs:
            macs = r.ann_macs * T
        snn_e = acs * e_ac + macs * e_mac
        other_snn = _other_energy(r.other, other_pj)
        other_ann = _other_energy(r.ann_other, other_pj)
        if charge_other:
            snn_e += other_snn
            ann_e += other_ann
        mem = 0.0
        if mem_pj_per_byte:
            mem = _bytes_moved(snn, r) * mem_pj_per_byte
            snn_e += mem
            ann_e += _bytes_moved(snn, r, ann=True) * mem_pj_per_byte
        fid = fidelity.get(r.name, {})
        layers.append(
            {
                "name": r.name,
                "op": r.op,
                "domain": r.domain,
                "spike_driven": bool((r.spike_inputs or r.internal) and acs > 0),
                "ann_macs": r.ann_macs,
                "snn_acs": acs,
                "snn_macs": macs,
                "executions": r.executions,
                "events_in": r.events_in,
                "firing_rate": r.events_in / max(1, _spike_in_neurons(snn, r.name) * T)
                if r.spike_inputs
                else None,
                "other_ops": r.other,
                "cosine": fid.get("cosine"),
                "rel_error": fid.get("rel_error"),
                "energy_ann_pj": ann_e,
                "energy_snn_pj": snn_e,
                "energy_memory_pj": mem,
                "energy_other_ann_pj": other_ann,  # in energy_*_pj when charge_other
                "energy_other_snn_pj": other_snn,
                "ratio": snn_e / ann_e if ann_e > 0 else None,
            }
        )
    keys = (
        "ann_macs",
        "snn_acs",
        "snn_macs",
        "energy_ann_pj",
        "energy_snn_pj",
        "energy_memory_pj",
        "energy_other_ann_pj",
        "energy_other_snn_pj",
    )
    total: dict[str, Any] = {k: float(sum(layer[k] for layer in layers)) for k in keys}
    syn = total["snn_acs"] + total["snn_macs"]
    total["spike_driven_fraction"] = total["snn_acs"] / syn if syn > 0 else 0.0
    total["ratio"] = total["energy_snn_pj"] / total["energy_ann_pj"] if total["energy_ann_pj"] > 0 else None
    total["energy_saving"] = 1.0 - total["ratio"] if total["ratio"] is not None else None
    other: dict[str, float] = {}
    for layer in layers:
        for k, v in layer["other_ops"].items():
            other[k] = other.get(k, 0.0) + v
    total["other_ops"] = other
    analog = sorted(
        {
            f"{layer['op']}"
            for layer in layers
            if layer["snn_macs"] > 0
            or (layer["other_ops"] and not layer["spike_driven"] and not get(layer["op"]).spiking)
        }
        | {
            f"{layer['op']} ({get(layer['op']).analog_parts})"
            for layer in layers
            if get(layer["op"]).analog_parts
        }
    )
    return {
        "snn_dir": snn_dir,
        "recipe": snn.meta.get("recipe"),
        "coding": snn.meta.get("coding"),
        "timesteps": T,
        "samples": sim["samples"],
        "convention": convention,
        "spikes": spike_format(snn),  # what one event is: levels per step, signed
        "constants": {
            "mac_pj": e_mac,
            "ac_pj": e_ac,
            "mem_pj_per_byte": mem_pj_per_byte,
            "source": SOURCE,
            "charge_other": charge_other,
            "other_pj": other_pj,
            "other_source": OTHER_SOURCE,
        },
        "convention_note": CONVENTION_NOTE,
        "analog_ops": analog,
        "layers": layers,
        "total": total,
        "accuracy": {
            "ann": sim.get("ann_accuracy"),
            "snn_at_T": sim["snn_accuracy"][-1] if sim.get("snn_accuracy") else None,
        },
    }


def other_energies(overrides: dict[str, float] | None) -> dict[str, float]:
    """OTHER_PJ with overrides (an unknown kind is a one-line error; build_report checks values)."""
    unknown = sorted(set(overrides or {}) - set(OTHER_PJ))
    if unknown:
        raise InputError(f"--op-pj {unknown[0]}: unknown operation (known: {', '.join(OTHER_PJ)})")
    return {**OTHER_PJ, **{k: float(v) for k, v in (overrides or {}).items()}}


def _other_energy(counts: dict[str, float], pj: dict[str, float]) -> float:
    # a kind without an energy of its own (none today: the registry's costs use OTHER_PJ's
    # kinds) is charged as a multiply rather than left free
    return float(sum(v * pj.get(k, pj["mul"]) for k, v in counts.items()))


def _spike_in_neurons(g, out: str) -> int:
    return sum(g.values[i].numel for i in _spike_inputs(g, out))


def _spike_inputs(g, out: str) -> list[str]:
    n = g.producer(out)
    return [i for i in n.inputs if i in g.values and g.values[i].domain == "spike"]


def _bytes_moved(g, r, ann: bool = False) -> float:
    """A simple memory model: weights read once per execution, activations read and written in
    float32 (ANN, analog) or as 4-byte address events (spikes)."""
    n = g.producer(r.name)
    w = sum(np.asarray(g.initializers[i]).nbytes for i in n.inputs if i in g.initializers)
    act_out = g.values[r.name].numel * 4
    if ann:
        act_in = sum(g.values[i].numel * 4 for i in n.inputs if i in g.values)
        return float(w + act_in + act_out)
    act_in = r.events_in * 4 + sum(
        g.values[i].numel * 4 * r.executions
        for i in n.inputs
        if i in g.values and g.values[i].domain != "spike"
    )
    return float(w * r.executions + act_in + act_out * r.executions)
