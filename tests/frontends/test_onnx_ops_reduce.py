"""ONNX reductions and contractions of issue L (ReduceSum/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp,
ArgMax/ArgMin, LogSoftmax, InstanceNormalization, Einsum): each a one-node model in every form its
opsets give it (axes as attribute or input, keepdims 0/1, noop_with_empty_axes), imported and run by
the reference executor against onnxruntime on the same random input (max abs error <= 1e-5 *
max(1, |reference|); indices exactly). Cases on axis 0 feed one sample (axis 0 of size 1)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_cases import I64, X34, Case, F, N, check_case, ints, params, positive, save, weights

from snnconvert.errors import UnsupportedModelError
from snnconvert.frontends.onnx import load_onnx
from snnconvert.frontends.onnx_ops_reduce import REDUCE_OPS

X342 = [("x", F, ["N", 3, 4, 2])]
ONE_SAMPLE = [("x", F, [1, 3, 4])]
# the opset from which the op takes its axes as an input instead of an attribute
AXES_INPUT_FROM = {op: 13 if op == "ReduceSum" else 18 for op in REDUCE_OPS}
# positive inputs where the op needs them (logarithms) or where products would under/overflow
DRAW = {"ReduceLogSum": positive, "ReduceProd": positive}


def _reduce(op: str, axes: list[int] | None, opset: int, **attrs):
    """The node, and its initializers, with `axes` in the form `opset` gives them."""
    if axes is None:
        return N(op, ["x"], ["y"], **attrs), {}
    if opset >= AXES_INPUT_FROM[op]:
        return N(op, ["x", "ax"], ["y"], **attrs), {"ax": ints(*axes)}
    return N(op, ["x"], ["y"], axes=axes, **attrs), {}


def _unsqueeze0(src: str, dst: str, opset: int):
    """Unsqueeze(src, axes=[0]) as `opset` spells it (axes an input from opset 13)."""
    if opset >= 13:
        return N("Unsqueeze", [src, "ax0"], [dst])
    return N("Unsqueeze", [src], [dst], axes=[0])


def _reduce_cases() -> list[Case]:
    c: list[Case] = []
    for op in REDUCE_OPS:
        draw = {"x": DRAW[op]} if op in DRAW else {}
        old, new = (11, 13) if op == "ReduceSum" else (13, 18)
        for opset in (old, new):
            for axes, keep, x in (([-1], 1, X34), ([1], 0, X34), ([1, 2], 0, X342), ([-1, 1], 1, X342)):
                node, inits = _reduce(op, axes, opset, keepdims=keep)
                tag = "_".join(map(str, axes))
                c.append(
                    Case(f"{op}-axes{tag}-keep{keep}-opset{opset}", [node], x, ["y"], inits, opset, draw)
                )
            # all axes: the batch axis too, so one sample; to a scalar, then back to [1] for the output
            node, inits = _reduce(op, None, opset)
            c.append(
                Case(
                    f"{op}-all-axes-opset{opset}",
                    [node],
                    ONE_SAMPLE,
                    ["y"],
                    inits,
                    opset,
                    draw,
                    (),
                )
            )
            node, inits = _reduce(op, None, opset, keepdims=0)
            node.output[0] = "s"
            c.append(
                Case(
                    f"{op}-all-axes-to-scalar-opset{opset}",
                    [node, _unsqueeze0("s", "y", opset)],
                    ONE_SAMPLE,
                    ["y"],
                    {**inits, **({"ax0": ints(0)} if opset >= 13 else {})},
                    opset,
                    draw,
                    (),
                )
            )
            node, inits = _reduce(op, [0, 2], opset)
            c.append(Case(f"{op}-axis0-opset{opset}", [node], ONE_SAMPLE, ["y"], inits, opset, draw, ()))
        # noop_with_empty_axes: no axes reduces nothing (only the op's elementwise part applies)
        node, _ = _reduce(op, None, new, noop_with_empty_axes=1)
        c.append(Case(f"{op}-noop-empty-axes-opset{new}", [node], X34, ["y"], opset=new, draw=draw))
        node, inits = _reduce(op, [], new, noop_with_empty_axes=1)
        c.append(Case(f"{op}-noop-empty-axes-input-opset{new}", [node], X34, ["y"], inits, new, draw))
        node, inits = _reduce(op, [], new)
        c.append(
            Case(
                f"{op}-empty-axes-input-all-opset{new}",
                [node],
                ONE_SAMPLE,
                ["y"],
                inits,
                new,
                draw,
                (),
            )
        )
    c.append(
        Case(
            "ReduceSum-int-mask",
            [N("ReduceSum", ["m", "ax"], ["y"], keepdims=0)],
            [("m", I64, ["N", 5])],
            [("y", I64)],
            {"ax": ints(-1)},
            draw={"m": lambda r, s: r.integers(0, 2, s).astype(np.int64)},
        )
    )
    c.append(
        Case(
            "ReduceMax-int-opset18",
            [N("ReduceMax", ["m", "ax"], ["y"])],
            [("m", I64, ["N", 5])],
            [("y", I64)],
            {"ax": ints(1)},
            opset=18,
        )
    )
    return c


def _ties(rng, shape):  # small integers: many equal maxima, so first vs last index matters
    return rng.integers(0, 3, shape).astype(np.float32)


def _other_cases() -> list[Case]:
    c: list[Case] = []
    for op in ("ArgMax", "ArgMin"):
        for opset in (11, 13):
            for axis, keep, last in ((-1, 1, 0), (1, 0, 0), (2, 1, 1), (1, 0, 1)):
                if last and opset < 12:  # select_last_index came with opset 12
                    continue
                c.append(
                    Case(
                        f"{op}-axis{axis}-keep{keep}-last{last}-opset{opset}",
                        [
                            N(
                                op,
                                ["x"],
                                ["y"],
                                axis=axis,
                                keepdims=keep,
                                **({"select_last_index": 1} if last else {}),
                            )
                        ],
                        X34,
                        [("y", I64)],
                        opset=opset,
                        draw={"x": _ties},
                    )
                )
        c.append(Case(f"{op}-default-axis0", [N(op, ["x"], ["y"])], ONE_SAMPLE, [("y", I64)], marks=()))
    c.append(Case("LogSoftmax-last", [N("LogSoftmax", ["x"], ["y"], axis=-1)], X34, ["y"]))
    c.append(Case("LogSoftmax-axis1", [N("LogSoftmax", ["x"], ["y"], axis=1)], X34, ["y"]))
    c.append(Case("LogSoftmax-default", [N("LogSoftmax", ["x"], ["y"])], X342, ["y"]))
    c.append(
        Case("LogSoftmax-opset11-2d", [N("LogSoftmax", ["x"], ["y"])], [("x", F, ["N", 6])], ["y"], opset=11)
    )
    c.append(
        Case(
            "LogSoftmax-opset11-last-of-3d",
            [N("LogSoftmax", ["x"], ["y"], axis=2)],
            X34,
            ["y"],
            opset=11,
            draw={"x": lambda r, s: (10 * r.standard_normal(s)).astype(np.float32)},
        )
    )
    scale_bias = {"s": weights(3), "b": weights(3, seed=2)}
    c.append(
        Case(
            "InstanceNormalization-2d",
            [N("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-3)],
            [("x", F, ["N", 3, 5, 4])],
            ["y"],
            scale_bias,
        )
    )
    c.append(
        Case(
            "InstanceNormalization-1d-opset22",
            [N("InstanceNormalization", ["x", "s", "b"], ["y"])],
            [("x", F, ["N", 3, 7])],
            ["y"],
            scale_bias,
            opset=22,
        )
    )
    c.extend(_einsum_cases())
    return c


def _einsum_cases() -> list[Case]:
    """The equations transformer exports write (attention scores, attention x values, projections
    with a constant weight, rotary/ALiBi-style products), plus ellipsis and implicit-output forms."""
    c: list[Case] = []
    h4 = lambda name, i: (name, F, ["N", 2, i, 3])  # [batch, heads, tokens, head dim]
    eqs = [
        ("scores", "bhid,bhjd->bhij", [h4("q", 4), h4("k", 5)], {}),
        ("context", "bhij,bhjd->bhid", [("p", F, ["N", 2, 4, 5]), h4("v", 5)], {}),
        ("context-spaces", "bhij, bhjd -> bhid", [("p", F, ["N", 2, 4, 5]), h4("v", 5)], {}),
        ("projection-const", "bid,jd->bij", [("x", F, ["N", 4, 3])], {"w": weights(6, 3)}),
        ("projection-const-first", "jd,bid->bji", [("x", F, ["N", 4, 3])], {"w": weights(6, 3)}),
        ("heads-split", "bid,dhk->bhik", [("x", F, ["N", 4, 3])], {"w": weights(3, 2, 5)}),
        ("heads-merge", "bhik,hkd->bid", [("x", F, ["N", 2, 4, 5])], {"w": weights(2, 5, 3)}),
        ("rows-dot", "bij,bij->bi", [("x", F, ["N", 3, 4]), ("y", F, ["N", 3, 4])], {}),
        ("transpose", "bij->bji", [("x", F, ["N", 3, 4])], {}),
        ("row-sums", "bij->bi", [("x", F, ["N", 3, 4])], {}),
        ("ellipsis-matmul", "...ij,...jk->...ik", [("x", F, ["N", 2, 3, 4]), ("y", F, ["N", 2, 4, 5])], {}),
        ("ellipsis-const", "...d,de->...e", [("x", F, ["N", 2, 3, 4])], {"w": weights(4, 5)}),
        ("implicit-output", "...ij,...jk", [("x", F, ["N", 3, 4]), ("y", F, ["N", 4, 5])], {}),
        ("outer", "bi,bj->bij", [("x", F, ["N", 3]), ("y", F, ["N", 4])], {}),
        ("three-operands", "bi,bij,j->bj", [("x", F, ["N", 3]), ("y", F, ["N", 3, 4])], {"w": weights(4)}),
    ]
    for tag, eq, inputs, inits in eqs:
        names = [n for n, _, _ in inputs]
        if tag == "projection-const-first":
            order = ["w", *names]
        elif tag == "three-operands":
            order = [*names, "w"]
        else:
            order = [*names, *inits]
        c.append(
            Case(f"Einsum-{tag}", [N("Einsum", order, ["z"], equation=eq)], inputs, ["z"], inits, opset=12)
        )
    # over the batch axis (one sample), then that axis back for the output
    for tag, eq, inputs in (
        ("sum-over-batch", "bi->i", [("x", F, [1, 4])]),
        ("implicit-output-sums-repeated", "bij,bjk", [("x", F, [1, 3, 4]), ("y", F, [1, 4, 5])]),
    ):
        names = [n for n, _, _ in inputs]
        c.append(
            Case(
                f"Einsum-{tag}",
                [N("Einsum", names, ["s"], equation=eq), N("Unsqueeze", ["s", "ax0"], ["z"])],
                inputs,
                ["z"],
                {"ax0": ints(0)},
                opset=13,
                marks=(),
            )
        )
    return c


CASES = _reduce_cases() + _other_cases()


@pytest.mark.parametrize("case", params(CASES))
def test_op_matches_onnxruntime(case: Case, tmp_path):
    check_case(case, tmp_path)


def test_reduce_axis_out_of_range_is_one_line_error(tmp_path):
    case = Case(
        "bad", [N("ReduceSum", ["x", "ax"], ["y"], name="rs")], X34, [("y", F, ["N", 3, 4])], {"ax": ints(3)}
    )
    path = save(case.model(), tmp_path / "bad_axes.onnx")
    with pytest.raises(UnsupportedModelError) as e:
        load_onnx(path)
    msg = str(e.value)
    assert "\n" not in msg and "bad_axes.onnx" in msg and "'rs' (ReduceSum)" in msg and "3" in msg


def test_log_softmax_opset11_over_several_axes_is_refused(tmp_path):
    """Before opset 13, (Log)Softmax flattens axes [axis, rank) into one: refused, as Softmax is."""
    case = Case("ls", [N("LogSoftmax", ["x"], ["y"], axis=1, name="ls")], X34, ["y"], opset=11)
    path = save(case.model(), tmp_path / "ls.onnx")
    with pytest.raises(UnsupportedModelError) as e:
        load_onnx(path)
    msg = str(e.value)
    assert "\n" not in msg and "ls.onnx" in msg and "'ls' (LogSoftmax)" in msg
