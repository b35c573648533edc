"""Fully spiking, count-coded conversion (spike_all) on the built-in digits ViT: accuracy at
T = 1..32 per setting of levels L, spikes per step m and threshold choice, next to the quantised
ANN (every neuron replaced by its settled value theta*clip(round(x/theta), lo, hi)), which is what
the SNN must equal once every neuron has settled. Also: the step by which every neuron of the test
set has settled, and the spikes per sample. One simulation per setting gives the whole curve."""

from __future__ import annotations

import sys

import torch

from bench.common import example_dir, recipe_variant, write_result
from snnconvert.api import load_snn, run_conversion, run_simulation
from snnconvert.data.files import load_dataset
from snnconvert.ir.execute import Executor

TS = (1, 2, 4, 8, 16, 32)
T_MAX = max(TS)
# (tag, spike_all parameters): the old recipe, then multi-spike and threshold/level variants
SETTINGS = [
    (
        "old-L16-m1-p99.9",
        {"levels": 16, "max_spikes_per_step": 1, "percentile": 99.9, "threshold": "percentile"},
    ),
    ("L16-m4-p99.9", {"levels": 16, "max_spikes_per_step": 4, "percentile": 99.9, "threshold": "percentile"}),
    ("L16-m4-mse", {"levels": 16, "max_spikes_per_step": 4, "threshold": "mse"}),
    ("L32-m4-p99.9", {"levels": 32, "max_spikes_per_step": 4, "percentile": 99.9, "threshold": "percentile"}),
    ("L32-m4-mse", {"levels": 32, "max_spikes_per_step": 4, "threshold": "mse"}),
    ("L32-m8-mse", {"levels": 32, "max_spikes_per_step": 8, "threshold": "mse"}),
    ("L32-m1-mse", {"levels": 32, "max_spikes_per_step": 1, "threshold": "mse"}),
]


def quantised_ann(snn_dir, data) -> tuple[float, float, float]:
    """Accuracy of the converted graph run as an ANN (IF -> its settled value), of the ANN, and
    their agreement, on all samples of `data`."""
    snn, ann = load_snn(snn_dir)
    ds = load_dataset(data, snn)
    qx, ax = Executor(snn), Executor(ann)
    cq = ca = agree = n = 0
    for _s, feeds, y in ds.batches(256, ds.n):
        q = qx.run(feeds)[snn.outputs[0]].reshape(len(y), -1).argmax(-1)
        a = ax.run(feeds)[ann.outputs[0]].reshape(len(y), -1).argmax(-1)
        yt = torch.from_numpy(y)
        cq += int((q == yt).sum())
        ca += int((a == yt).sum())
        agree += int((q == a).sum())
        n += len(y)
    return cq / n, ca / n, agree / n


def main(only: list[str] | None = None) -> None:
    d = example_dir()
    ex = d / "ex"
    rows = []
    for tag, params in SETTINGS:
        if only and tag not in only:
            continue
        recipe = recipe_variant("spikezip_count", d, tag, spike_all=params)
        snn = d / f"snn-{tag}"
        run_conversion(ex / "model.onnx", d / "calib.json", recipe, snn, portable=False)
        q_acc, ann_acc, q_agree = quantised_ann(snn, ex / "test.npz")
        j = run_simulation(snn, ex / "test.npz", T_MAX)
        acc = j["snn_accuracy"]
        # first step from which the SNN's accuracy equals its quantised ANN's for good
        settled = next((t for t in range(1, T_MAX + 1) if all(a == q_acc for a in acc[t - 1 :])), None)
        row = {
            "setting": tag,
            "spike_all": params,
            "samples": j["samples"],
            "ann_accuracy": ann_acc,
            "quantised_ann_accuracy": q_acc,
            "quantised_ann_agreement": q_agree,
            "quantised_ann_loss_pp": round(100 * (ann_acc - q_acc), 3),
            "snn_accuracy": {t: acc[t - 1] for t in TS},
            "loss_pp": {t: round(100 * (ann_acc - acc[t - 1]), 3) for t in TS},
            "agreement": {t: j["agreement"][t - 1] for t in TS},
            "accuracy_equals_quantised_ann_from_t": settled,
            "spikes_per_sample": j["total_spikes_per_sample"],
        }
        rows.append(row)
        print(
            f"{tag:18s} qANN {100 * q_acc:.2f}% "
            + " ".join(f"T{t}:{100 * row['snn_accuracy'][t]:.2f}" for t in TS)
            + f" settled@{settled} spikes/sample {row['spikes_per_sample']:.0f}",
            flush=True,
        )
    path = write_result("fully_spiking", {"rows": rows, "timesteps": list(TS)})
    print(f"-> {path}")


if __name__ == "__main__":
    main(sys.argv[1:] or None)
