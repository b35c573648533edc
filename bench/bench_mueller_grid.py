"""Mueller 2021 on the built-in digits ViT: accuracy at T = 4..50 for p in {99, 99.9, 99.99},
membrane start v0 in {0, theta/2} and analog ops on the running mean vs on each step's signal.
One simulation per setting gives the whole accuracy-vs-t curve."""

from __future__ import annotations

from bench.common import accuracy_curve, example_dir, recipe_variant, write_result
from snnconvert.api import run_conversion, run_simulation

TS = (4, 8, 16, 32, 50)


def main() -> None:
    d = example_dir()
    ex = d / "ex"
    rows = []
    for mode in ("mean", "step"):
        for p in (99.0, 99.9, 99.99):
            for v0 in (0.0, 0.5):
                recipe = recipe_variant("mueller2021", d, f"v0{v0}", relu_to_if={"v0": v0})
                snn = d / f"snn-{p}-{v0}"
                run_conversion(ex / "model.onnx", d / "calib.json", recipe, snn, percentile=p, portable=False)
                j = run_simulation(snn, ex / "test.npz", max(TS), analog_mode=mode)
                row = {
                    "analog_mode": mode,
                    "percentile": p,
                    "v0": v0,
                    **accuracy_curve(j, TS),
                    "agreement": {t: j["agreement"][t - 1] for t in TS},
                }
                rows.append(row)
                print(mode, p, v0, " ".join(f"T{t}:{row['loss_pp'][t]:+.2f}" for t in TS), flush=True)
    path = write_result("mueller_grid", {"rows": rows, "timesteps": list(TS)})
    print(f"-> {path}")


if __name__ == "__main__":
    main()
