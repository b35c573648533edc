"""A fast in-process slice of the ONNX fuzzer (the full run is `python -m bench.fuzz_onnx`).

Every mutant of the built-in model must either go through inspect -> calibrate -> convert ->
simulate, or stop with one clean 'error: ...' line; an 'internal error' (an exception that is not an
SnnConvertError) or a traceback is a bug.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fuzz_onnx import MUTATORS, classify, mutants  # noqa: E402

N = 60
FULL_CONVERTS = 3  # accepted mutants converted with the portable export; the rest without (speed)


def test_mutants_are_deterministic_and_varied():
    a = list(mutants(7, 2 * len(MUTATORS)))
    b = list(mutants(7, 2 * len(MUTATORS)))
    assert a == b
    assert len({d for d, _ in a}) == len(a) and len({m for _, m in a}) == len(a)
    kinds = {d.split(":")[0].split(" ", 1)[1] for d, _ in a}
    assert kinds == {name for name, _ in MUTATORS}
    assert list(mutants(7, 5)) == a[:5]  # a prefix of a longer run


def test_fuzz_subset_in_process(built, tmp_path, monkeypatch):
    import snnconvert.sim.portable as portable

    real_export = portable.export_portable
    full = {"left": FULL_CONVERTS}

    def export(g, d):
        if full["left"] > 0:
            full["left"] -= 1
            return real_export(g, d)
        return None

    monkeypatch.setattr(portable, "export_portable", export)
    counts = {"accepted": 0, "clean_error": 0, "traceback": 0, "hang": 0, "crash": 0}
    failures = []
    for i, (desc, data) in enumerate(mutants(0, N)):
        d = tmp_path / f"m{i:03d}"
        d.mkdir()
        m = d / "m.onnx"
        m.write_bytes(data)
        steps = [
            ("inspect", m),
            ("calibrate", m, "--data", built["calib_npz"], "--samples", "16", "--out", d / "c.json"),
            ("convert", m, "--calibration", d / "c.json", "--recipe", "mueller2021", "--out", d / "snn"),
            ("simulate", d / "snn", "--data", built["test_npz"], "--samples", "8", "--timesteps", "2"),
        ]
        result = "accepted"
        for s in steps:
            code, _, err = run_cli(*s)
            result = classify(code, err)
            if result != "accepted":
                if result != "clean_error":
                    failures.append(f"{desc} [{s[0]}]: {err.strip()[-500:]}")
                break
        counts[result] += 1
    assert not failures, "\n".join(failures)
    assert counts["accepted"] >= 3 and counts["clean_error"] >= N // 2, counts


@pytest.mark.parametrize(
    "code,err,kind",
    [
        (0, "", "accepted"),
        (2, "error: m.onnx: bad\n", "clean_error"),
        (1, "internal error: KeyError: 'x' (rerun with --debug for the traceback)\n", "traceback"),
        (1, "Traceback (most recent call last):\n  ...\nValueError: x\n", "traceback"),
        (2, "error: a\nerror: b\n", "traceback"),
        (None, "", "hang"),
        (-11, "", "crash"),
    ],
)
def test_classify(code, err, kind):
    assert classify(code, err) == kind
