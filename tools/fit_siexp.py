"""Offline, deterministic fitter for the SI-exp few-spike tables (``T``, ``h``, ``d`` per ``K`` and range).

    python -m tools.fit_siexp [--out PATH] [--K 8 12 16] [--R 1 2 4 8 16] [--no-paper] [--jobs 2] [--refine N]

Run from the repository root; it writes ``snnconvert/neurons/siexp_tables.json`` (shipped as data).

The shipped tables come from ``--K 8 12 16 --R 1 2 4 8 16 --seed 2024 --refine 3000`` (the
``command`` of every entry): about 28 CPU-minutes (1,710 s wall, one worker, on a shared machine). Without ``--refine`` the
fit takes about 17 CPU-minutes (about 9-10 min wall on 2 free cores).

Fits ``exp(x)`` on ``[-R, 0]`` for every ``R`` (the converter subtracts the row max, so SI-exp
inputs are ``<= 0``) and, for comparison with SIT (Li et al. 2024), on the paper's ``[-1, 1]``.

The method (see ``fit_all``):

* ``d`` is never searched: for fixed ``(T, h)`` the spike pattern ``Z`` (points x K, binary) is fixed
  and ``y = Z d`` is linear in ``d``, so ``d`` is the exact least-squares solution every time. (So the
  error is bounded below by that of the best piecewise-constant fit with as many pieces as there are
  distinct spike patterns, at most 2^K; good tables are "counters" with many pieces of about equal
  height, narrow where exp is steep.)
* ``(T, h)`` (2K numbers, T and h independent, h may be negative) are searched globally by
  differential evolution (DE/best/1/bin, F dithered in [0.3, 0.9], CR = 0.5, population 10 x 2K),
  with successive halving over deterministic restarts (``SCHEDULES``: e.g. for K = 12, 8 runs x 500
  generations, the best 3 go on 500 more, the best 2 of those 1000 more). The search objective is
  the weighted RMSE on 1,000 points placed densely where exp is steep (density ~ exp(2x/3), the
  optimal piecewise-constant knot density, plus a uniform floor) with weights that make it an
  estimate of the uniform RMSE; evaluated in float32 batches.
* One run per table for K is seeded with the best table of the previous K in the run plus
  never-firing steps, so adding steps does not make a fit worse.
* The two best candidates are polished by a coordinate pattern search (search objective, then the
  exact 10,000-point metric), and ``d`` is re-solved in float64 with every output kept >= 0 (SI-norm
  uses the outputs as weights).
* With ``--refine N`` the polished table is then refined by basin hopping (``refine``): ``N`` times
  a random kick of the best point followed by an L-BFGS-B descent on the *exact continuous* error
  (``continuous_mse``: the pieces of constant spike pattern are tracked exactly, the squared error is
  integrated in closed form, and its gradient in ``(T, h)`` is analytic -- the error is continuous
  and piecewise smooth in ``(T, h)`` although any grid metric is piecewise constant), then the
  pattern search on the 10,000-point metric again; kept only if the 10,000-point RMSE improves.
  This is what gradient methods need: the DE/pattern-search optimum is not a local optimum of the
  continuous error, and descending it gains 2-27 % at K = 12 (e.g. [-1, 0]: 0.00292 -> 0.00263,
  [-8, 0]: 0.00661 -> 0.00480) and up to 39 % at K = 16. Needs scipy (a dev dependency).

Tried and dropped (worse for the same time): coordinate descent from a binary successive-
approximation start (~0.005 at K = 12 on [-1, 0]), simulated annealing, JADE, CMA-ES (0.0036 on
[-1, 0], 0.009 on [-4, 0]), a beta-expansion parametrisation, LP designs of (T, h) for a greedy
y-domain expansion, and surrogate-gradient training with annealed sigmoid steepness (the soft
relaxation fits exp almost exactly at low steepness and falls apart when annealed).
With the continuous error, also tried: longer basin hopping (5,000 descents on [-1, 0] at K = 12
stay at 0.00263, reached after ~900), a memetic DE whose every trial is L-BFGS-B-descended
(0.0038 after 150 s from random starts; seeded with the table it collapses onto the same 0.00263
basin) and multistart descents from random points (best 0.0089 of 4,900). The 0.0015 target at
K = 12 on [-1, 0] is not reached: the outputs are additive in the spikes while exp is
multiplicative in the x-offsets, so good (T, h) basins are rare and all methods end in the same few.

The metric recorded per table (``rmse``) is the RMSE over 10,000 evenly spaced points of the fit
range of the exact hard-threshold recurrence -- what ``FewSpikeExp`` computes. ``rmse_dense``
uses 200,001 points (a check that nothing exploits the grid).

Everything is seeded from ``--seed`` and the (K, range, restart) triple; one process per task
(``--jobs``), each single-threaded, so results do not depend on scheduling. Written atomically.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    # Single-threaded BLAS (faster for these small products, reproducible), set before numpy loads; only
    # when run as the script (the spawned workers inherit it), never on import by tests or other code.
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from snnconvert.atomic import write_json  # noqa: E402
from snnconvert.neurons.fewspike import TABLES_PATH  # noqa: E402

DEFAULT_K = (8, 12, 16)
DEFAULT_R = (1.0, 2.0, 4.0, 8.0, 16.0)
PAPER_RANGE = (-1.0, 1.0)
N_EVAL = 10_000
N_DENSE = 200_001
N_SEARCH = 1_000
DEFAULT_SEED = 2024
FORMAT = "snnconvert-siexp-tables/1"
PROG = "python -m tools.fit_siexp"
DESCRIPTION = "Offline, deterministic fitter for the SI-exp few-spike tables (T, h, d per K and range)."

# Search budget per table, successive halving: stages of (runs kept, generations); population = 10 x 2K.
# E.g. 8 DE runs x 500 generations, the best 3 go on for 500 more, the best 2 of those for 1000 more.
Schedule = tuple[tuple[int, int], ...]
SCHEDULES: dict[int, Schedule] = {
    8: ((6, 400), (2, 800)),
    12: ((8, 500), (3, 500), (2, 1000)),  # the K the converter uses by default: the largest budget
    16: ((6, 500), (2, 1000)),
}
DEFAULT_SCHEDULE: Schedule = ((6, 500), (2, 1000))
PAPER_SCHEDULE: Schedule = ((4, 500), (1, 1000))  # the [-1, 1] comparison tables
POLISH_ITERS = 10  # pattern-search moves on the 10k-point metric
REFINE_RESTART = 999  # seed stream of the basin-hopping refinement
STALL_GENS = 300  # a restart stops early when its best has not improved for this many generations


# ---------------------------------------------------------------------------------------------
# exact evaluation (float64), the reference recurrence
# ---------------------------------------------------------------------------------------------


def eval_grid(lo: float, hi: float, n: int = N_EVAL) -> np.ndarray:
    """The metric's points: ``n`` evenly spaced points on ``[lo, hi]``."""
    return np.linspace(lo, hi, n)


def spike_patterns(x: np.ndarray, T: Sequence[float], h: Sequence[float]) -> np.ndarray:
    """Spike matrix ``Z`` (len(x) x K, 0/1 float64) of the hard-threshold recurrence."""
    v = np.array(x, dtype=np.float64, copy=True)
    Z = np.empty((v.size, len(T)), dtype=np.float64)
    for t, (Tt, ht) in enumerate(zip(T, h, strict=True)):
        z = v >= Tt
        Z[:, t] = z
        v = v - ht * z
    return Z


def siexp_numpy(
    x: np.ndarray, T: Sequence[float], h: Sequence[float], d: Sequence[float], lo: float
) -> np.ndarray:
    """Reference SI-exp in numpy float64 (inputs below ``lo`` -> 0), same as ``FewSpikeExp``."""
    x = np.asarray(x, dtype=np.float64)
    Z = spike_patterns(x, T, h)
    y = np.zeros(x.shape, dtype=np.float64)
    for t in range(len(T)):
        y = y + float(d[t]) * Z[:, t]
    return np.where(x >= lo, y, 0.0)


def solve_d(x: np.ndarray, T: Sequence[float], h: Sequence[float]) -> np.ndarray:
    """Least-squares output weights for the pattern of ``(T, h)`` on points ``x`` (target exp), with every
    output ``y = Z d`` kept >= 0 (SI-norm uses the outputs as synaptic weights; exp is positive).

    Plain least squares first; while some spike pattern's output is negative, those patterns are
    pinned to exactly 0 (equality constraints, solved through the null space) -- a small active set.
    """
    Z = spike_patterns(x, T, h)
    f = np.exp(x)
    U = np.unique(Z, axis=0)
    active = np.zeros(len(U), dtype=bool)
    for _ in range(len(U) + 1):
        if active.any():
            _, sv, Vt = np.linalg.svd(U[active])
            rank = int(np.sum(sv > 1e-9 * sv.max()))
            N = Vt[rank:].T  # basis of {d : U_active d = 0}
            if N.shape[1] == 0:
                return np.zeros(Z.shape[1])
            c, *_ = np.linalg.lstsq(Z @ N, f, rcond=None)
            d = N @ c
        else:
            d, *_ = np.linalg.lstsq(Z, f, rcond=None)
        neg = (U @ d < 0.0) & ~active
        if not neg.any():
            return d
        active |= neg
    return d


def rmse_of(x: np.ndarray, T: Sequence[float], h: Sequence[float], d: Sequence[float], lo: float) -> float:
    r = siexp_numpy(x, T, h, d, lo) - np.exp(x)
    return float(np.sqrt(np.mean(r * r)))


# ---------------------------------------------------------------------------------------------
# fast batched search objective (float32)
# ---------------------------------------------------------------------------------------------


def search_points(
    lo: float, hi: float, n: int = N_SEARCH, floor: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """Points dense where exp is steep, with weights (sum 1) so the weighted MSE estimates the uniform one."""
    xs = np.linspace(lo, hi, 20_001)
    w = hi - lo
    g = np.exp(2.0 * xs / 3.0)
    dens = floor / w + (1.0 - floor) * g / np.trapezoid(g, xs)
    cdf = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2.0 * np.diff(xs))])
    cdf /= cdf[-1]
    x = np.interp((np.arange(n) + 0.5) / n, cdf, xs)
    wt = 1.0 / np.interp(x, xs, dens)
    return x, wt / wt.sum()


class BatchObjective:
    """Weighted RMSE with least-squares ``d`` for a batch of parameter vectors ``[T..., h...]``."""

    def __init__(self, x: np.ndarray, weights: np.ndarray, K: int, chunk: int = 32) -> None:
        self.x = x.astype(np.float32)
        self.f = np.exp(x).astype(np.float32)
        self.sw = np.sqrt(weights).astype(np.float32)
        self.fw = self.f * self.sw
        self.K = K
        self.chunk = chunk
        self.evals = 0
        self._buf: tuple[np.ndarray, ...] | None = None

    def _chunk(self, P: np.ndarray) -> np.ndarray:
        K, n, m = self.K, self.x.size, len(P)
        if self._buf is None or self._buf[0].shape[0] < m:
            self._buf = (
                np.empty((m, n), np.float32),
                np.empty((m, n), np.float32),
                np.empty((m, K, n), np.float32),
                np.empty((m, K, n), np.float32),
            )
        v, tmp, Z, Zw = (b[:m] for b in self._buf)
        T = P[:, :K].astype(np.float32)
        h = P[:, K:].astype(np.float32)
        v[:] = self.x
        for t in range(K):
            z = Z[:, t]
            np.greater_equal(v, T[:, t : t + 1], out=z, casting="unsafe")
            np.multiply(z, h[:, t : t + 1], out=tmp)
            v -= tmp
        np.multiply(Z, self.sw, out=Zw)
        G = np.matmul(Zw, Zw.transpose(0, 2, 1)).astype(np.float64)
        b = np.matmul(Zw, self.fw).astype(np.float64)
        G += 1e-9 * np.eye(K)
        d = np.linalg.solve(G, b[..., None])
        r = np.matmul(d.astype(np.float32).transpose(0, 2, 1), Zw)[:, 0] - self.fw
        return np.sqrt(np.einsum("pn,pn->p", r, r).astype(np.float64))

    def __call__(self, P: np.ndarray) -> np.ndarray:
        P = np.atleast_2d(P)
        out = np.empty(len(P))
        for s in range(0, len(P), self.chunk):
            out[s : s + self.chunk] = self._chunk(P[s : s + self.chunk])
        self.evals += len(P)
        return np.nan_to_num(out, nan=np.inf)


def bounds(K: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    w = hi - lo
    lower = np.concatenate([np.full(K, lo - 0.5 * w), np.full(K, -0.2 * w)])
    upper = np.concatenate([np.full(K, hi + 0.2 * w), np.full(K, 1.2 * w)])
    return lower, upper


@dataclass
class DEState:
    """A DE run that can be resumed (in another process): population, values, generator, stall counter."""

    X: np.ndarray
    F: np.ndarray
    rng: np.random.Generator
    since: int = 0
    gens: int = 0

    @property
    def best(self) -> float:
        return float(self.F.min())

    @property
    def best_x(self) -> np.ndarray:
        return self.X[int(np.argmin(self.F))].copy()


def de_init(
    obj: BatchObjective,
    lower: np.ndarray,
    upper: np.ndarray,
    pop: int,
    rng: np.random.Generator,
    init: np.ndarray | None = None,
) -> DEState:
    X = lower + rng.random((pop, lower.size)) * (upper - lower)
    if init is not None and len(init):
        X[: len(init)] = np.clip(init, lower, upper)
    return DEState(X, obj(X), rng)


def differential_evolution(
    obj: BatchObjective,
    lower: np.ndarray,
    upper: np.ndarray,
    state: DEState,
    gens: int,
    cr: float = 0.5,
    f_range: tuple[float, float] = (0.3, 0.9),
) -> DEState:
    """DE/best/1/bin, F dithered per generation, synchronous (batched) selection; runs ``gens`` more
    generations or until the best has not improved for ``STALL_GENS`` generations."""
    X, F, rng = state.X, state.F, state.rng
    pop, D = X.shape
    idx = np.arange(pop)
    best = float(F.min())
    state.since = 0
    for _ in range(gens):
        fm = rng.uniform(*f_range)
        b = int(np.argmin(F))
        r1 = (idx + rng.integers(1, pop, size=pop)) % pop
        r2 = (r1 + rng.integers(1, pop - 1, size=pop)) % pop
        r2 = np.where(r2 == idx, (r2 + 1) % pop, r2)
        mutant = X[b] + fm * (X[r1] - X[r2])
        out = (mutant < lower) | (mutant > upper)
        mutant = np.where(out, lower + rng.random(mutant.shape) * (upper - lower), mutant)
        mask = rng.random((pop, D)) < cr
        mask[idx, rng.integers(D, size=pop)] = True
        trial = np.where(mask, mutant, X)
        Ft = obj(trial)
        keep = Ft <= F
        X[keep] = trial[keep]
        F[keep] = Ft[keep]
        state.gens += 1
        cur = float(F.min())
        if cur < best - 1e-12:
            best, state.since = cur, 0
        else:
            state.since += 1
            if state.since >= STALL_GENS:
                break
    return state


def pattern_search(
    obj: BatchObjective, p: np.ndarray, scale: float, max_iter: int = 100
) -> tuple[float, np.ndarray]:
    """Steepest-descent over single-coordinate moves of many sizes (batched), until no move helps."""
    D = p.size
    steps = scale * np.concatenate([-np.geomspace(1e-5, 0.3, 16), np.geomspace(1e-5, 0.3, 16)])
    best = float(obj(p[None])[0])
    for _ in range(max_iter):
        C = np.repeat(p[None], D * steps.size, 0)
        C[np.arange(len(C)), np.repeat(np.arange(D), steps.size)] += np.tile(steps, D)
        e = obj(C)
        j = int(np.argmin(e))
        if e[j] < best - 1e-12:
            best, p = float(e[j]), C[j]
        else:
            break
    return best, p


# ---------------------------------------------------------------------------------------------
# exact continuous objective with gradient (for the refinement stage)
# ---------------------------------------------------------------------------------------------


def pieces(
    T: Sequence[float], h: Sequence[float], lo: float, hi: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact intervals ``[a_i, b_i]`` of ``[lo, hi]`` on which the spike pattern ``Z_i`` is constant.

    On an interval ``v(t) = x - offset`` (slope 1), so step ``t`` splits it at ``x = T(t) + offset``
    (left part silent, right part fires). Intervals are kept in increasing order.
    """
    K = len(T)
    a = np.array([float(lo)])
    b = np.array([float(hi)])
    off = np.zeros(1)
    Z = np.zeros((1, K), dtype=bool)
    for t in range(K):
        c = float(T[t]) + off
        fire = a >= c
        split = (a < c) & (c < b)
        if split.any():
            idx = np.repeat(np.arange(a.size), np.where(split, 2, 1))
            first = np.r_[True, idx[1:] != idx[:-1]]
            s = split[idx]
            left, right = s & first, s & ~first
            a, b, cc = a[idx], b[idx], c[idx]
            b[left] = cc[left]
            a[right] = cc[right]
            fire = fire[idx] | right
            off, Z = off[idx], Z[idx]
        Z[:, t] = fire
        off = off + float(h[t]) * fire
    return a, b, Z


def continuous_mse(p: np.ndarray, K: int, lo: float, hi: float) -> tuple[float, np.ndarray]:
    """Mean squared error of the hard-threshold recurrence against exp over the continuum ``[lo, hi]``
    (least-squares ``d``, integrals in closed form on the exact pieces) and its gradient in
    ``p = [T..., h...]``.

    The error is continuous and piecewise smooth in ``(T, h)``: a breakpoint between pieces ``i`` and
    ``i + 1`` is created by the first step ``t`` where their patterns differ, at
    ``x_b = T(t) + sum_{s<t} h(s) Z_i(s)``; with ``d`` optimal (envelope theorem) moving ``x_b`` changes
    the error by ``(y_i - e^x_b)^2 - (y_{i+1} - e^x_b)^2`` per unit.
    """
    a, b, Z = pieces(p[:K], p[K:], lo, hi)
    Zf = Z.astype(np.float64)
    L = b - a
    i1 = np.exp(b) - np.exp(a)
    i2 = 0.5 * (np.exp(2.0 * b) - np.exp(2.0 * a))
    G = (Zf * L[:, None]).T @ Zf + 1e-12 * np.eye(K)
    r = Zf.T @ i1
    d = np.linalg.solve(G, r)
    w = hi - lo
    mse = max(float(i2.sum() - 2.0 * d @ r + d @ G @ d), 0.0) / w
    y = Zf @ d
    eb = np.exp(b[:-1])
    gb = ((y[:-1] - eb) ** 2 - (y[1:] - eb) ** 2) / w
    tb = np.argmax(Z[:-1] != Z[1:], axis=1)
    gT = np.bincount(tb, weights=gb, minlength=K)
    gh = ((Zf[:-1] * (np.arange(K)[None, :] < tb[:, None])) * gb[:, None]).sum(0)
    return mse, np.concatenate([gT, gh])


def refine(K: int, lo: float, hi: float, p: Sequence[float], iters: int, seed: int) -> np.ndarray:
    """Basin hopping on the continuous objective: ``iters`` times perturb the best point (one
    coordinate redrawn, one or two coordinates or one step's ``(T, h)`` kicked, or all jittered) and
    descend with L-BFGS-B (exact gradient, within ``bounds``); keep strict improvements."""
    from scipy.optimize import minimize  # dev dependency (via scikit-learn); only this stage needs it

    lower, upper = bounds(K, lo, hi)
    box = list(zip(lower, upper, strict=True))
    w = hi - lo
    rng = np.random.default_rng(_task_seed(seed, K, lo, hi, REFINE_RESTART))

    def local(q: np.ndarray) -> tuple[float, np.ndarray]:
        res = minimize(
            continuous_mse,
            np.clip(q, lower, upper),
            args=(K, lo, hi),
            jac=True,
            method="L-BFGS-B",
            bounds=box,
            options={"maxiter": 500},
        )
        return float(res.fun), np.asarray(res.x, dtype=np.float64)

    fb, pb = local(np.asarray(p, dtype=np.float64))
    for _ in range(iters):
        q = pb.copy()
        move = int(rng.integers(5))
        if move == 0:
            i = int(rng.integers(2 * K))
            q[i] = lower[i] + rng.random() * (upper[i] - lower[i])
        elif move == 1:
            q += rng.normal(0.0, 0.01 * w, 2 * K)
        elif move == 2:
            q[int(rng.integers(2 * K))] += rng.normal(0.0, 0.05 * w)
        elif move == 3:
            i, j = rng.integers(2 * K, size=2)
            q[i] += rng.normal(0.0, 0.05 * w)
            q[j] += rng.normal(0.0, 0.05 * w)
        else:
            ij = np.array([int(rng.integers(K))] * 2) + np.array([0, K])
            q[ij] = lower[ij] + rng.random(2) * (upper[ij] - lower[ij])
        fq, q = local(q)
        if fq < fb * (1.0 - 1e-9):
            fb, pb = fq, q
    return pb


# ---------------------------------------------------------------------------------------------
# one table
# ---------------------------------------------------------------------------------------------


def _task_seed(seed: int, K: int, lo: float, hi: float, restart: int) -> int:
    return int(
        np.random.SeedSequence(
            [seed, K, int(round(1000 * -lo)), int(round(1000 * hi)), restart]
        ).generate_state(1)[0]
    )


def _de_stage(
    args: tuple[int, float, float, DEState | None, int, int, list[float] | None],
) -> tuple[DEState, int]:
    """Start (state None: seeded from ``seed``, ``restart``; ``init`` = one seeded individual) or resume a DE run."""
    (K, lo, hi, state, seed_restart, gens, init) = args[:7]
    seed, restart = divmod(seed_restart, 1000)
    x, w = search_points(lo, hi)
    obj = BatchObjective(x, w, K)
    lower, upper = bounds(K, lo, hi)
    if state is None:
        rng = np.random.default_rng(_task_seed(seed, K, lo, hi, restart))
        seeds = None if init is None else np.asarray(init, dtype=np.float64)[None]
        state = de_init(obj, lower, upper, pop=20 * K, rng=rng, init=seeds)
    state = differential_evolution(obj, lower, upper, state, gens)
    return state, obj.evals


def _extend(entry_p: Sequence[float], K_old: int, K_new: int, lo: float, hi: float) -> list[float]:
    """A K_old solution as a K_new vector: extra steps never fire (threshold above the range)."""
    p = np.asarray(entry_p, dtype=np.float64)
    T, h = p[:K_old], p[K_old:]
    extra = K_new - K_old
    w = hi - lo
    T_new = np.concatenate([T, np.full(extra, hi + 0.19 * w)])
    h_new = np.concatenate([h, np.full(extra, 0.01 * w)])
    return np.concatenate([T_new, h_new]).tolist()


def _polish(args: tuple[int, float, float, list[list[float]]]) -> tuple[float, list[float], int]:
    K, lo, hi, cands = args
    xs, ws = search_points(lo, hi)
    coarse = BatchObjective(xs, ws, K)
    x = eval_grid(lo, hi)
    exact = BatchObjective(x, np.full(x.size, 1.0 / x.size), K, chunk=16)
    best_e, best_p = np.inf, None
    for c in cands:
        _, p = pattern_search(coarse, np.asarray(c, dtype=np.float64), hi - lo, max_iter=100)
        e, p = pattern_search(exact, p, hi - lo, max_iter=POLISH_ITERS)
        if e < best_e:
            best_e, best_p = e, p
    assert best_p is not None
    return best_e, best_p.tolist(), coarse.evals + exact.evals


def _refine(args: tuple[int, float, float, list[float], int, int]) -> list[float]:
    """Basin-hopping refinement, then the pattern-search polish on the 10k-point metric; returns the
    better (10k-point RMSE) of the refined and the given point."""
    K, lo, hi, p, iters, seed = args
    q = refine(K, lo, hi, p, iters, seed)
    x = eval_grid(lo, hi)
    exact = BatchObjective(x, np.full(x.size, 1.0 / x.size), K, chunk=16)
    _, q = pattern_search(exact, q, hi - lo, max_iter=POLISH_ITERS)
    old = finalize(K, lo, hi, p)["rmse"]
    new = finalize(K, lo, hi, q)["rmse"]
    return q.tolist() if new < old else list(p)


def finalize(K: int, lo: float, hi: float, p: Sequence[float]) -> dict[str, Any]:
    """Exact float64 ``d`` and metrics for parameters ``p = [T..., h...]``."""
    p = np.asarray(p, dtype=np.float64)
    T, h = p[:K], p[K:]
    x = eval_grid(lo, hi)
    d = solve_d(x, T, h)
    y = siexp_numpy(x, T, h, d, lo)
    err = y - np.exp(x)
    xd = eval_grid(lo, hi, N_DENSE)
    Z = spike_patterns(x, T, h)
    n_pieces = int(1 + np.count_nonzero(np.any(np.diff(Z, axis=0) != 0, axis=1)))
    return {
        "K": K,
        "range": [lo, hi],
        "T": T.tolist(),
        "h": h.tolist(),
        "d": d.tolist(),
        "rmse": float(np.sqrt(np.mean(err * err))),
        "rmse_dense": rmse_of(xd, T, h, d, lo),
        "max_abs_err": float(np.abs(err).max()),
        "min_output": float(y.min()),
        "pieces": n_pieces,
        "mean_spikes": float(Z.sum(1).mean()),
    }


# ---------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------


def _ranges(Rs: Sequence[float], paper: bool) -> list[tuple[float, float]]:
    out = [(-float(R), 0.0) for R in Rs]
    if paper:
        out.append(PAPER_RANGE)
    return out


def fit_all(
    Ks: Sequence[int],
    Rs: Sequence[float],
    paper: bool = True,
    seed: int = DEFAULT_SEED,
    jobs: int = 2,
    command: str = "",
    log=print,
    schedule: Schedule | None = None,
    refine_iters: int = 0,
) -> list[dict[str, Any]]:
    """Fit every (K, range); K in increasing order so each K is warm-started from the previous one."""
    ranges = _ranges(Rs, paper)
    best: dict[tuple[int, tuple[float, float]], list[float]] = {}
    entries: list[dict[str, Any]] = []
    ctx = mp.get_context("spawn")
    with ctx.Pool(processes=max(1, jobs)) as pool:
        for K in sorted({int(k) for k in Ks}):
            t0 = time.time()
            sched = {
                r: schedule or (PAPER_SCHEDULE if r == PAPER_RANGE else SCHEDULES.get(K, DEFAULT_SCHEDULE))
                for r in ranges
            }
            warm: dict[tuple[float, float], list[float] | None] = {}
            for r in ranges:
                prev = [k for k in best if k[1] == r and k[0] < K]
                warm[r] = None
                if prev:
                    Kp = max(k[0] for k in prev)
                    warm[r] = _extend(best[(Kp, r)], Kp, K, *r)
            # successive halving: start n0 runs per range, keep the best few, continue them
            alive: dict[tuple[float, float], list[tuple[int, DEState | None]]] = {
                r: [(i, None) for i in range(sched[r][0][0])] for r in ranges
            }
            evals = dict.fromkeys(ranges, 0)
            for stage in range(max(len(v) for v in sched.values())):
                tasks, keys = [], []
                for r in ranges:
                    if stage >= len(sched[r]):
                        continue
                    n_keep, gens = sched[r][stage]
                    alive[r] = alive[r][:n_keep]
                    for i, st in alive[r]:
                        tasks.append((K, r[0], r[1], st, seed * 1000 + i, gens, warm[r] if i == 0 else None))
                        keys.append((r, i))
                results = pool.map(_de_stage, tasks, chunksize=1)
                new: dict[tuple[float, float], list[tuple[int, DEState | None]]] = {r: [] for r in ranges}
                for (r, i), (st, n) in zip(keys, results, strict=True):
                    new[r].append((i, st))
                    evals[r] += n
                for r in ranges:
                    if new[r]:
                        alive[r] = sorted(new[r], key=lambda t: (t[1].best, t[0]))  # type: ignore[union-attr]
            ptasks = []
            for r in ranges:
                cands = [st.best_x.tolist() for _, st in alive[r][:2] if st is not None]
                ptasks.append((K, r[0], r[1], cands))
            polished = pool.map(_polish, ptasks, chunksize=1)
            if refine_iters > 0:
                rtasks = [
                    (K, t[1], t[2], pol[1], refine_iters, seed)
                    for t, pol in zip(ptasks, polished, strict=True)
                ]
                refined = pool.map(_refine, rtasks, chunksize=1)
                for t, (_e, q0, _n) in zip(rtasks, polished, strict=True):
                    log(
                        f"K={K:>2} range=[{t[1]:g},{t[2]:g}] before refinement rmse={finalize(K, t[1], t[2], q0)['rmse']:.5f}"
                    )
                polished = [(e, q, n) for (e, _p, n), q in zip(polished, refined, strict=True)]
            for (_, lo, hi, _c), (_e, p, n) in zip(ptasks, polished, strict=True):
                r = (lo, hi)
                entry = finalize(K, lo, hi, p)
                method = (
                    "DE/best/1/bin on (T,h) with least-squares d (weighted 1k-point objective), "
                    "successive halving over restarts; coordinate pattern search on the 10k-point metric; "
                )
                if refine_iters > 0:
                    method += (
                        f"basin hopping ({refine_iters} L-BFGS-B descents on the exact continuous error, "
                        "analytic gradient) and pattern search again; "
                    )
                entry.update(
                    {
                        "method": method + "float64 least-squares d",
                        "refine_iters": refine_iters,
                        "seed": seed,
                        "schedule": [list(st) for st in sched[r]],
                        "evaluations": evals[r] + n,
                        "warm_start_from_K": max(
                            (k[0] for k in best if k[1] == r and k[0] < K), default=None
                        ),
                        "command": command,
                    }
                )
                best[(K, r)] = p
                entries.append(entry)
                log(f"K={K:>2} range=[{lo:g},{hi:g}] rmse={entry['rmse']:.5f} pieces={entry['pieces']}")
            log(f"K={K}: {time.time() - t0:.0f} s")
    entries.sort(key=lambda e: (e["K"], e["range"][1], -e["range"][0]))
    return entries


def format_table(entries: Sequence[dict[str, Any]]) -> str:
    ranges = sorted({tuple(e["range"]) for e in entries}, key=lambda r: (r[1], -r[0]))
    Ks = sorted({e["K"] for e in entries})
    look = {(e["K"], tuple(e["range"])): e for e in entries}
    head = "K \\ range " + " ".join(f"{f'[{lo:g},{hi:g}]':>10}" for lo, hi in ranges)
    lines = [head]
    for K in Ks:
        cells = []
        for r in ranges:
            e = look.get((K, r))
            cells.append(f"{e['rmse']:>10.5f}" if e else f"{'-':>10}")
        lines.append(f"{K:<10} " + " ".join(cells))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    ap.add_argument("--out", type=Path, default=TABLES_PATH, help="output JSON (default: the shipped tables)")
    ap.add_argument("--K", type=int, nargs="+", default=list(DEFAULT_K), help="step counts")
    ap.add_argument("--R", type=float, nargs="+", default=list(DEFAULT_R), help="fit ranges [-R, 0]")
    ap.add_argument("--no-paper", action="store_true", help="skip the paper's [-1, 1] range")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (results do not depend on it)")
    ap.add_argument(
        "--schedule",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="override the search schedule: pairs RUNS GENS per stage (default: SCHEDULES)",
    )
    ap.add_argument(
        "--refine",
        type=int,
        default=0,
        metavar="N",
        help="basin-hopping refinement: N L-BFGS-B descents per table after the polish (needs scipy)",
    )
    args = ap.parse_args(argv)
    if any(k < 1 for k in args.K) or any(not (r > 0) for r in args.R):
        ap.error("--K must be >= 1 and --R > 0")
    command = f"{PROG} " + " ".join(
        [
            f"--K {' '.join(map(str, args.K))}",
            f"--R {' '.join(f'{r:g}' for r in args.R)}",
            f"--seed {args.seed}",
        ]
        + (["--no-paper"] if args.no_paper else [])
    )
    t0 = time.time()
    schedule = None
    if args.schedule is not None:
        if len(args.schedule) % 2 or any(v < 1 for v in args.schedule):
            ap.error("--schedule takes positive pairs RUNS GENS")
        schedule = tuple(zip(args.schedule[::2], args.schedule[1::2], strict=True))
        command += " --schedule " + " ".join(map(str, args.schedule))
    if args.refine < 0:
        ap.error("--refine must be >= 0")
    if args.refine:
        command += f" --refine {args.refine}"
    entries = fit_all(
        args.K,
        args.R,
        paper=not args.no_paper,
        seed=args.seed,
        jobs=args.jobs,
        command=command,
        schedule=schedule,
        refine_iters=args.refine,
    )
    elapsed = time.time() - t0
    doc = {
        "format": FORMAT,
        "description": "SI-exp few-spike tables: v(1)=x; z(t)=[v(t)>=T(t)]; v(t+1)=v(t)-h(t)z(t); y=sum_t d(t)z(t) ~ exp(x) "
        "on range=[lo,hi]; inputs below lo give 0. rmse: 10,000 evenly spaced points of the range (float64).",
        "command": command,
        "seed": args.seed,
        "tables": entries,
    }
    write_json(args.out, doc)
    print(format_table(entries))
    print(f"wrote {args.out} ({len(entries)} tables, {elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
