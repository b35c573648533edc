"""The count-coded IF step fused into one pass per element on the CPU, with the simulator's records.

`if_steps` is the reference (and what the portable SNN traces): a dozen elementwise torch passes
over the whole [T, batch, ...] current per chunk, then the event and evaluation records and the
output scaling as passes of their own. On a CPU that is memory traffic, not arithmetic: the 76
neuron layers of a 6-layer text encoder took 6.9 s of its 15.6 s simulation. Here each element's
membrane and count stay in registers across its steps, and the output, |events| and evaluations
are written in the same pass: the same float32 operations in the same order, so every spike is
the reference's (tests/neurons/test_fused_if.py compares them bit for bit).

numba compiles the kernel once per machine (cached beside this file); without numba, off the CPU,
under tracing (the portable SNN exports the reference), or for anything but float32 count coding,
`fused_count_step` returns None and the simulator runs `if_steps`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

_kernel: Any = None  # the compiled kernel, False where numba cannot be had
BLOCK = 512  # elements per task: a task's state stays in cache across its steps


def _compile() -> Any:
    global _kernel
    if _kernel is not None:
        return _kernel
    try:
        from numba import njit, prange
    except ImportError:
        _kernel = False
        return _kernel

    @njit(parallel=True, cache=True, fastmath=False)
    def count_if(cur, theta, u, count, v0, lo, hi, m, out, ev, evals):  # pragma: no cover - compiled
        steps, batch, n_el = cur.shape
        for k in prange((n_el + BLOCK - 1) // BLOCK):
            a, e = k * BLOCK, min(n_el, (k + 1) * BLOCK)
            for b in range(batch):
                for t in range(steps):
                    for n in range(a, e):
                        th = theta[n]
                        base = v0 * th
                        c = cur[t, b, n]
                        v = u[b, n] + base
                        v = v + c
                        s = np.floor(v / th)
                        s = min(max(s, -m), m)
                        cc = count[b, n]
                        nc = min(max(cc + s, lo), hi)
                        s = nc - cc
                        count[b, n] = nc
                        u[b, n] = (v - th * s) - base
                        out[t, b, n] = s * th
                        ev[n] += abs(s)
                        evals[n] += (c != 0) | (s != 0)

    _kernel = count_if
    return _kernel


def fused_count_step(
    current: torch.Tensor, theta: torch.Tensor, state: dict[str, torch.Tensor], a: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]] | None:
    """A chunk of count-coded IF steps: (output = events x theta [T, B, ...], |events| summed over
    steps and batch [...], steps each neuron received or sent events [...], new state), or None
    where the fused kernel does not apply."""
    if a["coding"] != "count" or current.device.type != "cpu" or current.dtype != torch.float32:
        return None
    if type(current) is not torch.Tensor or type(theta) is not torch.Tensor or torch.compiler.is_compiling():
        return None  # traced (torch.export of the portable step, fake tensors): the reference's ops
    if theta.dtype != torch.float32 or current.dim() < 2:
        return None
    kernel = _compile()
    if kernel is False:
        return None
    import numba

    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))  # as torch
    steps, batch, shape = current.shape[0], current.shape[1], tuple(current.shape[2:])
    n_el = int(np.prod(shape, dtype=np.int64))
    th = theta.expand(shape).contiguous().reshape(-1)
    u = state["u"].clone() if "u" in state else torch.zeros((batch, *shape))
    count = state["count"].clone() if "count" in state else torch.zeros((batch, *shape))
    out = torch.empty((steps, batch, *shape))
    ev = torch.zeros(shape)
    evals = torch.zeros(shape)
    kernel(
        current.contiguous().reshape(steps, batch, n_el).numpy(),
        th.numpy(),
        u.reshape(batch, n_el).numpy(),
        count.reshape(batch, n_el).numpy(),
        np.float32(a["v0"]),
        np.float32(a["lo"]),
        np.float32(a["hi"]),
        np.float32(a["max_spikes_per_step"]),
        out.reshape(steps, batch, n_el).numpy(),
        ev.reshape(-1).numpy(),
        evals.reshape(-1).numpy(),
    )
    return out, ev, evals, {"u": u, "count": count}
