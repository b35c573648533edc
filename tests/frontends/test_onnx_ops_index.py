"""ONNX indexing and data-movement ops of issue L (CumSum, GatherElements, Pad, Trilu, Tile, ScatterND),
Range (static: folded; dynamic: refused) and NonZero (refused): each a one-node model in every form
its opsets give it, imported and run by the reference executor against onnxruntime on the same random
input (max abs error <= 1e-5 * max(1, |reference|); integers exactly). Cases on axis 0 feed one
sample (axis 0 of size 1); ScatterND's indices always name axis 0, so its cases do too."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx_cases import (
    I64,
    Case,
    F,
    N,
    check_case,
    feeds,
    ids,
    ints,
    params,
    run_ort,
    save,
    weights,
)

from snnconvert.errors import UnsupportedModelError
from snnconvert.frontends.onnx import import_model, load_onnx
from snnconvert.ir.execute import run_graph

X45 = [("x", F, ["N", 4, 5])]
ONE_SAMPLE = [("x", F, [1, 4, 5])]


def _cumsum_cases() -> list[Case]:
    c: list[Case] = []
    for opset in (11, 14):
        for excl in (0, 1):
            for rev in (0, 1):
                c.append(
                    Case(
                        f"CumSum-axis2-exclusive{excl}-reverse{rev}-opset{opset}",
                        [N("CumSum", ["x", "ax"], ["y"], exclusive=excl, reverse=rev)],
                        X45,
                        ["y"],
                        {"ax": np.array(2, np.int64)},
                        opset,
                    )
                )
    c.append(
        Case(
            "CumSum-negative-axis-int32",
            [N("CumSum", ["x", "ax"], ["y"], reverse=1)],
            X45,
            ["y"],
            {"ax": np.array(-2, np.int32)},
        )
    )
    c.append(
        Case(
            "CumSum-int64-data-exclusive",
            [N("CumSum", ["m", "ax"], ["y"], exclusive=1)],
            [("m", I64, ["N", 6])],
            [("y", I64)],
            {"ax": np.array(1, np.int64)},
        )
    )
    c.append(
        Case(
            "CumSum-axis0",
            [N("CumSum", ["x", "ax"], ["y"])],
            ONE_SAMPLE,
            ["y"],
            {"ax": np.array(0, np.int64)},
            marks=(),
        )
    )
    return c


def _gather_elements_cases() -> list[Case]:
    c: list[Case] = []
    for opset in (11, 13):
        c.append(
            Case(
                f"GatherElements-dynamic-indices-axis2-opset{opset}",
                [N("GatherElements", ["x", "i"], ["y"], axis=2)],
                X45 + [("i", I64, ["N", 4, 3])],
                ["y"],
                opset=opset,
                draw={"i": lambda r, s: r.integers(-5, 5, s).astype(np.int64)},
            )
        )
    c.append(
        Case(
            "GatherElements-const-negative-indices-axis-minus2",
            [N("GatherElements", ["x", "i"], ["y"], axis=-2)],
            ONE_SAMPLE,
            ["y"],
            {"i": np.array([[[0, -1, 2, 3, 1], [3, 3, -4, 0, 0]]], np.int64)},
        )
    )
    c.append(
        Case(
            "GatherElements-const-int32-indices",
            [N("GatherElements", ["x", "i"], ["y"], axis=1)],
            ONE_SAMPLE,
            ["y"],
            {"i": np.array([[[1, 0, 3, 2, 1]]], np.int32)},
        )
    )
    c.append(
        Case(
            "GatherElements-table-dynamic-indices",
            [N("GatherElements", ["T", "i"], ["y"], axis=1)],
            [("i", I64, [1, 6])],
            ["y"],
            {"T": weights(1, 10)},
            draw={"i": ids(10)},
        )
    )
    c.append(
        Case(
            "GatherElements-axis0",
            [N("GatherElements", ["x", "i"], ["y"], axis=0)],
            ONE_SAMPLE,
            ["y"],
            {"i": np.zeros((1, 4, 5), np.int64)},
            marks=(),
        )
    )
    return c


def _pad_cases() -> list[Case]:
    c: list[Case] = []
    pads = ints(0, 1, 2, 0, 2, 1)  # [N, 4, 5]: begins (0, 1, 2), ends (0, 2, 1)
    for opset in (11, 13, 18):
        c.append(
            Case(
                f"Pad-constant-value-opset{opset}",
                [N("Pad", ["x", "p", "v"], ["y"])],
                X45,
                ["y"],
                {"p": pads, "v": np.array(0.5, np.float32)},
                opset,
            )
        )
        for mode in ("reflect", "edge"):
            c.append(
                Case(
                    f"Pad-{mode}-opset{opset}",
                    [N("Pad", ["x", "p"], ["y"], mode=mode)],
                    X45,
                    ["y"],
                    {"p": pads},
                    opset,
                )
            )
    c.append(Case("Pad-constant-default-zero", [N("Pad", ["x", "p"], ["y"])], X45, ["y"], {"p": pads}))
    c.append(
        Case(
            "Pad-negative-crops",
            [N("Pad", ["x", "p"], ["y"])],
            X45,
            ["y"],
            {"p": ints(0, -1, 2, 0, 1, -2)},
        )
    )
    c.append(
        Case(
            "Pad-reflect-negative-crops",
            [N("Pad", ["x", "p"], ["y"], mode="reflect")],
            X45,
            ["y"],
            {"p": ints(0, -1, 2, 0, 1, -2)},
        )
    )
    c.append(
        Case(
            "Pad-axes-input-opset18",
            [N("Pad", ["x", "p", "v", "ax"], ["y"])],
            X45,
            ["y"],
            {"p": ints(1, 3, 0, 2), "v": np.array(-1.0, np.float32), "ax": ints(-1, 1)},
            opset=18,
        )
    )
    c.append(
        Case(
            "Pad-axes-input-no-value-reflect-opset18",
            [N("Pad", ["x", "p", "", "ax"], ["y"], mode="reflect")],
            X45,
            ["y"],
            {"p": ints(2, 3), "ax": ints(2)},
            opset=18,
        )
    )
    c.append(
        Case(
            "Pad-wrap-opset19",
            [N("Pad", ["x", "p"], ["y"], mode="wrap")],
            X45,
            ["y"],
            {"p": ints(0, 2, 4, 0, 3, 1)},
            opset=19,
        )
    )
    c.append(
        Case(
            "Pad-int64-data",
            [N("Pad", ["m", "p", "v"], ["y"])],
            [("m", I64, ["N", 5])],
            [("y", I64)],
            {"p": ints(0, 2, 0, 1), "v": np.array(7, np.int64)},
        )
    )
    c.append(
        Case(
            "Pad-conv-style-4d",
            [N("Pad", ["x", "p"], ["y"], mode="reflect")],
            [("x", F, ["N", 2, 5, 6])],
            ["y"],
            {"p": ints(0, 0, 1, 2, 0, 0, 1, 2)},
        )
    )
    c.append(
        Case(
            "Pad-axis0",  # the one sample's axis 0 grows to 2; a new axis 0 of size 1 for the output
            [N("Pad", ["x", "p"], ["t"]), N("Unsqueeze", ["t", "ax0"], ["y"])],
            ONE_SAMPLE,
            ["y"],
            {"p": ints(1, 0, 0, 0, 0, 0), "ax0": ints(0)},
            marks=(),
        )
    )
    return c


def _trilu_tile_cases() -> list[Case]:
    c: list[Case] = []
    for upper in (0, 1):
        c.append(Case(f"Trilu-upper{upper}", [N("Trilu", ["x"], ["y"], upper=upper)], X45, ["y"], opset=14))
        for k in (-2, 1, 3):
            c.append(
                Case(
                    f"Trilu-upper{upper}-k{k}",
                    [N("Trilu", ["x", "k"], ["y"], upper=upper)],
                    X45,
                    ["y"],
                    {"k": np.array(k, np.int64)},
                    opset=14,
                )
            )
    c.append(
        Case(
            "Trilu-4d-int",
            [N("Trilu", ["m", "k"], ["y"], upper=0)],
            [("m", I64, ["N", 2, 4, 4])],
            [("y", I64)],
            {"k": np.array(0, np.int64)},
            opset=14,
        )
    )
    c.append(Case("Tile", [N("Tile", ["x", "r"], ["y"])], X45, ["y"], {"r": ints(1, 2, 3)}))
    c.append(Case("Tile-ones", [N("Tile", ["x", "r"], ["y"])], X45, ["y"], {"r": ints(1, 1, 1)}))
    c.append(
        Case(
            "Tile-int",
            [N("Tile", ["m", "r"], ["y"])],
            [("m", I64, ["N", 3])],
            [("y", I64)],
            {"r": ints(1, 4)},
        )
    )
    c.append(
        Case(
            "Tile-axis0",
            [N("Tile", ["x", "r"], ["t"]), N("Unsqueeze", ["t", "ax0"], ["y"])],
            ONE_SAMPLE,
            ["y"],
            {"r": ints(2, 1, 2), "ax0": ints(0)},
            marks=(),
        )
    )
    return c


def _scatter_nd_cases() -> list[Case]:
    """data [1, 4, 5]; indices name axis 0 of that one sample (as an export of x[:, rows] = u at batch 1)."""
    c: list[Case] = []
    upd_rows = [("u", F, [1, 2, 5])]
    rows = np.array([[[0, 1], [0, 3]]], np.int64)  # [1, 2, 2]: rows 1 and 3 of sample 0
    c.append(
        Case(
            "ScatterND-rows",
            [N("ScatterND", ["x", "i", "u"], ["y"])],
            ONE_SAMPLE + upd_rows,
            ["y"],
            {"i": rows},
        )
    )
    c.append(
        Case(
            "ScatterND-rows-negative-indices",
            [N("ScatterND", ["x", "i", "u"], ["y"])],
            ONE_SAMPLE + upd_rows,
            ["y"],
            {"i": np.array([[[0, -1], [-1, 0]]], np.int64)},
        )
    )
    c.append(
        Case(
            "ScatterND-elements",
            [N("ScatterND", ["x", "i", "u"], ["y"])],
            ONE_SAMPLE + [("u", F, [1, 3])],
            ["y"],
            {"i": np.array([[[0, 0, 0], [0, 2, 4], [0, 3, 1]]], np.int64)},
        )
    )
    c.append(
        Case(
            "ScatterND-const-updates",
            [N("ScatterND", ["x", "i", "u"], ["y"])],
            ONE_SAMPLE,
            ["y"],
            {"i": rows, "u": weights(1, 2, 5)},
        )
    )
    c.append(
        Case(
            "ScatterND-const-data",
            [N("ScatterND", ["d", "i", "u"], ["y"])],
            upd_rows,
            ["y"],
            {"d": weights(1, 4, 5), "i": rows},
        )
    )
    dup = np.array([[[0, 1], [0, 3], [0, 1]]], np.int64)
    c.append(
        Case(
            "ScatterND-add-repeated-opset16",
            [N("ScatterND", ["x", "i", "u"], ["y"], reduction="add")],
            ONE_SAMPLE + [("u", F, [1, 3, 5])],
            ["y"],
            {"i": dup},
            opset=16,
        )
    )
    c.append(
        Case(
            "ScatterND-mul-opset16",
            [N("ScatterND", ["x", "i", "u"], ["y"], reduction="mul")],
            ONE_SAMPLE + upd_rows,
            ["y"],
            {"i": rows},
            opset=16,
        )
    )
    for red in ("max", "min"):
        c.append(
            Case(
                f"ScatterND-{red}-opset18",
                [N("ScatterND", ["x", "i", "u"], ["y"], reduction=red)],
                ONE_SAMPLE + upd_rows,
                ["y"],
                {"i": rows},
                opset=18,
            )
        )
    return c


def _range_cases() -> list[Case]:
    """Range of constant bounds, or of bounds from shapes: folded at import, no Range node left."""
    return [
        Case(
            "Range-static-from-Shape",
            [
                N("Shape", ["x"], ["s"]),
                N("Gather", ["s", "two"], ["n"], axis=0),
                N("Range", ["zero", "n", "one"], ["r"]),
                N("Cast", ["r"], ["rf"], to=F),
                N("Add", ["x", "rf"], ["y"]),
            ],
            X45,
            ["y"],
            {"two": np.array(2, np.int64), "zero": np.array(0, np.int64), "one": np.array(1, np.int64)},
        ),
        Case(
            "Range-static-float-constants",
            [N("Range", ["a", "b", "d"], ["r"]), N("Mul", ["x", "r"], ["y"])],
            X45,
            ["y"],
            {"a": np.array(0.5, np.float32), "b": np.array(3.0, np.float32), "d": np.array(0.5, np.float32)},
        ),
    ]


CASES = _cumsum_cases() + _gather_elements_cases() + _pad_cases() + _trilu_tile_cases() + _scatter_nd_cases()
RANGE_CASES = _range_cases()


@pytest.mark.parametrize("case", params(CASES))
def test_op_matches_onnxruntime(case: Case, tmp_path):
    check_case(case, tmp_path)


@pytest.mark.parametrize("case", params(RANGE_CASES))
def test_static_range_is_folded(case: Case, tmp_path):
    g = check_case(case, tmp_path)
    assert "Range" not in {n.op for n in g.nodes}


def _refused(case: Case, tmp_path, node: str, *words: str) -> None:
    path = save(case.model(), tmp_path / f"{case.id}.onnx")
    with pytest.raises(UnsupportedModelError) as e:
        load_onnx(path)
    msg = str(e.value)
    assert "\n" not in msg and f"{case.id}.onnx" in msg and node in msg, msg
    for w in words:
        assert w in msg, msg


def _dynamic_range_case() -> Case:
    return Case(
        "dynamic-range",
        [
            N("ReduceMax", ["m"], ["top"], keepdims=0),
            N("Range", ["zero", "top", "one"], ["y"], name="positions"),
        ],
        [("m", I64, ["N", 5])],
        [("y", I64, ["L"])],
        {"zero": np.array(0, np.int64), "one": np.array(1, np.int64)},
        draw={"m": ids(6)},
    )


def _nonzero_case() -> Case:
    return Case("nonzero", [N("NonZero", ["x"], ["y"], name="nz")], X45, [("y", I64, [3, "K"])])


def test_data_dependent_shapes_are_refused_in_one_line(tmp_path):
    _refused(_dynamic_range_case(), tmp_path, "'positions' (Range)", "depend on the input data")
    _refused(_nonzero_case(), tmp_path, "'nz' (NonZero)", "depends on the input data")


def test_scatter_nd_refusals_are_one_line(tmp_path):
    dup = np.array([[[0, 1], [0, 1]]], np.int64)
    data = ONE_SAMPLE + [("u", F, [1, 2, 5])]
    case = Case("scatter-dup", [N("ScatterND", ["x", "i", "u"], ["y"], name="sc")], data, ["y"], {"i": dup})
    _refused(case, tmp_path, "'sc' (ScatterND)", "repeated indices")
    out = np.array([[[0, 4], [0, 1]]], np.int64)
    case = Case("scatter-range", [N("ScatterND", ["x", "i", "u"], ["y"], name="sc")], data, ["y"], {"i": out})
    _refused(case, tmp_path, "'sc' (ScatterND)", "out of range")
    dyn = [("x", F, [1, 4, 5]), ("i", I64, [1, 2, 2]), ("u", F, [1, 2, 5])]
    case = Case("scatter-dyn", [N("ScatterND", ["x", "i", "u"], ["y"], name="sc")], dyn, ["y"])
    _refused(case, tmp_path, "'sc' (ScatterND)", "indices must be constant")


def test_pad_attribute_form_opset10(tmp_path):
    """Pad takes pads and value as attributes before opset 11. The CLI reads opsets >= 11 only, so the
    handler's attribute path is checked through import_model, against onnxruntime."""
    case = Case(
        "pad-attr",
        [N("Pad", ["x"], ["y"], pads=[0, 1, 2, 0, 2, 1], value=0.25, mode="constant")],
        X45,
        ["y"],
        opset=10,
    )
    model = case.model()
    path = save(model, tmp_path / "pad10.onnx")
    inputs = feeds(case)
    ref = run_ort(path, inputs)["y"]
    g = import_model(onnx.load(str(path)), source=str(path))
    ours = run_graph(g, inputs)[g.outputs[0]].numpy()
    assert ours.shape == ref.shape
    assert float(np.abs(ours - ref).max()) <= 1e-5 * max(1.0, float(np.abs(ref).max()))
