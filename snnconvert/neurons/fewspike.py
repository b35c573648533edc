"""SIT Spiking-Softmax building blocks: the few-spike SI-exp neuron and the SI-norm IF layer.

SI-exp (after Stöckl & Maass 2021, used by SIT 2024) approximates ``exp(x)`` with ``K`` steps::

    v(1) = x
    z(t) = Heaviside(v(t) - T(t))          # spike, 0/1 (fires when v(t) >= T(t))
    v(t+1) = v(t) - h(t) * z(t)            # reset by h(t)
    y = sum_t d(t) * z(t)                  # ~ exp(x)

The parameters ``T, h, d`` are fitted offline (``python -m tools.fit_siexp`` in the repository) on ``x`` in
``[-R, 0]``: the converter subtracts each attention row's maximum first (softmax is shift
invariant), so inputs are ``<= 0``; inputs below ``-R`` underflow to an output of exactly 0
(no spikes). Nothing is clamped above 0 -- callers guarantee ``x <= 0``.

SI-norm: a regular input spike train of ``n_spike`` spikes (one per step, each encoding 1.0) drives
one integrate-and-fire neuron per element, weight ``w = e_i``, threshold ``V_th = sum_j e_j``,
reset by subtraction. Its output count is ``floor(n_spike * e_i / sum_j e_j)``: softmax quantised
to ``1 / n_spike``.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from snnconvert.errors import InputError

TABLES_PATH = Path(__file__).with_name("siexp_tables.json")

__all__ = [
    "TABLES_PATH",
    "FewSpikeExp",
    "load_tables",
    "table_entry",
    "covering_table",
    "si_norm",
    "si_norm_counts",
    "siexp",
    "softmax_by_spikes",
    "spiking_softmax",
]


@functools.lru_cache(maxsize=8)
def _load_tables_cached(path: str) -> dict[str, Any]:
    try:
        with open(path) as fh:
            data = json.load(fh)
    except FileNotFoundError as exc:
        raise InputError(
            f"{path}: SI-exp tables not found (refit them with `python -m tools.fit_siexp` from the repository root)"
        ) from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: malformed SI-exp tables ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("tables"), list):
        raise InputError(f"{path}: SI-exp tables must be an object with a 'tables' list")
    return data


def load_tables(path: str | Path | None = None) -> dict[str, Any]:
    """The fitted SI-exp tables (parsed JSON, cached; do not mutate the result)."""
    return _load_tables_cached(str(path if path is not None else TABLES_PATH))


def covering_table(K: int, R: float, path: str | Path | None = None) -> tuple[dict[str, Any], bool]:
    """The table for ``K`` steps fitted on ``[-R_fit, 0]`` with the smallest ``R_fit >= R``; if none
    covers ``R``, the widest one and False."""
    try:
        R = float(R)
    except (TypeError, ValueError):
        raise InputError(f"SI-exp range R must be a positive finite number, got {R!r}") from None
    if not (math.isfinite(R) and R > 0):
        raise InputError(f"SI-exp range R must be a positive finite number, got {R!r}")
    entries = [
        e for e in load_tables(path)["tables"] if int(e["K"]) == int(K) and float(e["range"][1]) == 0.0
    ]
    if not entries:
        raise InputError(f"no fitted SI-exp table for K={K}")
    fits = sorted(entries, key=lambda e: -float(e["range"][0]))
    for e in fits:
        if -float(e["range"][0]) >= R - 1e-12:
            return e, True
    return fits[-1], False


def table_entry(K: int, R: float, path: str | Path | None = None) -> dict[str, Any]:
    """The table for ``K`` steps fitted on ``[-R_fit, 0]`` with the smallest ``R_fit >= R``."""
    e, covered = covering_table(K, R, path)
    if not covered:
        raise InputError(
            f"no SI-exp table for K={K} covers R={R} (largest fitted range is [{float(e['range'][0]):g}, 0])"
        )
    return e


class FewSpikeExp(torch.nn.Module):
    """The K-step SI-exp neuron, run exactly (hard threshold), elementwise.

    Buffers ``T``, ``h``, ``d`` (``K`` values each, float64 by default). Inputs below ``lo``
    (``-R``) give output 0 and no spikes. ``forward`` computes in the promoted dtype of the input
    and the buffers (float64 with the default buffers) and returns ``y`` in the input's dtype.
    """

    T: torch.Tensor
    h: torch.Tensor
    d: torch.Tensor

    def __init__(self, T: Any, h: Any, d: Any, lo: float = float("-inf")) -> None:
        super().__init__()
        T_, h_, d_ = (torch.as_tensor(a, dtype=torch.float64).flatten().clone() for a in (T, h, d))
        if not (T_.numel() == h_.numel() == d_.numel()) or T_.numel() == 0:
            raise InputError(
                f"SI-exp needs T, h, d of equal non-zero length, got {T_.numel()}, {h_.numel()}, {d_.numel()}"
            )
        if not all(bool(torch.isfinite(a).all()) for a in (T_, h_, d_)):
            raise InputError("SI-exp parameters must be finite")
        self.register_buffer("T", T_)
        self.register_buffer("h", h_)
        self.register_buffer("d", d_)
        self.lo = float(lo)

    @property
    def K(self) -> int:
        return int(self.T.numel())

    @property
    def R(self) -> float:
        return -self.lo

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> FewSpikeExp:
        return cls(entry["T"], entry["h"], entry["d"], lo=float(entry["range"][0]))

    @classmethod
    def from_table(cls, K: int, R: float, path: str | Path | None = None) -> FewSpikeExp:
        """Load the shipped table for ``K`` steps, fitted on the smallest ``[-R_fit, 0]`` with ``R_fit >= R``."""
        return cls.from_entry(table_entry(K, R, path))

    def extra_repr(self) -> str:
        return f"K={self.K}, lo={self.lo:g}"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(y, spikes)``: ``y ~ exp(x)`` (input dtype) and the spike count per element (int64)."""
        ct = torch.promote_types(x.dtype, self.T.dtype)
        y, n = siexp(x.to(ct), self.T.tolist(), self.h.tolist(), self.d.tolist(), self.lo)
        return y.to(x.dtype), n.to(torch.int64)


def siexp(
    x: torch.Tensor, T: Sequence[float], h: Sequence[float], d: Sequence[float], lo: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The SI-exp recurrence in ``x``'s dtype: ``(y, spike count)``, both shaped like ``x``.

    Plain Python floats for the parameters, so the same code runs eagerly, on meta tensors (shape
    inference) and under ``torch.export`` (the portable artefact)."""
    v = x
    active = v >= lo  # False below the fitted range and for NaN: underflow -> no spikes, output 0
    y = torch.zeros_like(v)
    n = torch.zeros_like(v)
    for t in range(len(T)):
        z = ((v >= T[t]) & active).to(v.dtype)
        y = y + d[t] * z
        v = v - h[t] * z
        n = n + z
    return y, n


@functools.lru_cache(maxsize=32)
def _cached_exp(K: int, R: float, path: str | None) -> FewSpikeExp:
    return FewSpikeExp.from_table(K, R, path)


def si_norm(e: torch.Tensor, dim: int = -1, n_spike: int = 64, v0: float = 0.0) -> torch.Tensor:
    """SI-norm IF dynamics, simulated step by step; returns the output spike count per element (int64).

    Each element is an IF neuron with weight ``e_i``, threshold ``V_th = sum_j e_j`` along ``dim``
    and reset by subtraction, its membrane starting at ``v0 * V_th``, driven by ``n_spike`` input
    spikes (one per step): ``v(t) = v(t-1) + e_i - V_th * z(t)``, ``z(t) = [v(t-1) + e_i >= V_th]``.
    Float64 at least, vectorised over all elements. Rows whose sum is not positive never fire.
    The reference for :func:`si_norm_counts` (its closed form).
    """
    _check_n_spike(n_spike)
    ct = torch.promote_types(e.dtype, torch.float64)
    w = e.to(ct)
    vth = w.sum(dim=dim, keepdim=True)
    live = vth > 0
    vth_b = torch.where(live, vth, torch.ones_like(vth)).expand_as(w)
    live_b = live.expand_as(w)
    v = float(v0) * vth_b
    count = torch.zeros(w.shape, dtype=torch.int64, device=w.device)
    for _ in range(int(n_spike)):
        v = v + w  # input spike s_in(t) = 1, weight e_i
        z = (v >= vth_b) & live_b
        v = v - vth_b * z.to(ct)  # reset by subtraction
        count += z
    return count


def si_norm_counts(e: torch.Tensor, dim: int = -1, n_spike: int = 64, v0: float = 0.0) -> torch.Tensor:
    """What :func:`si_norm` counts, in closed form: ``floor(v0 + n_spike * e_i / sum_j e_j)``.

    A neuron whose weight is at most its threshold fires at most once per input spike, so after
    ``n`` inputs its count is the number of thresholds its charge ``v0*V + n*e_i`` has crossed.
    Returned in ``e``'s dtype (no loop: the simulator runs it at every step)."""
    vth = e.sum(dim=dim, keepdim=True)
    ratio = torch.where(vth > 0, e / torch.where(vth > 0, vth, torch.ones_like(vth)), torch.zeros_like(e))
    return torch.clamp(torch.floor(v0 + n_spike * ratio), 0, n_spike)


def _check_n_spike(n_spike: int) -> None:
    if int(n_spike) != n_spike or n_spike < 0:
        raise InputError(f"n_spike must be a non-negative integer, got {n_spike!r}")


def softmax_by_spikes(
    x: torch.Tensor,
    dim: int,
    T: Sequence[float],
    h: Sequence[float],
    d: Sequence[float],
    lo: float,
    n_spike: int,
    v0: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Spiking-Softmax with an explicit SI-exp table: ``(probs, exp_spikes, norm_spikes)``, all in
    ``x``'s dtype and shape. Subtracts the row max (softmax is shift invariant, so SI-exp only ever
    sees ``x <= 0``), runs SI-exp, then SI-norm in closed form; ``probs = count / n_spike``."""
    xs = x - x.amax(dim=dim, keepdim=True)
    e, exp_spikes = siexp(xs, T, h, d, lo)
    counts = si_norm_counts(e, dim=dim, n_spike=n_spike, v0=v0)
    probs = counts / float(n_spike) if n_spike else torch.zeros_like(x)
    return probs, exp_spikes, counts


def spiking_softmax(
    x: torch.Tensor,
    dim: int = -1,
    K: int = 12,
    R: float = 8.0,
    n_spike: int = 64,
    v0: float = 0.0,
    *,
    path: str | Path | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """SIT Spiking-Softmax: subtract the row max, SI-exp (``K`` steps, table for range ``R``), SI-norm.

    Returns ``(probs, stats)``: ``probs = count / n_spike`` (input dtype, softmax quantised to
    ``1/n_spike``; rows sum to at most 1 when ``v0 = 0``) and ``stats`` with per-element spike
    counts (``exp_spikes``, ``norm_spikes``, int64), their totals, the element/row counts, the
    number of inputs that underflowed (below ``-R_fit`` after the shift) and the table used.
    SI-exp runs in float64 (``x`` is promoted), as the tables were fitted.
    """
    _check_n_spike(n_spike)
    module = _cached_exp(int(K), float(R), None if path is None else str(path))
    x64 = x.to(torch.promote_types(x.dtype, torch.float64))
    probs, exp_spikes, counts = softmax_by_spikes(
        x64, dim, module.T.tolist(), module.h.tolist(), module.d.tolist(), module.lo, int(n_spike), v0
    )
    xs = x64 - x64.amax(dim=dim, keepdim=True)
    n_rows = x.numel() // max(1, x.shape[dim]) if x.dim() else 1
    stats: dict[str, Any] = {
        "exp_spikes": exp_spikes.to(torch.int64),
        "norm_spikes": counts.to(torch.int64),
        "exp_spike_total": int(exp_spikes.sum()),
        "norm_spike_total": int(counts.sum()),
        "input_spike_total": int(n_rows * n_spike),
        "neurons": int(x.numel()),
        "rows": int(n_rows),
        "underflow": int((~(xs >= module.lo)).sum()),
        "K": module.K,
        "R_fit": module.R,
        "n_spike": int(n_spike),
    }
    return probs.to(x.dtype), stats
