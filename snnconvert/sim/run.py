"""`simulate`: the SNN over T steps against the ANN on the same samples, in one pass.

Accuracy and agreement are read at every step t <= T from one run; per layer, spike counts,
firing rates and the fidelity of the decoded value at T against the ANN activation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from snnconvert.data.files import Dataset
from snnconvert.errors import InputError, UnsupportedModelError
from snnconvert.ir.execute import Executor, sample_rows
from snnconvert.ir.graph import MASK_FLOOR, Graph
from snnconvert.ir.registry import EVALUATIONS, get
from snnconvert.sim.simulator import Sig, Simulator, internal_records, is_spike_record

MAX_TIMESTEPS = 100_000


@dataclass
class _Fid:
    dot: float = 0.0
    ss: float = 0.0
    aa: float = 0.0
    dd: float = 0.0

    def add(self, s: torch.Tensor, a: torch.Tensor) -> None:
        # sums accumulated in float64 without float64 copies of whole activations (ViT-Base's
        # attention maps made the copies cost more than the layers)
        s, a = s.float(), a.float()
        if bool((a <= MASK_FLOOR).any()):  # masked entries hold no data
            keep = a > MASK_FLOOR
            s, a = s[keep], a[keep]
        self.dot += float(torch.sum(s * a, dtype=torch.float64))
        self.ss += float(torch.sum(s * s, dtype=torch.float64))
        self.aa += float(torch.sum(a * a, dtype=torch.float64))
        d = s - a
        self.dd += float(torch.sum(d * d, dtype=torch.float64))

    def cosine(self) -> float:
        if self.ss == 0 and self.aa == 0:
            return 1.0
        if self.ss == 0 or self.aa == 0:
            return 0.0
        return self.dot / math.sqrt(self.ss * self.aa)

    def rel_error(self) -> float:
        if self.aa == 0:
            return 0.0 if self.dd == 0 else float("inf")
        return math.sqrt(self.dd / self.aa)


@dataclass
class SimResult:
    timesteps: int
    samples: int
    labelled: bool
    ann_correct: int = 0
    # the converted graph run as a plain network (each neuron replaced by what it converges to:
    # clipping, quantisation; structural changes such as MaxPool -> AvgPool included): T -> inf
    limit_correct: int = 0
    limit_agree: int = 0
    snn_correct: np.ndarray | None = None  # [T]
    agree: np.ndarray | None = None  # [T]
    out_fid: list[_Fid] = field(default_factory=list)  # per t (unlabelled data and always for outputs)
    layer_fid: dict[str, _Fid] = field(default_factory=dict)
    events: dict[str, torch.Tensor] = field(default_factory=dict)  # per-element event totals
    static: dict[str, bool] = field(default_factory=dict)
    classified: bool = False  # the output is [N, classes]: agreement of argmax is meaningful


def check_timesteps(t: int) -> None:
    if t <= 0:
        raise InputError(f"--timesteps must be a positive integer, got {t}")
    if t > MAX_TIMESTEPS:
        raise InputError(f"--timesteps {t} is absurdly large (limit {MAX_TIMESTEPS})")


def simulate(
    snn: Graph,
    ann: Graph,
    data: Dataset,
    timesteps: int,
    batch_size: int = 64,
    device: str = "cpu",
    analog_mode: str | None = None,
    samples: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> SimResult:
    check_timesteps(timesteps)
    if batch_size <= 0:
        raise InputError(f"--batch-size must be positive, got {batch_size}")
    if samples is not None and samples <= 0:
        raise InputError(f"--samples must be positive, got {samples}")
    n = data.n if samples is None else min(samples, data.n)
    mode = analog_mode or snn.meta.get("analog_mode", "mean")
    sim = Simulator(snn, device=device, analog_mode=mode)
    ex = Executor(ann, device=device)
    lim = Executor(snn, device=device)
    scale = snn.meta.get("value_scale", {})
    tracked = [
        o
        for nd in snn.nodes
        for o in nd.outputs
        if snn.values[o].dtype.startswith("float") and o in ann.values
    ]
    res = SimResult(timesteps, n, data.labels is not None)
    res.snn_correct = np.zeros(timesteps, dtype=np.int64)
    res.agree = np.zeros(timesteps, dtype=np.int64)
    res.out_fid = [_Fid() for _ in range(timesteps)]
    res.layer_fid = {o: _Fid() for o in tracked}
    out_name = snn.outputs[0]
    for _start, feeds, labels in data.batches(batch_size, n):
        ann_vals = ex.run(feeds, keep=set(tracked))
        ann_out = ann_vals[ann.outputs[0]]

        def observe(name: str, sig: Sig, ann_vals=ann_vals) -> None:
            if name not in res.layer_fid:
                return
            res.static[name] = sig.static
            dec = sig.data if sig.static and sim.coding == "rate" else _decoded_at_end(sim, sig, timesteps)
            dec = dec * float(scale.get(name, 1.0))
            res.layer_fid[name].add(dec, ann_vals[name])

        outs = sim.run_chunk(feeds, 0, timesteps, state={}, record=res.events, observe=observe)
        lim_out = lim.run(feeds)[out_name]  # after the SNN's steps, which need only the ANN's values
        dec, _ = sim.decode(outs[out_name], 0, timesteps, None)  # [T, B, *per-sample shape]
        dec = sample_rows(snn, out_name, dec, lead=2)  # [T, B, classes] for a classifier
        ann_out = sample_rows(ann, ann.outputs[0], ann_out)
        lim_out = sample_rows(snn, out_name, lim_out)
        for t in range(timesteps):
            res.out_fid[t].add(dec[t], ann_out)
        if labels is not None and dec.dim() != 3:
            raise InputError(
                f"{data.path}: key 'y' holds class labels, but the model's output '{out_name}' has shape "
                f"{list(snn.values[out_name].shape)}, not [N, classes] (drop 'y' to compare outputs only)"
            )
        if dec.dim() == 3 and dec.shape[-1] > 1:  # [T, B, classes]: agreement of argmax per sample
            res.classified = True
            pred = dec.argmax(-1)  # [T, B]
            ann_pred = ann_out.argmax(-1)
            res.agree += (pred == ann_pred.unsqueeze(0)).reshape(timesteps, -1).sum(1).cpu().numpy()
            lim_pred = lim_out.argmax(-1)
            res.limit_agree += int((lim_pred == ann_pred).sum())
            if labels is not None:
                y = torch.from_numpy(labels).to(pred.device)
                if int(y.max()) >= dec.shape[-1] or int(y.min()) < 0:
                    raise InputError(
                        f"{data.path}: labels outside [0, {dec.shape[-1] - 1}] (the model's classes)"
                    )
                res.snn_correct += (pred == y.unsqueeze(0)).reshape(timesteps, -1).sum(1).cpu().numpy()
                res.ann_correct += int((ann_pred == y).sum())
                res.limit_correct += int((lim_pred == y).sum())
        if progress is not None:
            progress(len(next(iter(feeds.values()))))
    for name, e in res.events.items():
        if not bool(torch.isfinite(e).all()):
            raise UnsupportedModelError(
                f"{snn.meta.get('source', 'model')}: layer '{name}' reached non-finite values (NaN/Inf) "
                "in the SNN: the model's activations overflow float32"
            )
    return res


def _decoded_at_end(sim: Simulator, sig: Sig, timesteps: int) -> torch.Tensor:
    if sig.static:  # count coding: arrived whole at step 1
        return sig.data
    total = sig.data.sum(0)
    return total / timesteps if sim.coding == "rate" else total


def result_json(res: SimResult, snn: Graph) -> dict:
    """The machine-readable result (contract keys: timesteps, samples, ann_accuracy, snn_accuracy,
    agreement, layers[{name, spikes, firing_rate, cosine, rel_error}])."""
    n, T = res.samples, res.timesteps
    layers = []
    for nd in snn.nodes:
        for o in nd.outputs:
            if o not in res.layer_fid:
                continue
            v = snn.values[o]
            spikes = float(res.events[o].sum()) if o in res.events else 0.0
            inside = {k: float(e.sum()) / n for k, e in internal_records(res.events, o).items()}
            spikes += sum(v for k, v in inside.items() if k != EVALUATIONS) * n
            neurons = v.numel
            f = res.layer_fid[o]
            layers.append(
                {
                    "name": o,
                    "node": nd.name,
                    "op": nd.op,
                    "domain": v.domain or "analog",
                    "neurons": neurons,
                    "spikes": spikes,
                    "spikes_per_sample": spikes / n,
                    "firing_rate": spikes / (neurons * T * n) if neurons else 0.0,
                    "cosine": _finite(f.cosine()),
                    "rel_error": _finite(f.rel_error()),
                    "static": bool(res.static.get(o, False)),
                }
            )
            if inside:  # neurons inside the op (SpikingSoftmax): spikes per kind, and evaluations, per sample
                layers[-1]["internal_spikes_per_sample"] = {
                    k: v for k, v in inside.items() if k != EVALUATIONS
                }
                layers[-1]["evaluations_per_sample"] = inside.get(EVALUATIONS)
    j = {
        "timesteps": T,
        "samples": n,
        "coding": snn.meta.get("coding", "rate"),
        "labelled": res.labelled,
        "agreement": [float(a) / n for a in res.agree] if res.classified else [None] * T,
        "cosine": [_finite(f.cosine()) for f in res.out_fid],
        "rel_error": [_finite(f.rel_error()) for f in res.out_fid],
        "layers": layers,
        "total_spikes_per_sample": sum(float(e.sum()) for k, e in res.events.items() if is_spike_record(k))
        / n,
    }
    # what the SNN converges to as T grows (the converted graph run as a network): separates the
    # loss the conversion itself causes from the loss of too few timesteps
    j["limit_agreement"] = res.limit_agree / n if res.classified else None
    if res.labelled:
        j["ann_accuracy"] = res.ann_correct / n
        j["snn_accuracy"] = [float(c) / n for c in res.snn_correct]
        j["limit_accuracy"] = res.limit_correct / n
    return j


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def is_spiking_op(op: str) -> bool:
    return get(op).spiking
