"""ONNX elementwise ops of issue L (unary maths, rounding, comparisons, logic, variadic Max/Min, Mod,
Softplus, HardSigmoid, HardSwish): each a one-node model, imported and run by the reference executor against
onnxruntime on the same random input (max abs error <= 1e-5 * max(1, |reference|); integer and
boolean outputs exactly)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_cases import (
    BOOL,
    I64,
    X34,
    Case,
    F,
    N,
    check_case,
    feeds,
    ids,
    params,
    positive,
    run_ort,
    save,
    weights,
)

from snnconvert.errors import UnsupportedModelError
from snnconvert.frontends.onnx import load_onnx


def _halves(rng, shape):  # multiples of 0.5, so rounding meets its ties (half to even)
    return (rng.integers(-8, 9, shape) / 2).astype(np.float32)


def _signs(rng, shape):  # -1, 0, 1 and fractions
    return (rng.integers(-2, 3, shape) / 2).astype(np.float32)


def _ints_signed(rng, shape):
    return rng.integers(-20, 21, shape).astype(np.int64)


def _cases() -> list[Case]:
    c: list[Case] = []
    unary = {
        "Reciprocal": {"x": positive},
        "Abs": {},
        "Log": {"x": positive},
        "Sin": {},
        "Cos": {},
        "Sign": {"x": _signs},
        "Floor": {"x": _halves},
        "Ceil": {"x": _halves},
        "Round": {"x": _halves},
        "Softplus": {},
    }
    for op, draw in unary.items():
        c.append(Case(op, [N(op, ["x"], ["y"])], X34, ["y"], draw=draw))
    c.append(Case("Reciprocal-signed", [N("Reciprocal", ["x"], ["y"])], X34, ["y"], draw={"x": _divisors}))
    c.append(Case("Sin-Cos-opset22", [N("Sin", ["x"], ["s"]), N("Cos", ["s"], ["y"])], X34, ["y"], opset=22))
    c.append(Case("Round-opset22", [N("Round", ["x"], ["y"])], X34, ["y"], opset=22, draw={"x": _halves}))
    c.append(
        Case(
            "Sign-int",
            [N("Sign", ["a"], ["y"])],
            [("a", I64, ["N", 5])],
            [("y", I64)],
            draw={"a": _ints_signed},
        )
    )
    c.append(
        Case(
            "Abs-int",
            [N("Abs", ["a"], ["y"])],
            [("a", I64, ["N", 5])],
            [("y", I64)],
            draw={"a": _ints_signed},
        )
    )
    c.append(Case("Not", [N("Not", ["m"], ["y"])], [("m", BOOL, ["N", 3, 4])], [("y", BOOL)]))
    c.append(Case("HardSigmoid-default", [N("HardSigmoid", ["x"], ["y"])], X34, ["y"], draw={"x": _halves}))
    c.append(
        Case(
            "HardSigmoid-alpha-beta-opset22",
            [N("HardSigmoid", ["x"], ["y"], alpha=1 / 6, beta=0.5)],
            X34,
            ["y"],
            opset=22,
            draw={"x": lambda r, s: (4 * r.standard_normal(s)).astype(np.float32)},
        )
    )
    c.append(  # both saturations (x <= -3: 0, x >= 3: x) and the quadratic part between
        Case(
            "HardSwish",
            [N("HardSwish", ["x"], ["y"])],
            X34,
            ["y"],
            opset=14,
            draw={"x": lambda r, s: (4 * r.standard_normal(s)).astype(np.float32)},
        )
    )
    # comparisons: dynamic on both sides, a constant on either side, ints
    for op, opset in (("Greater", 13), ("Less", 13), ("GreaterOrEqual", 16), ("LessOrEqual", 16)):
        c.append(
            Case(
                f"{op}-dynamic",
                [N(op, ["x", "y"], ["z"])],
                X34 + [("y", F, ["N", 1, 4])],
                [("z", BOOL)],
                opset=opset,
                draw={"x": _halves, "y": _halves},
            )
        )
        c.append(
            Case(
                f"{op}-const-left",
                [N(op, ["c", "x"], ["z"])],
                X34,
                [("z", BOOL)],
                {"c": np.array([0.0, 0.5, -0.5, 1.0], np.float32)},
                opset=opset,
                draw={"x": _halves},
            )
        )
        c.append(
            Case(
                f"{op}-int-const",
                [N(op, ["a", "k"], ["z"])],
                [("a", I64, ["N", 5])],
                [("z", BOOL)],
                {"k": np.array(4, np.int64)},
                opset=opset,
                draw={"a": ids(9)},
            )
        )
    c.append(
        Case(
            "Greater-opset11",
            [N("Greater", ["x", "x2"], ["z"])],
            X34 + [("x2", F, ["N", 3, 4])],
            [("z", BOOL)],
            opset=11,
        )
    )
    # logic
    for op in ("Or", "Xor"):
        c.append(
            Case(
                op,
                [N(op, ["m", "n"], ["z"])],
                [("m", BOOL, ["N", 3, 4]), ("n", BOOL, ["N", 1, 4])],
                [("z", BOOL)],
            )
        )
        c.append(
            Case(
                f"{op}-const",
                [N(op, ["m", "k"], ["z"])],
                [("m", BOOL, ["N", 3, 4])],
                [("z", BOOL)],
                {"k": np.array([True, False, True, False])},
            )
        )
    c.append(
        Case(
            "Greater-Or-Not-mask",
            [
                N("Greater", ["x", "zero"], ["p"]),
                N("Less", ["x", "lo"], ["q"]),
                N("Or", ["p", "q"], ["o"]),
                N("Not", ["o"], ["no"]),
                N("Cast", ["no"], ["y"], to=F),
            ],
            X34,
            ["y"],
            {"zero": np.array(0.5, np.float32), "lo": np.array(-0.5, np.float32)},
            draw={"x": _halves},
        )
    )
    # variadic Max / Min
    for op in ("Max", "Min"):
        c.append(Case(f"{op}-one-input", [N(op, ["x"], ["y"])], X34, ["y"]))
        c.append(
            Case(f"{op}-two-broadcast", [N(op, ["x", "y"], ["z"])], X34 + [("y", F, ["N", 1, 4])], ["z"])
        )
        c.append(
            Case(
                f"{op}-three-with-const",
                [N(op, ["x", "c", "y"], ["z"])],
                X34 + [("y", F, ["N", 3, 1])],
                ["z"],
                {"c": weights(4)},
            )
        )
        c.append(
            Case(
                f"{op}-const-scalar-opset11",
                [N(op, ["x", "c"], ["z"])],
                X34,
                ["z"],
                {"c": np.array(0.0, np.float32)},
                opset=11,
            )
        )
        c.append(
            Case(
                f"{op}-int-opset12",
                [N(op, ["a", "b"], ["z"])],
                [("a", I64, ["N", 5]), ("b", I64, ["N", 5])],
                [("z", I64)],
                opset=12,
            )
        )
    # Mod: fmod=0 (sign of the divisor) on ints, fmod=1 (sign of the dividend) on ints and floats
    c.append(
        Case(
            "Mod-int-fmod0",
            [N("Mod", ["a", "d"], ["z"])],
            [("a", I64, ["N", 6])],
            [("z", I64)],
            {"d": np.array([3, -3, 4, -5, 7, 2], np.int64)},
            draw={"a": _ints_signed},
        )
    )
    c.append(
        Case(
            "Mod-int-fmod1",
            [N("Mod", ["a", "d"], ["z"], fmod=1)],
            [("a", I64, ["N", 6])],
            [("z", I64)],
            {"d": np.array([3, -3, 4, -5, 7, 2], np.int64)},
            draw={"a": _ints_signed},
        )
    )
    c.append(
        Case(
            "Mod-float-fmod1",
            [N("Mod", ["x", "y"], ["z"], fmod=1)],
            X34 + [("y", F, ["N", 3, 4])],
            ["z"],
            draw={"x": lambda r, s: (5 * r.standard_normal(s)).astype(np.float32), "y": _divisors},
        )
    )
    c.append(
        Case(
            "Mod-float-const-fmod1",
            [N("Mod", ["x", "d"], ["z"], fmod=1)],
            X34,
            ["z"],
            {"d": np.array([1.5, -2.0, 0.7, 3.0], np.float32)},
            draw={"x": lambda r, s: (5 * r.standard_normal(s)).astype(np.float32)},
        )
    )
    c.append(
        Case(
            "Mod-float-fmod0-opset28",
            [N("Mod", ["x", "y"], ["z"])],
            X34 + [("y", F, ["N", 3, 4])],
            ["z"],
            opset=28,
            draw={"x": lambda r, s: (5 * r.standard_normal(s)).astype(np.float32), "y": _divisors},
        )
    )
    return c


def _divisors(rng, shape):
    return (rng.uniform(0.5, 3.0, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float32)


CASES = _cases()


@pytest.mark.parametrize("case", params(CASES))
def test_op_matches_onnxruntime(case: Case, tmp_path):
    check_case(case, tmp_path)


def test_mod_float_fmod0_is_refused_in_one_line(tmp_path):
    """ONNX leaves fmod=0 undefined on floats before opset 28 (onnxruntime refuses it when it runs)."""
    case = Case("mod", [N("Mod", ["x", "d"], ["z"], name="m")], X34, ["z"], {"d": np.array(2.0, np.float32)})
    path = save(case.model(), tmp_path / "mod.onnx")
    with pytest.raises(Exception, match="fmod"):
        run_ort(path, feeds(case))
    with pytest.raises(UnsupportedModelError) as e:
        load_onnx(path)
    msg = str(e.value)
    assert "\n" not in msg and "mod.onnx" in msg and "'m' (Mod)" in msg and "fmod" in msg
