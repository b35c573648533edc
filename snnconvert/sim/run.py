"""`simulate`: the SNN over T steps against the ANN on the same samples, in one pass.

Accuracy and agreement are read at every step t <= T from one run; per layer, spike counts,
firing rates and the fidelity of the decoded value at T against the ANN activation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from snnconvert.data.files import Dataset
from snnconvert.errors import InputError, UnsupportedModelError
from snnconvert.ir.execute import Executor, sample_rows
from snnconvert.ir.graph import MASK_FLOOR, Graph
from snnconvert.ir.ops_spiking import spike_format
from snnconvert.ir.registry import EVALUATIONS, get
from snnconvert.sim.budget import Plan, current_rss, footprint, parse_budget, plan
from snnconvert.sim.simulator import Sig, Simulator, accumulate, internal_records, is_spike_record

MAX_TIMESTEPS = 100_000


def fid_sums(s: torch.Tensor, a: torch.Tensor, rows: torch.Tensor | None = None) -> np.ndarray:
    """[s.a, s.s, a.a, (s-a).(s-a)] in float64, over the entries that hold data (and, given `rows`,
    a mask of a's shape, over those it marks only)."""
    # sums accumulated in float64 without float64 copies of whole activations (ViT-Base's
    # attention maps made the copies cost more than the layers)
    s, a = s.float(), a.float()
    if rows is not None:  # zeros elsewhere: the same sums, without gathering the entries
        s, a = torch.where(rows, s, 0.0), torch.where(rows, a, 0.0)
    if bool((a <= MASK_FLOOR).any()):  # masked entries hold no data
        keep = a > MASK_FLOOR
        s, a = s[keep], a[keep]
    d = s - a
    return np.array(
        [float(torch.sum(x * y, dtype=torch.float64)) for x, y in ((s, a), (s, s), (a, a), (d, d))]
    )


CENTRED_MAX_POSITIONS = 1 << 16  # outputs larger than this (per sample) get no centred figures


def position_sums(a: torch.Tensor, s: torch.Tensor, lim: torch.Tensor) -> np.ndarray:
    """[3, P]: the ANN's, the SNN's and the limit run's outputs summed over the batch per output
    position (float64), from which `centred` takes the mean over all samples out; [3, 0] for an
    output of more than CENTRED_MAX_POSITIONS positions or one with masked entries."""
    a = a.reshape(a.shape[0], -1)
    if a.shape[1] > CENTRED_MAX_POSITIONS or bool((a <= MASK_FLOOR).any()):
        return np.zeros((3, 0))
    return np.stack([x.reshape(a.shape).double().sum(0).cpu().numpy() for x in (a, s, lim)])


def centred(f: _Fid, sa: np.ndarray, ss: np.ndarray, n: int) -> tuple[float, float]:
    """(cosine, the ANN's sample-dependent share) with both outputs less the ANN's mean over the
    samples mu = sa / n: what an output that barely depends on its input (a random-init encoder
    whose positional embeddings dominate) cannot fake. From the running sums alone:
    sum (s-mu).(a-mu) = sum s.a - mu.S_s, |s-mu|^2 = sum s.s - 2 mu.S_s + n|mu|^2, |a-mu|^2 = sum a.a - n|mu|^2."""
    mu = sa / n
    m2 = n * float(mu @ mu)
    aa, sv = f.aa - m2, f.ss - 2 * float(mu @ ss) + m2
    share = aa / f.aa if f.aa > 0 else 0.0
    if aa <= 1e-12 * max(f.aa, 1e-300) or sv <= 0:
        return float("nan"), share
    return (f.dot - float(mu @ ss)) / math.sqrt(aa * sv), share


@dataclass
class _Fid:
    dot: float = 0.0
    ss: float = 0.0
    aa: float = 0.0
    dd: float = 0.0

    def absorb(self, v: np.ndarray) -> None:
        self.dot += float(v[0])
        self.ss += float(v[1])
        self.aa += float(v[2])
        self.dd += float(v[3])

    def cosine(self) -> float:
        if self.ss == 0 and self.aa == 0:
            return 1.0
        if self.ss == 0 or self.aa == 0:
            return 0.0
        return self.dot / math.sqrt(self.ss * self.aa)

    def rel_error(self) -> float:
        if self.aa == 0:
            return 0.0 if self.dd == 0 else float("inf")
        return math.sqrt(self.dd / self.aa)


@dataclass
class BatchPart:
    """One batch's contribution, kept apart so that processes that ran different batches merge into
    exactly the floats one process gets (the same sums, added in batch order)."""

    index: int
    out: np.ndarray  # [T, 4] output fidelity sums per step
    layers: np.ndarray  # [L, LAYER_SUMS] per-layer fidelity sums at T (every entry; reaching ones)
    limit: np.ndarray  # [4] the limit run's output against the ANN's
    # [3, P] per output position, summed over the batch: the ANN's, the SNN's at step T, the limit
    # run's ([3, 0] where not kept: outputs over CENTRED_MAX_POSITIONS, or with masked entries)
    positions: np.ndarray
    counts: np.ndarray  # [2T + 3]: snn_correct per t, agree per t, ann_correct, limit_correct, limit_agree


PHASES = ("ann_reference", "reaching", "snn_steps", "layer_fidelity", "limit_run")
# per layer and batch: the fidelity sums over every entry, the same over the entries that reach the
# output (Executor.reaching), and the counts of those entries and of all
LAYER_SUMS = 10


@dataclass
class SimResult:
    timesteps: int
    samples: int
    labelled: bool
    ann_correct: int = 0
    # the converted graph run as a plain network (each neuron replaced by what it converges to:
    # clipping, quantisation; structural changes such as MaxPool -> AvgPool included): T -> inf
    limit_correct: int = 0
    limit_agree: int = 0
    snn_correct: np.ndarray | None = None  # [T]
    agree: np.ndarray | None = None  # [T]
    out_fid: list[_Fid] = field(default_factory=list)  # per t (unlabelled data and always for outputs)
    limit_fid: _Fid = field(default_factory=_Fid)
    positions: np.ndarray | None = None  # BatchPart.positions summed over every batch
    layer_fid: dict[str, _Fid] = field(default_factory=dict)
    layer_fid_reaching: dict[str, _Fid] = field(default_factory=dict)  # entries reaching the output
    layer_reaching: dict[str, np.ndarray] = field(default_factory=dict)  # [entries reaching, entries]
    reaching_measured: bool = False
    events: dict[str, torch.Tensor] = field(default_factory=dict)  # per-element event totals
    static: dict[str, bool] = field(default_factory=dict)
    classified: bool = False  # the output is [N, classes]: agreement of argmax is meaningful
    plan: Plan | None = None
    processes: int = 1
    # wall seconds per phase (this process's share of the batches): where the time goes
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    op_seconds: dict[str, float] | None = None  # the SNN steps' seconds by op type (host devices)

    def absorb(self, part: BatchPart) -> None:
        T = self.timesteps
        for f, v in zip(self.out_fid, part.out, strict=True):
            f.absorb(v)
        for name, v in zip(self.layer_fid, part.layers, strict=True):
            self.layer_fid[name].absorb(v[:4])
            self.layer_fid_reaching[name].absorb(v[4:8])
            self.layer_reaching[name] += v[8:10]
        self.limit_fid.absorb(part.limit)
        if self.positions is None:
            self.positions = part.positions.copy()
        elif self.positions.shape == part.positions.shape and self.positions.size:
            self.positions += part.positions
        else:
            self.positions = np.zeros((3, 0))
        c = part.counts
        self.snn_correct += c[:T]
        self.agree += c[T : 2 * T]
        self.ann_correct += int(c[2 * T])
        self.limit_correct += int(c[2 * T + 1])
        self.limit_agree += int(c[2 * T + 2])


def check_timesteps(t: int) -> None:
    if t <= 0:
        raise InputError(f"--timesteps must be a positive integer, got {t}")
    if t > MAX_TIMESTEPS:
        raise InputError(f"--timesteps {t} is absurdly large (limit {MAX_TIMESTEPS})")


def _output_rows(g: Graph, name: str) -> tuple[int, ...]:
    """The per-sample shape of an output once its batch-of-one axis is dropped (sample_rows)."""
    shape = g.values[name].shape
    a = g.batch_axis(name)
    return tuple(shape) if a is None else tuple(shape[:a]) + tuple(shape[a + 1 :])


def _check_labels(data: Dataset, g: Graph, n: int) -> None:
    """Before any work: labels must fit the output (a process that failed alone would leave the
    others of a distributed run waiting)."""
    if data.labels is None:
        return
    out = g.outputs[0]
    rows = _output_rows(g, out)
    if len(rows) != 1:
        raise InputError(
            f"{data.path}: key 'y' holds class labels, but the model's output '{out}' has shape "
            f"{list(g.values[out].shape)}, not [N, classes] (drop 'y' to compare outputs only)"
        )
    y = data.labels[:n]
    if len(y) and (int(y.max()) >= rows[0] or int(y.min()) < 0):
        raise InputError(f"{data.path}: labels outside [0, {rows[0] - 1}] (the model's classes)")


def simulate(
    snn: Graph,
    ann: Graph,
    data: Dataset,
    timesteps: int,
    batch_size: int = 64,
    device: str = "cpu",
    analog_mode: str | None = None,
    samples: int | None = None,
    progress: Callable[..., None] | None = None,
    memory_budget: int | None = None,
    time_chunk: int | None = None,
    group: Any = None,
    reaching: bool | None = None,
) -> SimResult:
    """`progress(k, total=None)` advances by k samples (fractions while a batch is under way);
    `memory_budget` in bytes (default: a quarter of memory); `time_chunk` fixes the steps per chunk
    (default: from the budget); `group`, a torch.distributed process group, shares the batches out;
    `reaching`: measure per-layer fidelity also over the entries that reach the output (default:
    where the ANN has a mask or id input, i.e. more than one input or one that is not float: where
    padding is likely; a gradient pass of the ANN per batch, and only where it fits the budget)."""
    check_timesteps(timesteps)
    if batch_size <= 0:
        raise InputError(f"--batch-size must be positive, got {batch_size}")
    if samples is not None and samples <= 0:
        raise InputError(f"--samples must be positive, got {samples}")
    if time_chunk is not None and time_chunk <= 0:
        raise InputError(f"time chunk must be positive, got {time_chunk}")
    n = data.n if samples is None else min(samples, data.n)
    _check_labels(data, snn, n)
    mode = analog_mode or snn.meta.get("analog_mode", "mean")
    sim = Simulator(snn, device=device, analog_mode=mode)
    if sim.device.type == "cpu":
        sim.op_seconds = {}
    ex = Executor(ann, device=device)
    lim = Executor(snn, device=device)
    tracked = [
        o
        for nd in snn.nodes
        for o in nd.outputs
        if snn.values[o].dtype.startswith("float") and o in ann.values
    ]
    fp = footprint(snn, ann, tracked, set(sim.consts), current_rss())
    budget = parse_budget(None) if memory_budget is None else memory_budget
    p = plan(fp, n, batch_size, timesteps, budget, time_chunk)
    rank, world = (0, 1) if group is None else (group.rank(), group.size())
    batches = math.ceil(n / p.batch)
    if batches < world:
        raise InputError(
            f"{n} samples in batches of {p.batch} make {batches} batch(es), fewer than the {world} "
            "processes: lower --batch-size or launch fewer processes"
        )
    res = SimResult(timesteps, n, data.labels is not None, plan=p, processes=world)
    res.snn_correct = np.zeros(timesteps, dtype=np.int64)
    res.agree = np.zeros(timesteps, dtype=np.int64)
    res.out_fid = [_Fid() for _ in range(timesteps)]
    res.layer_fid = {o: _Fid() for o in tracked}
    res.layer_fid_reaching = {o: _Fid() for o in tracked}
    res.layer_reaching = {o: np.zeros(2) for o in tracked}
    rows = _output_rows(snn, snn.outputs[0])
    res.classified = len(rows) == 1 and rows[0] > 1
    mine = [b for b in range(batches) if b % world == rank]
    if progress is not None:
        progress(0, total=sum(min(p.batch, n - b * p.batch) for b in mine))
    if reaching is None:
        reaching = len(ann.inputs) > 1 or any(not ann.values[i].dtype.startswith("float") for i in ann.inputs)
    res.reaching_measured = bool(reaching and p.reaching_fits)
    run = _BatchRun(sim, ex, lim, snn, ann, res, p.chunk, progress)
    parts = []
    for index, (_start, feeds, labels) in enumerate(data.batches(p.batch, n)):
        if index % world == rank:
            parts.append(run(index, feeds, labels))
    if group is not None:
        from snnconvert.sim.distributed import gather_parts, sum_events

        parts = [BatchPart(*q) for q in gather_parts(parts, group)]
        sum_events(res.events, group)
    for part in sorted(parts, key=lambda q: q.index):
        res.absorb(part)
    for name, e in res.events.items():
        if not bool(torch.isfinite(e).all()):
            raise UnsupportedModelError(
                f"{snn.meta.get('source', 'model')}: layer '{name}' reached non-finite values (NaN/Inf) "
                "in the SNN: the model's activations overflow float32"
            )
    if sim.op_seconds is not None:  # the SNN steps' time by op type, the costliest first
        res.op_seconds = dict(sorted(sim.op_seconds.items(), key=lambda kv: -kv[1]))
    return res


class _BatchRun:
    """One batch: the ANN's output, the SNN chunk by chunk (its per-step metrics as they come, the
    per-layer totals kept), then the layers against the ANN and the limit run."""

    def __init__(self, sim, ex, lim, snn, ann, res: SimResult, chunk: int, progress) -> None:
        self.sim, self.ex, self.lim, self.snn, self.ann, self.res = sim, ex, lim, snn, ann, res
        self.chunk = chunk
        self.progress = progress
        self.scale = snn.meta.get("value_scale", {})
        self.layer_index = {name: i for i, name in enumerate(res.layer_fid)}

    def _lap(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        self.res.seconds[phase] += now - since
        return now

    def _tick(self, k: float) -> None:
        if self.progress is not None:
            self.progress(k)

    def __call__(self, index: int, feeds: dict, labels: np.ndarray | None) -> BatchPart:
        sim, snn, ann, res = self.sim, self.snn, self.ann, self.res
        T = res.timesteps
        b = len(next(iter(feeds.values())))
        share = b / (T + 2)  # progress: T steps, the ANN and the limit run, per sample
        out_name = snn.outputs[0]
        keep = set(self.layer_index) if res.plan.keep_ann else None
        clock = time.perf_counter()
        ann_vals = self.ex.run(feeds, keep=keep)
        ann_out = sample_rows(ann, ann.outputs[0], ann_vals[ann.outputs[0]])
        clock = self._lap("ann_reference", clock)
        # which rows of each layer can reach the output (a padded token's never do): the per-layer
        # fidelity is measured there too; a gradient pass, so only where it fits the budget
        reach = self.ex.reaching(feeds, list(self.layer_index)) if self.res.reaching_measured else {}
        if not reach:  # not asked, or autograd could not take this model: the figures are null
            self.res.reaching_measured = False
        self._tick(share)
        counts = np.zeros(2 * T + 3, dtype=np.int64)
        out = np.zeros((T, 4))
        ann_pred = ann_out.argmax(-1) if res.classified else None
        y = None if labels is None else torch.from_numpy(labels).to(ann_out.device)
        totals: dict[str, torch.Tensor] = {}  # the sum of a stream's signal so far
        final: dict[str, torch.Tensor] = {}  # a decoded value as it stands after the last step seen

        def observe(name: str, sig: Sig) -> None:
            if name not in self.layer_index:
                return
            res.static[name] = sig.static
            if sig.static:  # the same value at every step (rate) / all of it at step 1 (count)
                final[name] = sig.data
            elif sig.run is not None:  # made as running values: the last step's is the decoded value
                final[name] = sig.run[-1]
            else:
                tot = sig.data.sum(0) if sig.total is None else sig.total
                accumulate(totals, name, tot)

        clock = self._lap("reaching", clock)
        state: dict[str, torch.Tensor] = {}
        prev = None
        for t0 in range(0, T, self.chunk):
            k = min(self.chunk, T - t0)
            outs = sim.run_chunk(feeds, t0, k, state, record=res.events, observe=observe)
            dec, prev = sim.decode(outs[out_name], t0, k, prev)
            dec = sample_rows(snn, out_name, dec, lead=2)  # [k, B, classes] for a classifier
            for j in range(k):
                out[t0 + j] = fid_sums(dec[j], ann_out)
            last = dec[-1]
            if res.classified:
                pred = dec.argmax(-1)  # [k, B]
                counts[T + t0 : T + t0 + k] = (pred == ann_pred.unsqueeze(0)).sum(1).cpu().numpy()
                if y is not None:
                    counts[t0 : t0 + k] = (pred == y.unsqueeze(0)).sum(1).cpu().numpy()
            self._tick(share * k)
        del state, outs
        clock = self._lap("snn_steps", clock)
        layers = np.zeros((len(self.layer_index), LAYER_SUMS))

        def compare(name: str, a: torch.Tensor) -> None:
            if name in final:
                s = final.pop(name)
            elif name in totals:
                s = totals.pop(name)
                s = s / T if sim.coding == "rate" else s  # a rate-coded stream's mean over the steps
            else:
                return
            s = s * float(self.scale.get(name, 1.0))
            every = fid_sums(s, a)
            rows = reach.get(name)
            n_in = a.numel() if rows is None or rows.shape != a.shape else int(rows.sum())
            if n_in in (0, a.numel()):
                # every entry reaches; or not measured (the ANN's values not kept), or nothing
                # reaches differentiably: every entry counts
                near, n_in = every, a.numel()
            else:
                near = fid_sums(s, a, rows)
            layers[self.layer_index[name]] = np.concatenate([every, near, [n_in, a.numel()]])

        if keep is None:
            self.ex.run(feeds, observe=compare)
        else:
            for name in [*final, *totals]:
                compare(name, ann_vals[name])
        del ann_vals
        clock = self._lap("layer_fidelity", clock)
        self._tick(share / 2)
        lim_out = sample_rows(snn, out_name, self.lim.run(feeds)[out_name])
        limit = fid_sums(lim_out, ann_out)
        positions = position_sums(ann_out, last, lim_out)
        if res.classified:
            lim_pred = lim_out.argmax(-1)
            counts[2 * T + 2] = int((lim_pred == ann_pred).sum())
            if y is not None:
                counts[2 * T] = int((ann_pred == y).sum())
                counts[2 * T + 1] = int((lim_pred == y).sum())
        self._lap("limit_run", clock)
        self._tick(share / 2)
        return BatchPart(index, out, layers, limit, positions, counts)


def result_json(res: SimResult, snn: Graph) -> dict:
    """The machine-readable result (contract keys: timesteps, samples, ann_accuracy, snn_accuracy,
    agreement, layers[{name, spikes, firing_rate, cosine, rel_error}])."""
    n, T = res.samples, res.timesteps
    layers = []
    for nd in snn.nodes:
        for o in nd.outputs:
            if o not in res.layer_fid:
                continue
            v = snn.values[o]
            spikes = float(res.events[o].sum()) if o in res.events else 0.0
            inside = {k: float(e.sum()) / n for k, e in internal_records(res.events, o).items()}
            spikes += sum(v for k, v in inside.items() if k != EVALUATIONS) * n
            neurons = v.numel
            f = res.layer_fid[o]
            layers.append(
                {
                    "name": o,
                    "node": nd.name,
                    "op": nd.op,
                    "domain": v.domain or "analog",
                    "neurons": neurons,
                    "spikes": spikes,
                    "spikes_per_sample": spikes / n,
                    "firing_rate": spikes / (neurons * T * n) if neurons else 0.0,
                    "cosine": _finite(f.cosine()),
                    "rel_error": _finite(f.rel_error()),
                    **_reaching(res, o),
                    "static": bool(res.static.get(o, False)),
                }
            )
            kinds = {k: v for k, v in inside.items() if k != EVALUATIONS}
            if kinds:  # neurons inside the op (SpikingSoftmax): spikes per kind, per sample
                layers[-1]["internal_spikes_per_sample"] = kinds
            if EVALUATIONS in inside:  # applications that ran (count coding's neurons: updates)
                layers[-1]["evaluations_per_sample"] = inside[EVALUATIONS]
    j = {
        "timesteps": T,
        "samples": n,
        "coding": snn.meta.get("coding", "rate"),
        "spikes": spike_format(snn),  # what one event is: levels per step, signed
        "labelled": res.labelled,
        "agreement": [float(a) / n for a in res.agree] if res.classified else [None] * T,
        "cosine": [_finite(f.cosine()) for f in res.out_fid],
        "rel_error": [_finite(f.rel_error()) for f in res.out_fid],
        "layers": layers,
        "total_spikes_per_sample": sum(float(e.sum()) for k, e in res.events.items() if is_spike_record(k))
        / n,
    }
    # what the SNN converges to as T grows (the converted graph run as a network): separates the
    # loss the conversion itself causes from the loss of too few timesteps
    j["limit_agreement"] = res.limit_agree / n if res.classified else None
    j["limit_cosine"] = _finite(res.limit_fid.cosine())
    j["limit_rel_error"] = _finite(res.limit_fid.rel_error())
    pos = res.positions
    if pos is not None and pos.size:  # the same, both outputs less the ANN's mean over the samples
        j["cosine_centred"], share = (_finite(x) for x in centred(res.out_fid[-1], pos[0], pos[1], n))
        j["limit_cosine_centred"] = _finite(centred(res.limit_fid, pos[0], pos[2], n)[0])
        j["output_sample_share"] = share  # of the ANN output's energy, what varies between samples
    # how it ran (not what it found: the numbers above do not depend on these)
    j["execution"] = {**(res.plan.to_json() if res.plan else {}), "processes": res.processes}
    j["execution"]["reaching_measured"] = res.reaching_measured
    j["execution"]["seconds"] = {k: round(v, 3) for k, v in res.seconds.items()}
    if res.op_seconds is not None:
        j["execution"]["snn_steps_by_op"] = {k: round(v, 3) for k, v in res.op_seconds.items()}
    if res.labelled:
        j["ann_accuracy"] = res.ann_correct / n
        j["snn_accuracy"] = [float(c) / n for c in res.snn_correct]
        j["limit_accuracy"] = res.limit_correct / n
    return j


def _reaching(res: SimResult, o: str) -> dict[str, float | None]:
    """A layer's fidelity over the entries that can reach the output (a padded token's hidden state
    never does: its error says nothing of the conversion), and their share; None: not measured
    (see `simulate`'s `reaching`)."""
    f, (n_in, n_all) = res.layer_fid_reaching[o], res.layer_reaching[o]
    if not res.reaching_measured:
        return dict.fromkeys(("cosine_reaching", "rel_error_reaching", "reaching_share"))
    return {
        "cosine_reaching": _finite(f.cosine()),
        "rel_error_reaching": _finite(f.rel_error()),
        "reaching_share": float(n_in / n_all) if n_all else 1.0,
    }


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def is_spiking_op(op: str) -> bool:
    return get(op).spiking
