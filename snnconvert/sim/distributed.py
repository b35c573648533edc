"""`simulate` across processes launched by torchrun: each process runs every WORLD_SIZE-th batch,
then the per-batch sums are gathered and added in batch order (the same floats as one process)
and the event counts summed (integers held in float32, exact below 2**24 per element).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from snnconvert.errors import InputError


@contextmanager
def process_group(device: str = "cpu") -> Iterator[Any]:
    """The default process group when launched by torchrun with more than one process, else None;
    gloo on CPU, nccl on CUDA (each process on the GPU of its LOCAL_RANK). A group made here is
    destroyed on the way out: left to the interpreter's exit, gloo aborted a process now and then."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield None
        return
    import torch.distributed as dist

    if not dist.is_available():
        raise InputError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if dist.is_initialized():  # the caller's group: theirs to end
        yield dist.group.WORLD
        return
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        yield dist.group.WORLD
        dist.barrier()  # nobody leaves while another still gathers
    finally:
        dist.destroy_process_group()


def _comm_device(group: Any) -> torch.device:
    import torch.distributed as dist

    return (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend(group) == "nccl"
        else torch.device("cpu")
    )


def gather_parts(parts: list, group: Any) -> list[tuple]:
    """Every process's BatchParts (sim.run), on every process, as (index, out, layers, limit,
    positions, counts)."""
    import torch.distributed as dist

    first = parts[0]
    T, (L, W) = first.out.shape[0], first.layers.shape
    dev = _comm_device(group)
    # per-position sums travel only where every batch of every process kept them, at one size
    sizes = {q.positions.size for q in parts}
    mine = sizes.pop() if len(sizes) == 1 else 0
    size = torch.tensor([mine, -mine], device=dev)  # max of both: every process's size, if one
    dist.all_reduce(size, op=dist.ReduceOp.MAX, group=group)
    P = int(size[0]) if int(size[0]) == -int(size[1]) else 0
    rows = np.stack(
        [
            np.concatenate(
                [
                    [q.index],
                    q.out.ravel(),
                    q.layers.ravel(),
                    q.limit,
                    q.positions.ravel()[:P],
                    q.counts.astype(np.float64),
                ]
            )
            for q in parts
        ]
    )
    local = torch.from_numpy(rows).to(dev)
    most = torch.tensor([len(parts)], device=dev)
    dist.all_reduce(most, op=dist.ReduceOp.MAX, group=group)
    pad = torch.full((int(most) - len(parts), rows.shape[1]), -1.0, dtype=torch.float64, device=dev)
    local = torch.cat([local, pad])
    every = [torch.empty_like(local) for _ in range(group.size())]
    dist.all_gather(every, local, group=group)
    out = []
    for r in torch.cat(every).cpu().numpy():
        if r[0] < 0:
            continue
        o, m = 1 + 4 * T, 1 + 4 * T + W * L
        p = m + 4 + P
        out.append(
            (
                int(r[0]),
                r[1:o].reshape(T, 4),
                r[o:m].reshape(L, W),
                r[m : m + 4],
                r[m + 4 : p].reshape(3, -1),
                r[p:].astype(np.int64),
            )
        )
    return out


def sum_events(events: dict[str, torch.Tensor], group: Any) -> None:
    """Per-element event totals summed over the processes, in place."""
    import torch.distributed as dist

    dev = _comm_device(group)
    for k in sorted(events):
        t = events[k].contiguous().to(dev)
        dist.all_reduce(t, group=group)
        events[k] = t.to(events[k].device)
