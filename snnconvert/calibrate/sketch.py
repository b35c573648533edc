"""Streaming, memory-bounded percentile sketch for activation calibration.

Robust normalisation (Rueckauer et al. 2017) sets each layer's threshold to the p-th percentile
(p ~ 99.0-99.999) of that layer's activations over the calibration set.  Keeping every activation
is out of the question, so each layer gets a :class:`QuantileSketch`: a log-bucketed,
relative-error sketch in the style of DDSketch (Masson et al. 2019).

* A magnitude ``m`` falls in bucket ``i = ceil(log(m) / log(gamma))``, ``gamma = (1+alpha)/(1-alpha)``.
  Bucket ``i`` holds ``(gamma**(i-1), gamma**i]`` and is represented by ``2*gamma**i/(gamma+1)``,
  which is within relative error ``alpha`` (about half a bucket width) of anything in it.
* Positive values and negative magnitudes are counted separately, plus a zero count.  Magnitudes at
  or below the bottom bucket's lower edge (between ``min_magnitude/gamma`` and ``min_magnitude``)
  count as zero; anything between that edge and ``min_magnitude`` lands in the bottom bucket
  rather than being rounded to 0.
* The counts live in one dense int64 array over the fixed index range ``[min_magnitude,
  max_magnitude]``, laid out in value order: negative buckets (largest magnitude first), the zero
  count, positive buckets.  Memory is fixed at construction and never grows with the data.
  Magnitudes above ``max_magnitude`` clamp into the top bucket; exact min / max are tracked apart.
* ``percentile`` follows ``numpy.percentile``'s default ("linear") definition: the order statistics
  at ``floor``/``floor+1`` of ``rank = p/100 * (n-1)`` are replaced by their bucket representatives
  (order statistic 0 by the exact min, n-1 by the exact max, all clamped to [min, max]) and
  interpolated exactly as numpy does.  So ``percentile(0) == min``, ``percentile(100) == max``,
  constant inputs are exact, and otherwise the estimate is within about half a bucket width of
  numpy's answer.  Caveat: if the two order statistics straddle zero (e.g. the median of symmetric
  data with an even count) the bound is that of the two order statistics' buckets, which can be
  wider than the bucket of their (near-zero) interpolated value.
* Count, mean and variance are combined with Chan et al.'s pairwise update (stable on long streams).

Updates are vectorised and chunked (bounded temporaries): numpy for CPU data (lower per-call
overhead than torch for the small per-layer tensors calibration produces), torch for CUDA tensors
(only the histogram comes back to the host).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from snnconvert.errors import InputError

FORMAT = "snnconvert-quantile-sketch/1"

# Elements per vectorised pass: cache-sized on CPU (temporaries are reused instead of being
# page-faulted in, and the extra memory of an update stays ~1 MiB); large on a GPU.
_CPU_CHUNK = 1 << 16
_DEVICE_CHUNK = 1 << 24
_MAX_SLOTS = 1 << 22  # buckets per sign; refuses configurations needing > 64 MiB of counts

_FIELDS = (
    "format",
    "alpha",
    "min_magnitude",
    "max_magnitude",
    "count",
    "zero_count",
    "mean",
    "m2",
    "min",
    "max",
    "min_abs",
    "positive",
    "negative",
)
_OPTIONAL_FIELDS = ("channel_max_abs",)


class SketchError(InputError, ValueError):
    """Bad input to a sketch (NaN/Inf values, bad percentile, malformed JSON).

    A ValueError for library callers, and an InputError so the CLI reports it as one line.
    """


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, (float, np.floating))) and math.isfinite(float(v))


def _chan(
    n_a: int, mean_a: float, m2_a: float, n_b: int, mean_b: float, m2_b: float
) -> tuple[int, float, float]:
    """Chan et al.'s pairwise combination of (count, mean, sum of squared deviations)."""
    if n_b == 0:
        return n_a, mean_a, m2_a
    if n_a == 0:
        return n_b, mean_b, m2_b
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / n), m2_a + m2_b + delta * delta * (n_a * n_b / n)


class QuantileSketch:
    """Memory-bounded streaming percentile estimator with relative accuracy ``alpha``.

    >>> s = QuantileSketch()
    >>> s.update(np.arange(1, 101, dtype=np.float32))
    >>> s.percentile(100), s.percentile(0)
    (100.0, 1.0)
    >>> abs(s.percentile(50) - 50.5) <= s.bin_width_at(50.5)
    True
    """

    __slots__ = (
        "_alpha",
        "_min_magnitude",
        "_max_magnitude",
        "_gamma",
        "_log_gamma",
        "_shift",
        "_top",
        "_tiny",
        "_store",
        "_count",
        "_mean",
        "_m2",
        "_min",
        "_max",
        "_min_abs",
        "_channel_max_abs",
    )

    def __init__(self, alpha: float = 0.005, min_magnitude: float = 1e-12, max_magnitude: float = 1e12):
        if not (_is_real(alpha) and 0.0 < float(alpha) < 1.0):
            raise SketchError(f"alpha must be a number in (0, 1), got {alpha!r}")
        if not (_is_real(min_magnitude) and float(min_magnitude) > 0.0):
            raise SketchError(f"min_magnitude must be a finite number > 0, got {min_magnitude!r}")
        if not (_is_real(max_magnitude) and float(max_magnitude) > float(min_magnitude)):
            raise SketchError(
                f"max_magnitude must be a finite number > min_magnitude ({min_magnitude!r}), got {max_magnitude!r}"
            )
        self._alpha = float(alpha)
        self._min_magnitude = float(min_magnitude)
        self._max_magnitude = float(max_magnitude)
        self._gamma = (1.0 + self._alpha) / (1.0 - self._alpha)
        self._log_gamma = math.log(self._gamma)
        i_lo = math.ceil(math.log(self._min_magnitude) / self._log_gamma)
        i_hi = math.ceil(math.log(self._max_magnitude) / self._log_gamma)
        # Slot 0 is "zero"; slot j in 1..top is bucket index i = shift + j.  The store holds signed
        # slots -top..top at positions 0..2*top, i.e. in ascending value order.
        self._shift = i_lo - 1
        self._top = i_hi - self._shift
        if self._top > _MAX_SLOTS:
            raise SketchError(
                f"alpha={alpha!r} over [{min_magnitude!r}, {max_magnitude!r}] needs {self._top} buckets per sign "
                f"(limit {_MAX_SLOTS}); use a larger alpha or a narrower magnitude range"
            )
        # Anything at or below `tiny` is certainly in the zero slot; clamping to it avoids log(0).
        self._tiny = max(float(self._edge(self._shift)) / 4.0, 5e-324)
        self._store = np.zeros(2 * self._top + 1, dtype=np.int64)
        self._count = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._min = math.inf
        self._max = -math.inf
        self._min_abs = math.inf
        self._channel_max_abs: np.ndarray | None = None

    # ------------------------------------------------------------------ configuration / simple stats
    @property
    def alpha(self) -> float:
        return self._alpha

    @property
    def gamma(self) -> float:
        return self._gamma

    @property
    def min_magnitude(self) -> float:
        return self._min_magnitude

    @property
    def max_magnitude(self) -> float:
        return self._max_magnitude

    @property
    def num_buckets(self) -> int:
        """Buckets per sign (the zero count comes on top)."""
        return self._top

    @property
    def count(self) -> int:
        return self._count

    @property
    def zero_count(self) -> int:
        """Values whose magnitude is at or below the zero threshold (about ``min_magnitude``)."""
        return int(self._store[self._top])

    @property
    def positive_counts(self) -> np.ndarray:
        """Copy of the positive store: element ``j`` counts bucket index ``first_bucket_index + j``."""
        return self._store[self._top + 1 :].copy()

    @property
    def negative_counts(self) -> np.ndarray:
        """Copy of the negative-magnitude store, indexed like :attr:`positive_counts`."""
        return self._store[self._top - 1 :: -1].copy()

    @property
    def first_bucket_index(self) -> int:
        """Bucket index ``i`` of element 0 of the stores (the bucket holding ``min_magnitude``)."""
        return self._shift + 1

    @property
    def min(self) -> float:
        return self._min if self._count else math.nan

    @property
    def max(self) -> float:
        return self._max if self._count else math.nan

    @property
    def min_abs(self) -> float:
        return self._min_abs if self._count else math.nan

    @property
    def max_abs(self) -> float:
        return max(abs(self._min), abs(self._max)) if self._count else math.nan

    @property
    def mean(self) -> float:
        return self._mean if self._count else math.nan

    @property
    def var(self) -> float:
        """Population variance (numpy's default ``ddof=0``)."""
        return self._m2 / self._count if self._count else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation (numpy's default ``ddof=0``)."""
        return math.sqrt(self.var) if self._count else math.nan

    @property
    def sum(self) -> float:
        return self._mean * self._count

    @property
    def sum_of_squares(self) -> float:
        return self._m2 + self._count * self._mean * self._mean

    @property
    def channel_max_abs(self) -> np.ndarray | None:
        """Running per-channel max |x| (only once ``update`` has been given ``channel_axis``)."""
        return None if self._channel_max_abs is None else self._channel_max_abs.copy()

    @property
    def nbytes(self) -> int:
        """Bytes held by the bucket counts (fixed at construction) plus any per-channel maxima."""
        n = self._store.nbytes
        if self._channel_max_abs is not None:
            n += self._channel_max_abs.nbytes
        return n

    def __repr__(self) -> str:
        return (
            f"QuantileSketch(alpha={self._alpha}, count={self._count}, min={self.min:.6g}, "
            f"max={self.max:.6g}, buckets=2x{self._top})"
        )

    # ------------------------------------------------------------------ bucket geometry
    def _edge(self, i: Any) -> Any:
        """Upper edge ``gamma**i`` of bucket index ``i``."""
        return np.exp(np.asarray(i, dtype=np.float64) * self._log_gamma)

    def _representative(self, slots: np.ndarray) -> np.ndarray:
        return 2.0 * self._edge(slots + self._shift) / (self._gamma + 1.0)

    def _slots_np(self, c: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
        """Store position (int64) of each value of the float64 array ``c``.

        ``scratch``, if given, must hold ``abs(c)`` and is overwritten.
        """
        y = np.abs(c) if scratch is None else scratch
        np.maximum(y, self._tiny, out=y)
        np.log(y, out=y)
        y /= self._log_gamma
        np.ceil(y, out=y)
        y -= self._shift
        np.clip(y, 0, self._top, out=y)
        np.copysign(y, c, out=y)
        y += self._top
        return y.astype(np.int64)

    def _slots_torch(self, c: torch.Tensor) -> torch.Tensor:
        """Torch twin of :meth:`_slots_np` (same formula, used for CUDA tensors)."""
        y = c.abs().clamp_min_(self._tiny).log_()
        y.div_(self._log_gamma).ceil_().sub_(self._shift).clamp_(0, self._top)
        return torch.copysign(y, c).add_(self._top).to(torch.int64)

    def bin_width_at(self, value: float) -> float:
        """Width of the bucket that ``value`` falls in.

        The zero bucket spans ``[-edge, edge]`` (``edge <= min_magnitude``), so its width is
        ``2 * edge``; the top bucket is open-ended, so values beyond ``max_magnitude``'s bucket get
        ``inf``.
        """
        v = float(value)
        if not math.isfinite(v):
            raise SketchError(f"bin_width_at: value must be finite, got {value!r}")
        j = abs(int(self._slots_np(np.array([v]))[0]) - self._top)
        if j == 0:
            return 2.0 * float(self._edge(self._shift))
        i = j + self._shift
        if j == self._top and abs(v) > float(self._edge(i)):
            return math.inf
        return float(self._edge(i) - self._edge(i - 1))

    # ------------------------------------------------------------------ updates
    def update(self, x: torch.Tensor | np.ndarray, channel_axis: int | None = None) -> None:
        """Add every element of ``x`` (any shape, real dtype).

        Raises ValueError on NaN/Inf (the sketch is left unchanged).  With ``channel_axis``, also
        keeps a running per-channel max |x| along that axis; the channel count must not change.
        """
        if isinstance(x, torch.Tensor):
            t = x.detach()
            if t.is_complex():
                raise TypeError(f"QuantileSketch.update: expected real numbers, got dtype {t.dtype}")
            if t.device.type == "cuda":
                self._update_torch(t, channel_axis)
                return
            t = t.cpu()  # other accelerators (e.g. MPS) may lack float64: sketch on the host
            if t.dtype not in (torch.float64, torch.float32, torch.float16):
                t = t.to(torch.float64)  # bfloat16, ints, bool: numpy lacks or would mangle them
            arr = t.numpy()
        else:
            arr = np.asarray(x)
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"QuantileSketch.update: expected real numbers, got dtype {arr.dtype}")
        self._update_numpy(arr, channel_axis)

    def _check_channel_axis(self, shape: tuple[int, ...], channel_axis: int | None) -> None:
        if channel_axis is None:
            return
        if not _is_int(channel_axis) or not -len(shape) <= channel_axis < len(shape):
            raise SketchError(f"channel_axis={channel_axis!r} is out of range for a {len(shape)}-d input")
        n_ch = shape[channel_axis]
        if self._channel_max_abs is not None and self._channel_max_abs.shape[0] != n_ch:
            raise SketchError(
                f"channel_axis {channel_axis} has {n_ch} channels but this sketch has seen "
                f"{self._channel_max_abs.shape[0]}"
            )

    def _non_finite(self, n_bad: int, n_total: int) -> SketchError:
        if n_bad:
            return SketchError(
                f"QuantileSketch.update: input has {n_bad} NaN/Inf value(s) out of {n_total}; "
                "calibration activations must be finite"
            )
        return SketchError("QuantileSketch.update: values too large for float64 statistics (|x| ~ 1e154+)")

    def _update_numpy(self, arr: np.ndarray, channel_axis: int | None) -> None:
        self._check_channel_axis(arr.shape, channel_axis)
        flat = arr.reshape(-1)
        n_total = flat.size
        if n_total == 0:
            return
        # Everything goes into locals first, so a bad chunk leaves the sketch untouched.
        count, mean, m2 = 0, 0.0, 0.0
        lo, hi, lo_abs = math.inf, -math.inf, math.inf
        keys: np.ndarray | None = None  # a single chunk is scattered into the store at commit time
        hist: np.ndarray | None = None  # several chunks are gathered in a local histogram first
        with np.errstate(invalid="ignore", over="ignore"):
            for start in range(0, n_total, _CPU_CHUNK):
                c = flat[start : start + _CPU_CHUNK].astype(np.float64, copy=False)
                n = c.size
                m_c = float(c.sum()) / n
                d = c - m_c
                np.square(d, out=d)
                m2_c = float(d.sum())
                mn, mx = float(c.min()), float(c.max())
                if not (math.isfinite(m_c) and math.isfinite(m2_c)):
                    raise self._non_finite(int(np.count_nonzero(~np.isfinite(flat))), n_total)
                a = np.abs(c)
                lo_abs = min(lo_abs, float(a.min()))
                k = self._slots_np(c, scratch=a)
                count, mean, m2 = _chan(count, mean, m2, n, m_c, m2_c)
                lo, hi = min(lo, mn), max(hi, mx)
                if n == n_total:
                    keys = k
                else:
                    if hist is None:
                        hist = np.zeros_like(self._store)
                    np.add.at(hist, k, 1)
        ch = None
        if channel_axis is not None:
            per = np.moveaxis(arr, channel_axis, 0).reshape(arr.shape[channel_axis], -1)
            ch = np.abs(per).max(axis=1).astype(np.float64)
        # Commit.
        if keys is not None:
            np.add.at(self._store, keys, 1)
        else:
            self._store += hist
        self._commit_stats(count, mean, m2, lo, hi, lo_abs, ch)

    def _update_torch(self, t: torch.Tensor, channel_axis: int | None) -> None:
        self._check_channel_axis(tuple(t.shape), channel_axis)
        flat = t.reshape(-1)
        n_total = flat.numel()
        if n_total == 0:
            return
        count, mean, m2 = 0, 0.0, 0.0
        lo, hi, lo_abs = math.inf, -math.inf, math.inf
        hist: torch.Tensor | None = None
        for start in range(0, n_total, _DEVICE_CHUNK):
            c = flat[start : start + _DEVICE_CHUNK].to(torch.float64)
            n = c.numel()
            var_c, mean_c = torch.var_mean(c, correction=0)
            mn, mx = torch.aminmax(c)
            stats = torch.stack([mean_c, var_c, mn, mx, c.abs().amin()]).tolist()
            if not all(math.isfinite(s) for s in stats):
                bad = int((~torch.isfinite(flat)).sum()) if flat.is_floating_point() else 0
                raise self._non_finite(bad, n_total)
            count, mean, m2 = _chan(count, mean, m2, n, stats[0], stats[1] * n)
            lo, hi, lo_abs = min(lo, stats[2]), max(hi, stats[3]), min(lo_abs, stats[4])
            h = torch.bincount(self._slots_torch(c), minlength=self._store.size)
            hist = h if hist is None else hist.add_(h)
        ch = None
        if channel_axis is not None:
            per = t.movedim(channel_axis, 0).reshape(t.shape[channel_axis], -1)
            ch = per.abs().amax(dim=1).to(device="cpu", dtype=torch.float64).numpy()
        assert hist is not None
        self._store += hist.cpu().numpy()
        self._commit_stats(count, mean, m2, lo, hi, lo_abs, ch)

    def _commit_stats(
        self, count: int, mean: float, m2: float, lo: float, hi: float, lo_abs: float, ch: np.ndarray | None
    ) -> None:
        self._count, self._mean, self._m2 = _chan(self._count, self._mean, self._m2, count, mean, m2)
        self._min, self._max = min(self._min, lo), max(self._max, hi)
        self._min_abs = min(self._min_abs, lo_abs)
        if ch is not None:
            self._channel_max_abs = (
                ch if self._channel_max_abs is None else np.maximum(self._channel_max_abs, ch)
            )

    # ------------------------------------------------------------------ merging
    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """Fold ``other`` into this sketch (in place; returns ``self``).  Configurations must match."""
        if not isinstance(other, QuantileSketch):
            raise TypeError(f"can only merge a QuantileSketch, got {type(other).__name__}")
        mine = (self._alpha, self._min_magnitude, self._max_magnitude)
        theirs = (other._alpha, other._min_magnitude, other._max_magnitude)
        if mine != theirs:
            raise SketchError(
                f"cannot merge sketches with different (alpha, min_magnitude, max_magnitude): {mine} vs {theirs}"
            )
        a, b = self._channel_max_abs, other._channel_max_abs
        if a is not None and b is not None and a.shape != b.shape:
            raise SketchError(f"cannot merge per-channel maxima of {a.shape[0]} and {b.shape[0]} channels")
        self._store += other._store  # safe for other is self: numpy reads before writing
        ch = None if b is None else b.copy()
        self._commit_stats(other._count, other._mean, other._m2, other._min, other._max, other._min_abs, ch)
        return self

    def copy(self) -> QuantileSketch:
        new = QuantileSketch(self._alpha, self._min_magnitude, self._max_magnitude)
        new._store[:] = self._store
        new._count, new._mean, new._m2 = self._count, self._mean, self._m2
        new._min, new._max, new._min_abs = self._min, self._max, self._min_abs
        new._channel_max_abs = None if self._channel_max_abs is None else self._channel_max_abs.copy()
        return new

    # ------------------------------------------------------------------ queries
    @staticmethod
    def _parse_p(p: float | Sequence[float]) -> tuple[np.ndarray, bool]:
        try:
            arr = np.asarray(p, dtype=np.float64)
        except (TypeError, ValueError):
            raise SketchError(f"percentile must be a number or a sequence of numbers, got {p!r}") from None
        if not np.all((arr >= 0.0) & (arr <= 100.0)):  # also rejects NaN
            raise SketchError(f"percentile must be in [0, 100], got {p!r}")
        return arr, arr.ndim == 0

    def percentile(self, p: float | Sequence[float]) -> float | np.ndarray:
        """Estimate ``numpy.percentile(all_values, p)`` (numpy's default 'linear' method).

        Returns a float for a scalar ``p``, else an array of ``p``'s shape.
        """
        arr, scalar = self._parse_p(p)
        values, counts = self.histogram()
        res = self._quantiles(values, counts, self._min, self._max, arr)
        return float(res) if scalar else res

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """The sketched values as (representative value, count) per non-empty bucket, ascending;
        zeros as the value 0. Values are not clipped to [min, max]."""
        pos = np.flatnonzero(self._store)
        signed = pos - self._top
        values = np.copysign(self._representative(np.abs(signed)), signed)
        values[signed == 0] = 0.0
        return values, self._store[pos]

    def percentile_abs(self, p: float | Sequence[float]) -> float | np.ndarray:
        """Estimate ``numpy.percentile(abs(all_values), p)``."""
        arr, scalar = self._parse_p(p)
        mags = self._store[self._top :].copy()
        mags[1:] += self._store[self._top - 1 :: -1]
        slots = np.flatnonzero(mags)
        values = self._representative(slots)
        values[slots == 0] = 0.0
        res = self._quantiles(values, mags[slots], self._min_abs, self.max_abs, arr)
        return float(res) if scalar else res

    def _quantiles(
        self, values: np.ndarray, counts: np.ndarray, lo: float, hi: float, p: np.ndarray
    ) -> np.ndarray:
        """numpy 'linear' percentiles of a histogram (``values`` ascending, non-empty ``counts``)."""
        if self._count == 0:
            raise SketchError("percentile of an empty sketch (no values were added)")
        values = np.clip(values, lo, hi)
        cum = np.cumsum(counts)
        n = int(cum[-1])
        rank = (p.reshape(-1) / 100.0) * (n - 1)  # numpy: virtual index (n-1)*q
        k_lo = np.floor(rank).astype(np.int64)
        k_hi = np.minimum(k_lo + 1, n - 1)
        t = rank - k_lo

        def order_stat(k: np.ndarray) -> np.ndarray:
            v = values[np.searchsorted(cum, k, side="right")]
            return np.where(k == 0, lo, np.where(k == n - 1, hi, v))

        a, b = order_stat(k_lo), order_stat(k_hi)
        diff = b - a
        out = np.where(t >= 0.5, b - diff * (1.0 - t), a + diff * t)  # numpy's _lerp
        out = np.where(a == b, a, out)
        return np.clip(out, lo, hi).reshape(p.shape)

    # ------------------------------------------------------------------ serialisation
    def to_json(self) -> dict:
        """Compact plain-JSON form: only non-empty buckets, as runs ``[first_bucket_index, [counts...]]``."""
        empty = self._count == 0
        d: dict[str, Any] = {
            "format": FORMAT,
            "alpha": self._alpha,
            "min_magnitude": self._min_magnitude,
            "max_magnitude": self._max_magnitude,
            "count": self._count,
            "zero_count": self.zero_count,
            "mean": self._mean,
            "m2": self._m2,
            "min": None if empty else self._min,
            "max": None if empty else self._max,
            "min_abs": None if empty else self._min_abs,
            "positive": self._runs(self._store[self._top + 1 :]),
            "negative": self._runs(self._store[self._top - 1 :: -1]),
        }
        if self._channel_max_abs is not None:
            d["channel_max_abs"] = [float(v) for v in self._channel_max_abs]
        return d

    def _runs(self, counts: np.ndarray) -> list:
        nz = np.flatnonzero(counts)
        if nz.size == 0:
            return []
        groups = np.split(nz, np.flatnonzero(np.diff(nz) != 1) + 1)
        first = self._shift + 1
        return [[first + int(g[0]), counts[g[0] : g[-1] + 1].tolist()] for g in groups]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> QuantileSketch:
        """Rebuild a sketch from :meth:`to_json` output; raises ValueError naming the first bad field."""

        def bad(field: str, why: str) -> SketchError:
            return SketchError(f"quantile sketch JSON: field '{field}' {why}")

        if not isinstance(d, Mapping):
            raise SketchError(f"quantile sketch JSON: expected an object, got {type(d).__name__}")
        for f in _FIELDS:
            if f not in d:
                raise bad(f, "is missing")
        unknown = sorted(set(d) - set(_FIELDS) - set(_OPTIONAL_FIELDS))
        if unknown:
            raise bad(str(unknown[0]), "is not a known field")
        if d["format"] != FORMAT:
            raise bad("format", f"must be '{FORMAT}', got {d['format']!r}")
        for f in ("alpha", "min_magnitude", "max_magnitude", "mean", "m2"):
            if not _is_real(d[f]):
                raise bad(f, f"must be a finite number, got {d[f]!r}")
        if not 0.0 < float(d["alpha"]) < 1.0:
            raise bad("alpha", f"must be in (0, 1), got {d['alpha']!r}")
        if not float(d["min_magnitude"]) > 0.0:
            raise bad("min_magnitude", f"must be > 0, got {d['min_magnitude']!r}")
        if not float(d["max_magnitude"]) > float(d["min_magnitude"]):
            raise bad("max_magnitude", f"must be > min_magnitude, got {d['max_magnitude']!r}")
        try:
            s = cls(float(d["alpha"]), float(d["min_magnitude"]), float(d["max_magnitude"]))
        except SketchError as e:
            raise bad("alpha", str(e)) from None
        for f in ("count", "zero_count"):
            if not _is_int(d[f]) or d[f] < 0:
                raise bad(f, f"must be a non-negative integer, got {d[f]!r}")
        count, zero = int(d["count"]), int(d["zero_count"])

        store = np.zeros_like(s._store)
        first_i, last_i = s._shift + 1, s._shift + s._top
        for f, sign in (("positive", 1), ("negative", -1)):
            runs = d[f]
            if not isinstance(runs, list):
                raise bad(
                    f, f"must be a list of [first_bucket_index, [counts...]] runs, got {type(runs).__name__}"
                )
            next_free = first_i
            for r, run in enumerate(runs):
                if not (isinstance(run, (list, tuple)) and len(run) == 2 and _is_int(run[0])):
                    raise bad(f, f"run {r} must be [first_bucket_index, [counts...]], got {str(run)[:80]}")
                start, counts = int(run[0]), run[1]
                if not isinstance(counts, (list, tuple)) or not counts:
                    raise bad(f, f"run {r} must have a non-empty list of counts")
                if not all(_is_int(c) and 0 <= c < 2**62 for c in counts):
                    raise bad(f, f"run {r}: counts must be non-negative integers")
                if start < next_free:
                    raise bad(
                        f,
                        f"run {r} starts at bucket {start}, below bucket {next_free} (unsorted, overlapping or below range)",
                    )
                end = start + len(counts) - 1
                if end > last_i:
                    raise bad(f, f"run {r} ends at bucket {end}, above the top bucket {last_i}")
                j = start - s._shift  # slots j..j+len-1
                if sign > 0:
                    store[s._top + j : s._top + j + len(counts)] = counts
                else:
                    store[s._top - j - len(counts) + 1 : s._top - j + 1] = counts[::-1]
                next_free = end + 1
        store[s._top] = zero
        total = int(store.sum())
        if total != count:
            raise bad("count", f"({count}) does not equal zero_count plus the bucket counts ({total})")

        if count == 0:
            for f in ("min", "max", "min_abs"):
                if d[f] is not None:
                    raise bad(f, "must be null for an empty sketch")
        else:
            for f in ("min", "max", "min_abs"):
                if not _is_real(d[f]):
                    raise bad(f, f"must be a finite number, got {d[f]!r}")
            lo, hi, lo_abs = float(d["min"]), float(d["max"]), float(d["min_abs"])
            if lo > hi:
                raise bad("min", f"({lo}) is greater than max ({hi})")
            if not 0.0 <= lo_abs <= max(abs(lo), abs(hi)):
                raise bad("min_abs", f"({lo_abs}) must be in [0, max(|min|, |max|)]")
            if store[: s._top].any() and lo >= 0.0:
                raise bad("min", f"({lo}) is not negative although negative buckets are non-empty")
            if store[s._top + 1 :].any() and hi <= 0.0:
                raise bad("max", f"({hi}) is not positive although positive buckets are non-empty")
            s._min, s._max, s._min_abs = lo, hi, lo_abs
        if float(d["m2"]) < 0.0:
            raise bad("m2", "must be >= 0")

        ch = d.get("channel_max_abs")
        if ch is not None:
            if not isinstance(ch, list) or not all(_is_real(v) and v >= 0 for v in ch):
                raise bad("channel_max_abs", "must be a list of finite non-negative numbers")
            s._channel_max_abs = np.asarray(ch, dtype=np.float64)

        s._store = store
        s._count = count
        s._mean, s._m2 = float(d["mean"]), float(d["m2"])
        return s
