"""QuantileSketch against numpy.percentile over all values, fed in many batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from snnconvert.calibrate.sketch import QuantileSketch
from snnconvert.errors import InputError

PS = [0, 1, 50, 90, 99, 99.9, 99.99, 99.999, 100]
N = 100_001  # odd, so the median is one order statistic (see test_interpolation_bound_even_count)


def _data(name: str, n: int = N, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if name == "gaussian":
        x = rng.standard_normal(n)
    elif name == "cauchy":
        x = rng.standard_cauchy(n)
    elif name == "zeros":
        x = np.zeros(n)
    elif name == "constant":
        x = np.full(n, -2.75)
    elif name == "outlier":
        x = rng.standard_normal(n)
        x[rng.integers(n)] = 1e9
    elif name == "relu":
        x = np.maximum(rng.standard_normal(n), 0.0)
    elif name == "signed_lognormal":
        x = rng.choice([-1.0, 1.0], n) * rng.lognormal(0.0, 3.0, n)
    else:
        raise AssertionError(name)
    # Round through float32 so torch float32 batches and the float64 reference hold the same values.
    return x.astype(np.float32).astype(np.float64)


def _feed(x: np.ndarray, batches: int = 53, **kw) -> QuantileSketch:
    s = QuantileSketch(**kw)
    for i, b in enumerate(np.array_split(x, batches)):
        # Alternate input kinds and shapes: torch float32 2-d, numpy float64 1-d.
        if i % 2:
            s.update(torch.from_numpy(b.astype(np.float32)).reshape(1, -1))
        else:
            s.update(b)
    return s


DISTS = ["gaussian", "cauchy", "zeros", "constant", "outlier", "relu", "signed_lognormal"]


@pytest.mark.parametrize("name", DISTS)
def test_percentiles_within_one_bucket(name):
    x = _data(name)
    s = _feed(x)
    assert s.count == x.size
    est = s.percentile(PS)
    ref = np.percentile(x, PS)
    for p, e, r in zip(PS, est, ref, strict=True):
        assert abs(e - r) <= s.bin_width_at(r) + 1e-12, (name, p, e, r, s.bin_width_at(r))
    assert est[0] == x.min() and est[-1] == x.max()
    assert s.percentile(0) == x.min() and s.percentile(100) == x.max()
    if name in ("zeros", "constant"):
        np.testing.assert_array_equal(est, ref)

    est_abs = s.percentile_abs(PS)
    ref_abs = np.percentile(np.abs(x), PS)
    for p, e, r in zip(PS, est_abs, ref_abs, strict=True):
        assert abs(e - r) <= s.bin_width_at(r) + 1e-12, (name, "abs", p, e, r)
    assert est_abs[0] == np.abs(x).min() and est_abs[-1] == np.abs(x).max()

    assert s.min == x.min() and s.max == x.max()
    assert s.mean == pytest.approx(x.mean(), rel=1e-9, abs=1e-12)
    assert s.std == pytest.approx(x.std(), rel=1e-9, abs=1e-12)


def test_interpolation_bound_even_count():
    """Any p, even n: error <= the interpolated widths of the two order statistics' buckets.

    This also covers order statistics straddling zero, where bin_width_at(ref) alone can be too tight.
    """
    x = np.sort(_data("gaussian", n=20_000, seed=3))
    s = _feed(x)
    ps = np.linspace(0.0, 100.0, 401)
    est = s.percentile(ps)
    ref = np.percentile(x, ps)
    rank = ps / 100.0 * (x.size - 1)
    lo = np.floor(rank).astype(int)
    hi = np.minimum(lo + 1, x.size - 1)
    f = rank - lo
    for e, r, a, b, t in zip(est, ref, x[lo], x[hi], f, strict=True):
        assert abs(e - r) <= (1 - t) * s.bin_width_at(a) + t * s.bin_width_at(b) + 1e-12


def test_bin_width():
    s = QuantileSketch(alpha=0.01)
    g = (1 + 0.01) / (1 - 0.01)
    for v in (1e-9, 0.3, 1.0, -7.0, 123456.0):
        w = s.bin_width_at(v)
        # bucket (g^(i-1), g^i] containing |v|: width = g^(i-1) (g - 1), so |v|(1-1/g) <= w < |v|(g-1)
        assert abs(v) * (1 - 1 / g) * (1 - 1e-9) <= w <= abs(v) * (g - 1) * (1 + 1e-9)
    assert 0 < s.bin_width_at(0.0) <= 2e-12
    assert s.bin_width_at(1e300) == float("inf")
    with pytest.raises(ValueError):
        s.bin_width_at(float("nan"))


def test_merge_equals_concatenation():
    x = _data("gaussian", n=30_000, seed=1)
    y = _data("cauchy", n=20_000, seed=2) * 4  # power of 2: still float32-exact
    a, b, whole = _feed(x, 7), _feed(y, 5), _feed(np.concatenate([x, y]), 11)
    merged = a.copy().merge(b)
    ja, jb = merged.to_json(), whole.to_json()
    for k in ("mean", "m2"):
        assert ja.pop(k) == pytest.approx(jb.pop(k), rel=1e-9)
    assert ja == jb
    ps = np.linspace(0, 100, 101)
    np.testing.assert_array_equal(merged.percentile(ps), whole.percentile(ps))
    assert (merged.count, merged.min, merged.max) == (whole.count, whole.min, whole.max)
    assert merged.std == pytest.approx(np.concatenate([x, y]).std(), rel=1e-9)

    # merging an empty sketch (either way round) changes nothing
    e = QuantileSketch()
    assert e.copy().merge(a).to_json() == a.to_json()
    assert a.copy().merge(e).to_json() == a.to_json()
    # self-merge doubles every count
    d = a.copy().merge(a)
    assert d.count == 2 * a.count and d.percentile(99) == a.percentile(99)

    with pytest.raises(ValueError, match="alpha"):
        a.merge(QuantileSketch(alpha=0.01))


@pytest.mark.parametrize("name", ["signed_lognormal", "outlier", "zeros"])
def test_json_round_trip(name):
    x = _data(name, n=20_001)
    s = _feed(x, 9)
    s.update(np.abs(x[:64]).reshape(8, 8), channel_axis=1)
    d = s.to_json()
    text = json.dumps(d, allow_nan=False)  # plain JSON types only
    r = QuantileSketch.from_json(json.loads(text))
    assert r.to_json() == d
    ps = np.linspace(0, 100, 1001)
    np.testing.assert_array_equal(r.percentile(ps), s.percentile(ps))
    np.testing.assert_array_equal(r.percentile_abs(ps), s.percentile_abs(ps))
    assert (r.count, r.min, r.max, r.mean, r.std) == (s.count, s.min, s.max, s.mean, s.std)
    np.testing.assert_array_equal(r.channel_max_abs, s.channel_max_abs)
    # compact: only non-empty buckets are written
    for f in ("positive", "negative"):
        for _, counts in d[f]:
            assert all(c > 0 for c in counts)
    stored = sum(len(c) for f in ("positive", "negative") for _, c in d[f])
    assert stored == np.count_nonzero(s.positive_counts) + np.count_nonzero(s.negative_counts)


def test_json_round_trip_empty():
    d = QuantileSketch(alpha=0.02).to_json()
    r = QuantileSketch.from_json(json.loads(json.dumps(d, allow_nan=False)))
    assert r.count == 0 and r.alpha == 0.02 and r.to_json() == d


def _mutations():
    s = QuantileSketch()
    s.update(np.array([-3.0, -0.5, 0.0, 0.25, 1.0, 2.0, 1000.0]))
    base = s.to_json()

    def m(field, value):
        d = json.loads(json.dumps(base))
        if value is KeyError:
            del d[field]
        else:
            d[field] = value
        return field, d

    first_pos = base["positive"][0][0]
    return [
        m("alpha", KeyError),
        m("alpha", -0.1),
        m("alpha", "0.005"),
        m("min_magnitude", 0),
        m("max_magnitude", 1e-13),
        m("format", "something-else/1"),
        m("count", 8),
        m("count", -1),
        m("zero_count", 1.5),
        m("positive", [[first_pos, [1, -1]]]),
        m("positive", [[first_pos, []]]),
        m("positive", "abc"),
        m("positive", [[10**7, [1]]]),
        m("negative", [[base["negative"][0][0], [1]], [base["negative"][0][0], [1]]]),
        m("min", None),
        m("min", 5000.0),
        m("max", float("nan")),
        m("min_abs", -1.0),
        m("m2", -1.0),
        m("channel_max_abs", [1.0, -2.0]),
        m("bogus", 1),
    ]


@pytest.mark.parametrize("field,d", _mutations())
def test_from_json_rejects_bad_fields(field, d):
    with pytest.raises(ValueError, match=f"'{field}'") as info:
        QuantileSketch.from_json(d)
    assert isinstance(info.value, InputError)  # the CLI reports it as one line


def test_from_json_rejects_non_dict():
    with pytest.raises(ValueError):
        QuantileSketch.from_json([1, 2, 3])


def test_memory_does_not_grow():
    rng = np.random.default_rng(0)
    s = QuantileSketch()
    s.update(rng.standard_cauchy(1_000))
    small = s.nbytes
    for _ in range(9):
        s.update(rng.standard_cauchy(111_000))
    assert s.count == 1_000_000
    assert s.nbytes == small
    assert small < 100_000  # two stores of ~5.5k int64 for the default range


def test_large_batch_equals_small_batches():
    # one update bigger than the internal chunk vs many small ones: identical stores
    x = _data("signed_lognormal", n=300_000, seed=5)
    big, small = QuantileSketch(), _feed(x, 97)
    big.update(x)
    assert big.to_json()["positive"] == small.to_json()["positive"]
    assert big.to_json()["negative"] == small.to_json()["negative"]
    assert big.mean == pytest.approx(small.mean, rel=1e-9)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_raises_and_leaves_sketch_unchanged(bad):
    s = QuantileSketch()
    s.update(np.arange(10.0))
    before = s.to_json()
    x = np.ones(200_000)
    x[150_000] = bad  # in the second internal chunk
    with pytest.raises(ValueError, match="NaN/Inf"):
        s.update(x)
    with pytest.raises(ValueError, match="NaN/Inf"):
        s.update(torch.tensor([1.0, bad], dtype=torch.float32))
    assert s.to_json() == before


def test_percentile_api():
    s = QuantileSketch()
    with pytest.raises(ValueError, match="empty"):
        s.percentile(50)
    s.update(torch.arange(1, 1001, dtype=torch.float32))
    assert isinstance(s.percentile(99), float)
    out = s.percentile([[1, 2], [3, 4]])
    assert isinstance(out, np.ndarray) and out.shape == (2, 2)
    assert isinstance(s.percentile(np.array([50.0])), np.ndarray)
    for bad in (-1, 100.5, float("nan"), "x"):
        with pytest.raises(ValueError):
            s.percentile(bad)


def test_input_dtypes():
    ref = QuantileSketch()
    ref.update(np.array([-2.0, 0.0, 1.0, 3.0]))
    for x in (
        np.array([-2, 0, 1, 3], dtype=np.int32),
        torch.tensor([-2, 0, 1, 3]),
        torch.tensor([-2.0, 0.0, 1.0, 3.0], dtype=torch.bfloat16),
        torch.tensor([-2.0, 0.0, 1.0, 3.0], dtype=torch.float16, requires_grad=True),
        [-2.0, 0.0, 1.0, 3.0],
    ):
        s = QuantileSketch()
        s.update(x)
        assert s.to_json() == ref.to_json()
    s.update(np.zeros((0, 3)))  # empty input is a no-op
    with pytest.raises(TypeError):
        s.update(torch.tensor([1 + 2j]))


def test_magnitudes_outside_range():
    s = QuantileSketch()
    x = np.concatenate([np.full(50, 1e-14), np.full(50, -1e-13), [1.0, 1e15, 3e15]])
    s.update(x)
    assert s.zero_count == 100
    assert s.percentile(100) == 3e15 and s.percentile(0) == -1e-13
    assert abs(s.percentile(50) - np.percentile(x, 50)) <= 1e-12
    # values above max_magnitude clamp into the top bucket, but stay within [min, max]
    assert 1e12 <= s.percentile(99.5) <= 3e15


def test_channel_max_abs():
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((4, 6, 5)) for _ in range(3)]
    s = QuantileSketch()
    for x in xs:
        s.update(torch.from_numpy(x), channel_axis=1)
    expect = np.max([np.abs(x).max(axis=(0, 2)) for x in xs], axis=0)
    np.testing.assert_array_equal(s.channel_max_abs, expect)
    s.update(xs[0], channel_axis=-2)  # negative axes too
    with pytest.raises(ValueError, match="channels"):
        s.update(np.ones((2, 3)), channel_axis=1)
    with pytest.raises(ValueError, match="channel_axis"):
        s.update(np.ones((2, 3)), channel_axis=2)
    assert s.nbytes == QuantileSketch().nbytes + 6 * 8


def test_torch_path_matches_numpy_path():
    """The CUDA code path (torch ops) gives the same buckets as the CPU one; exercised here on CPU."""
    x = _data("signed_lognormal", n=50_000, seed=7)
    x[:1000] = 0.0
    a, b = QuantileSketch(), QuantileSketch()
    a.update(x)
    b._update_torch(torch.from_numpy(x), None)
    ja, jb = a.to_json(), b.to_json()
    for k in ("mean", "m2"):
        assert ja.pop(k) == pytest.approx(jb.pop(k), rel=1e-9)
    assert ja == jb


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_input():
    x = _data("cauchy", n=10_001)
    a, b = _feed(x, 3), QuantileSketch()
    for part in np.array_split(x, 3):
        b.update(torch.from_numpy(part).float().cuda())
    assert a.to_json()["positive"] == b.to_json()["positive"]
    np.testing.assert_array_equal(a.percentile(PS), b.percentile(PS))
