"""`prunelab bench select`: seconds and peak memory of every selection strategy on real surrogate embeddings,
beside DeepCore-style dense reference implementations (full matrices, plain loops) that live only here.

The embeddings are real: a `cnn` surrogate trained one epoch on MNIST (mnist-mini without a data
folder), whose penultimate layer is 128 wide, and its exact last-layer gradient embeddings
(C·(d + 1) = 1290 columns). A width other than 128 is reached by a seeded Gaussian projection;
more samples than the data set holds by tiling it with small noise (1 % of each column's std),
so no two samples coincide. Peak memory is the growth of the process's peak RSS over the call
(VmHWM after `clear_refs`, with glibc told to return every freed block above 64 KB to the OS,
so RSS follows live memory) or `torch.cuda.max_memory_allocated` on a GPU, in a second call of each
case after every case has been timed: returning freed blocks costs page faults, which must not be
in the seconds. tracemalloc would miss it: torch's CPU allocator does not report to it.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import io
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..config import TrainConfig
from ..data.dataset import load_dataset
from ..device import resolve_device
from ..errors import ConfigError
from ..registry import Ref
from ..scoring.batch import score_model
from ..selection.base import Selection, keep_count, select_weighted
from ..selection.blocks import by_class, coreset, on_device, sq_dists
from ..selection.registry import GREEDY, STRATEGIES
from ..trainer import train
from .common import NO_EVAL, device_label, rss_kib, sync, timed_seconds

NOISE = 0.01  # tiling noise, in units of each column's standard deviation


# ------------------------------------------------------------------ the inputs
def real_inputs(n: int, dim: int, data_dir: str | None, surrogate_samples: int, seed: int = 0) -> dict[str, Any]:
    """Loss scores, labels, `dim`-wide embeddings and gradient embeddings of n samples, from a real surrogate."""
    ds = load_dataset("mnist" if data_dir else "mnist-mini", data_dir)
    model = train("cnn", ds.subset(train_size=min(len(ds), surrogate_samples)), TrainConfig(epochs=1, batch_size=128),
                  seed=seed, **NO_EVAL).model
    real = ds.subset(train_size=min(n, len(ds)))
    out = score_model(model, real, ["loss"], embeddings=True, gradients=True)
    emb, grads = out.embeddings.astype(np.float32), out.gradients.astype(np.float32)
    loss, labels = out.scores["loss"].astype(np.float64), real.y_train.cpu().numpy()
    rng = np.random.default_rng(seed)
    width = emb.shape[1]
    if dim != width:
        emb = emb @ rng.normal(0, 1 / math.sqrt(dim), (width, dim)).astype(np.float32)
    if n > len(emb):
        reps = -(-n // len(emb))

        def tile(a: np.ndarray) -> np.ndarray:
            big = np.concatenate([a] * reps)[:n]
            return big + (NOISE * a.std(0) * rng.standard_normal(big.shape)).astype(a.dtype) if a.ndim == 2 else big

        emb, grads, loss, labels = tile(emb), tile(grads), tile(loss), tile(labels)
    return {"scores": loss, "labels": labels, "embeddings": emb, "gradients": grads, "real_samples": len(real),
            "dataset": ds.name, "embedding_width": width}


# ------------------------------------------------------------------ measuring
def _return_freed_memory() -> None:
    """Large blocks by mmap, freed ones trimmed: so peak RSS measures what a call itself allocates."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 65536)  # M_MMAP_THRESHOLD: fixed at 64 KB (no dynamic growth)
        libc.malloc_trim(0)
    except OSError:
        pass


def seconds_of(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call, under the allocator's normal settings."""
    gc.collect()
    return timed_seconds(fn)


def peak_bytes(fn: Callable[[], Any], dev: torch.device) -> int:
    """Peak memory growth of one call. On the CPU the allocator is first told to return freed blocks
    (`_return_freed_memory`), which costs page faults on every mid-sized allocation after it (Glister at
    20,000 samples: 950,000 faults against 19,000): so every case is timed before any is measured."""
    gc.collect()
    if dev.type == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        fn()
        sync()
        return torch.cuda.max_memory_allocated(dev) - before
    _return_freed_memory()
    before = rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    fn()
    return (rss_kib("VmHWM") - before) * 1024


# ------------------------------------------------------------------ dense references (DeepCore's way)
def _t(a: np.ndarray, dev: torch.device) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float32, device=dev)


def dense_kcenter(x: torch.Tensor, budget: int, first: int,
                  metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> np.ndarray:
    """DeepCore `k_center_greedy`: a (budget, n) distance matrix, a boolean mask over the pool each step."""
    metric = metric or (lambda a, b: sq_dists(a, b).sqrt_())
    n = len(x)
    selected = np.zeros(n, dtype=bool)
    selected[first] = True
    dis = -torch.ones(budget, n, device=x.device)  # -1: a chosen sample
    dis[0, ~selected] = metric(x[[first]], x[~selected])[0]
    mins = dis[0].clone()
    for i in range(1, budget):
        p = int(torch.argmax(mins))
        selected[p] = True
        mins[p] = -1
        dis[i, ~selected] = metric(x[[p]], x[~selected])[0]
        mins = torch.minimum(mins, dis[i])
    return np.flatnonzero(selected)


def dense_herding(x: torch.Tensor, budget: int) -> np.ndarray:
    """DeepCore `herding`: each step sums the chosen rows again and measures the unchosen ones through a mask."""
    n = len(x)
    index = np.arange(n)
    mu = x.mean(0)
    selected = np.zeros(n, dtype=bool)
    for i in range(budget):
        target = ((i + 1) * mu - x[selected].sum(0))[None]
        p = index[~selected][int(torch.argmin(sq_dists(x[~selected], target)[:, 0]))]
        selected[p] = True
    return np.flatnonzero(selected)


def _cosine_matrix(x: torch.Tensor) -> torch.Tensor:
    u = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return 0.5 + 0.5 * u @ u.T


def _dense_greedy(sim: torch.Tensor, budget: int, gain: Callable, method: str, rng: np.random.Generator,
                  epsilon: float = 0.01) -> np.ndarray:
    """DeepCore's greedy optimisers over a precomputed n x n matrix: all gains each step (naive, which picks
    what lazy picks) or the best of n/k·ln(1/ε) random candidates (stochastic)."""
    n = len(sim)
    selected = np.zeros(n, dtype=bool)
    state = {"best": torch.zeros(n, device=sim.device), "chosen_sum": torch.zeros(n, device=sim.device)}
    sample = min(n, math.ceil(n / budget * math.log(1 / epsilon)))
    for _ in range(budget):
        pool = np.flatnonzero(~selected)
        cand = rng.choice(pool, size=min(sample, len(pool)), replace=False) if method == "stochastic" else pool
        gains = gain(sim, state, torch.as_tensor(cand, device=sim.device))
        j = int(cand[int(torch.argmax(gains))])
        selected[j] = True
        state["best"] = torch.maximum(state["best"], sim[:, j])
        state["chosen_sum"] += sim[:, j]
    return np.flatnonzero(selected)


def _fl_gain(sim, state, cand):
    return (sim[:, cand] - state["best"][:, None]).clamp_min(0).sum(0)


def dense_facility_location(x, labels, budget, seed, method):
    """DeepCore `Submodular` with `FacilityLocation`: per class, the class's full cosine matrix."""
    return by_class(lambda m, q, rng: _dense_greedy(_cosine_matrix(x[torch.as_tensor(m)]), q, _fl_gain, method, rng),
                    budget, labels, seed, True).indices


def dense_graph_cut(x, labels, budget, seed, method, lam=1.0):
    """DeepCore `GraphCut` over the class's full matrix: column sums minus lam x twice the chosen similarity."""
    def gain(sim, state, cand):
        return sim[:, cand].sum(0) - lam * (2 * state["chosen_sum"][cand] + sim.diagonal()[cand])

    return by_class(lambda m, q, rng: _dense_greedy(_cosine_matrix(x[torch.as_tensor(m)]), q, gain, method, rng),
                    budget, labels, seed, True).indices


def dense_log_determinant(x, labels, budget, seed, ridge=1e-4):
    """DeepCore `LogDeterminant`: each step, log det of the kernel on S ∪ {j} for every candidate j."""
    def pick(members, quota, rng):
        kernel = _cosine_matrix(x[torch.as_tensor(members)]) + ridge * torch.eye(len(members), device=x.device)
        chosen: list[int] = []
        for _ in range(quota):
            pool = torch.as_tensor(np.setdiff1d(np.arange(len(members)), chosen), device=x.device)
            sets = torch.cat([torch.as_tensor(chosen, dtype=torch.long, device=x.device).expand(len(pool), -1),
                              pool[:, None]], 1)
            blocks = kernel[sets[:, :, None], sets[:, None, :]]
            chosen.append(int(pool[int(torch.argmax(torch.linalg.slogdet(blocks).logabsdet))]))
        return np.asarray(chosen)

    return by_class(pick, budget, labels, seed, True).indices


def dense_craig(g, labels, budget, seed, method):
    """DeepCore/CRAIG: per class the full distance matrix D, similarity max(D) − D, then facility location."""
    def pick(members, quota, rng):
        d = sq_dists(g[torch.as_tensor(members)], g[torch.as_tensor(members)]).sqrt_()
        sim = d.max() - d
        chosen = _dense_greedy(sim, quota, _fl_gain, method, rng)
        weights = np.bincount(sim[:, torch.as_tensor(chosen)].argmax(1).cpu().numpy(), minlength=quota)
        return Selection(chosen, weights.astype(np.float64))

    return by_class(pick, budget, labels, seed, True)


def dense_contextual_diversity(g, labels, budget, seed):
    """DeepCore `ContextualDiversity`: per class (`balance = True`), k_center_greedy with its symmetric KL
    metric on the full (budget, n) matrix."""
    classes = int(labels.max()) + 1
    delta = g.double().reshape(len(g), classes, -1)[:, :, -1]
    p = (delta + torch.nn.functional.one_hot(torch.as_tensor(labels, device=g.device), classes)).clamp_min(1e-12)
    p = (p / p.sum(1, keepdim=True)).float()

    def kl(a, b):  # ½KL(a_0 || b_i) + ½KL(b_i || a_0) for each row of b: DeepCore's `_metric`
        return (0.5 * (b - a) * (b.log() - a.log())).sum(1)[None]

    def pick(members, quota, rng):
        return dense_kcenter(p[torch.as_tensor(members)], quota, int(rng.integers(len(members))), kl)

    return by_class(pick, budget, labels, seed, True).indices


def dense_d2_pruning(x, scores, budget, n_neighbor=5, gamma=0.1):
    """D2-pruning as its reference does it (the README's recipe: sum mode, weighted sampling): the full pairwise
    distance matrix (sklearn's), a dense connectivity matrix made symmetric, each pick lowering every nonzero
    entry of its row."""
    d = sq_dists(x, x).sqrt_().double().cpu()
    d.fill_diagonal_(float("inf"))
    index = torch.sort(d, 1).indices[:, :n_neighbor]
    s = torch.as_tensor(scores, dtype=torch.float64)
    connect = torch.zeros(len(x), len(x), dtype=torch.float64)
    rows = torch.arange(len(x)).repeat_interleave(n_neighbor)
    cols = index.flatten()
    weight = torch.exp(-d[rows, cols])
    connect[rows, cols] = weight * s[cols].clamp_min(1e-7)
    connect[cols, rows] = weight * s[rows].clamp_min(1e-7)
    density = connect.sum(1) + s
    chosen = []
    for _ in range(budget):
        j = int(torch.argmax(density))
        neighbours = torch.nonzero(connect[j] > 0)[:, 0]
        density[neighbours] -= torch.exp(-gamma * d[j, neighbours]) * density[j]
        chosen.append(j)
        density[chosen] = density.min() - 1
    return np.asarray(chosen)


def reference(case: str, inputs: dict[str, Any], budget: int, dev: torch.device) -> Callable[[], Any] | None:
    """The dense reference of a bench case (`name` or `name/greedy`), or None where there is none."""
    name, _, method = case.partition("/")
    method = "plain" if method in ("", "lazy") else method
    labels, seed = inputs["labels"], 0
    x, g = _t(inputs["embeddings"], dev), _t(inputs["gradients"], dev)
    first = int(np.random.default_rng(seed).integers(len(labels)))
    refs = {  # each in the space its strategy's defaults use (the submodular ones: gradients, as DeepCore)
        "kcenter_greedy": lambda: dense_kcenter(x, budget, first),
        "herding": lambda: dense_herding(x, budget),
        "facility_location": lambda: dense_facility_location(g, labels, budget, seed, method),
        "graph_cut": lambda: dense_graph_cut(g, labels, budget, seed, method),
        "log_determinant": lambda: dense_log_determinant(g, labels, budget, seed),
        "craig": lambda: dense_craig(g, labels, budget, seed, method),
        "contextual_diversity": lambda: dense_contextual_diversity(g, labels, budget, seed),
        "d2_pruning": lambda: dense_d2_pruning(x, inputs["scores"], budget),
    }
    fn = refs.get(name)
    return coreset(fn) if fn is not None else None  # under the strategies' own thread cap, for a fair ratio


# ------------------------------------------------------------------ the bench
def bench_cases(strategies: list[str] | None) -> list[str]:
    """Every registered strategy with its defaults, plus facility location by stochastic greedy (the
    target's); or the cases asked for, each `name` or `name/greedy`."""
    if not strategies:
        return [*STRATEGIES, "facility_location/stochastic"]
    for case in strategies:
        name, _, method = case.partition("/")
        STRATEGIES.check(name)
        if method and (method not in GREEDY or "greedy" not in STRATEGIES[name].options):
            raise ConfigError(f"--strategies entry {case!r}: only a strategy with a greedy option takes "
                              f"/{'|'.join(GREEDY)}, e.g. facility_location/stochastic")
    return list(strategies)


def _subset(inputs: dict[str, Any], n: int) -> dict[str, Any]:
    return {**inputs, **{k: inputs[k][:n] for k in ("scores", "labels", "embeddings", "gradients")}}


def case_call(case: str, inputs: dict[str, Any], fraction: float, dev: torch.device) -> Callable[[], Any]:
    """One call of a bench case (`name` or `name/greedy`) on `inputs`, its module imported already."""
    name, _, method = case.partition("/")
    options = {"greedy": method} if method else {}
    spec = STRATEGIES[name]
    if isinstance(spec.fn, Ref):
        spec.fn.load()  # import the module before the clock starts

    def call():
        with on_device(dev):
            return select_weighted(name, inputs["scores"], fraction, inputs["labels"], seed=0,
                                   embeddings=inputs["embeddings"], gradients=inputs["gradients"], **options)

    return call


def bench_select(n: int = 50000, dim: int = 128, fraction: float = 0.1, strategies: list[str] | None = None,
                 device: str = "auto", data_dir: str | None = None, reference_n: int = 5000,
                 surrogate_samples: int = 10000, memory: bool = True) -> dict[str, Any]:
    """Seconds and (with `memory`) peak memory of each case at n samples, and at `reference_n` beside its
    dense reference. Each case is called once more for its memory, after all have been timed."""
    if not 0 < fraction < 1:
        raise ConfigError(f"--fraction {fraction} is out of range; use a number with 0 < fraction < 1")
    cases = bench_cases(strategies)
    dev = resolve_device(device)
    load_before = os.getloadavg()[0]
    inputs = real_inputs(n, dim, data_dir, surrogate_samples)
    small = _subset(inputs, min(n, reference_n))
    calls = []  # per case: (row, {field: call}); seconds for every case first, then peak memory
    for case in cases:
        row: dict[str, Any] = {"strategy": case}
        fields = {"": case_call(case, inputs, fraction, dev)}
        ref = reference(case, small, keep_count(fraction, len(small["labels"])), dev)
        if ref is not None:
            fields.update(small_=case_call(case, small, fraction, dev), reference_=ref)
        calls.append((row, fields))
    for row, fields in calls:
        for prefix, fn in fields.items():
            row[f"{prefix}seconds"] = round(seconds_of(fn), 3)
        if "reference_seconds" in row:
            row["speedup"] = round(row["reference_seconds"] / max(row["small_seconds"], 1e-9), 2)
    for row, fields in calls if memory else ():
        for prefix, fn in fields.items():
            row[f"{prefix}peak_mb"] = round(peak_bytes(fn, dev) / 2**20, 1)
    rows = [row for row, _ in calls]
    return {"samples": n, "real_samples": inputs["real_samples"], "dataset": inputs["dataset"], "model": "cnn",
            "dim": dim, "embedding_width": inputs["embedding_width"], "gradient_dim": inputs["gradients"].shape[1],
            "fraction": fraction, "reference_samples": len(small["labels"]), "device": device_label(dev),
            "torch_threads": torch.get_num_threads(), "memory_method": (
                None if not memory else "torch.cuda.max_memory_allocated" if dev.type == "cuda"
                else "peak RSS growth (VmHWM after clear_refs), a second call after every case was timed"),
            "strategies": rows, "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


# ------------------------------------------------------------------ the libraries a user would otherwise pick
PEER_FUNCTIONS = ("facility_location", "graph_cut", "log_determinant")
PEER_LIBRARIES = {"apricot": ("facility_location", "graph_cut"),  # apricot-select has no log-determinant
                  "submodlib": ("facility_location", "graph_cut", "log_determinant")}


def installed(name: str) -> bool:
    """Whether an optional peer library imports (apricot-select, submodlib-py: the dev extra)."""
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def cosine_kernel(x: np.ndarray) -> np.ndarray:
    """The similarity prunelab's submodular strategies use, 0.5 + 0.5·cos, as a user would build it for a peer:
    one float32 matrix product."""
    u = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return 0.5 + 0.5 * (u @ u.T)


def peer_call(library: str, function: str, kernel: np.ndarray, quota: int) -> Callable[[], list[int]]:
    """One maximisation by a peer on a precomputed kernel, with its exact lazy greedy: the picks, in order."""
    if library == "apricot":
        import apricot

        selector = {"facility_location": apricot.FacilityLocationSelection,
                    "graph_cut": apricot.GraphCutSelection}[function]

        def fit() -> list[int]:
            return selector(quota, metric="precomputed", optimizer="lazy").fit(kernel).ranking.tolist()

        return fit
    import submodlib

    n = len(kernel)
    make = {"facility_location": lambda: submodlib.FacilityLocationFunction(n=n, mode="dense", sijs=kernel,
                                                                            separate_rep=False),
            "graph_cut": lambda: submodlib.GraphCutFunction(n=n, mode="dense", lambdaVal=1.0, ggsijs=kernel,
                                                            separate_rep=False),
            "log_determinant": lambda: submodlib.LogDeterminantFunction(n=n, mode="dense", lambdaVal=1e-4,
                                                                        sijs=kernel)}[function]

    def call() -> list[int]:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # its Python prints
            return [int(i) for i, _ in make().maximize(budget=quota, optimizer="LazyGreedy", stopIfZeroGain=False,
                                                       stopIfNegativeGain=False, verbose=False,
                                                       show_progress=False)]

    return call


def objective(function: str, kernel: np.ndarray, chosen: list[int]) -> float:
    """The function's value at `chosen`, in float64 (λ = 1, ridge 1e-4: the strategies' defaults)."""
    k, s = kernel.astype(np.float64), np.asarray(sorted(chosen))
    np.fill_diagonal(k, 1.0)
    if function == "facility_location":
        return float(k[:, s].max(1).sum())
    if function == "graph_cut":
        return float(k[:, s].sum() - k[np.ix_(s, s)].sum())
    return float(np.linalg.slogdet(k[np.ix_(s, s)] + 1e-4 * np.eye(len(s)))[1])


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(wall seconds, result) of one call on the host (the peers run there); no gc.collect here: a collection
    costs 1-2 s in a process holding torch and MLflow, one per class and library would dwarf the calls."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _peer_row(function: str, inputs: dict[str, Any], fraction: float, dev: torch.device,
              libraries: list[str]) -> dict[str, Any]:
    """prunelab's strategy with its defaults (per class, lazy, gradients) against each library on the same
    per-class kernels and quotas; the peers' time includes building the kernel, which they need as input."""
    labels, vectors = inputs["labels"], inputs["gradients"]
    ours = case_call(function, inputs, fraction, dev)().indices  # warm: the module imported, first-call costs paid
    row: dict[str, Any] = {"function": function, "prunelab_seconds": seconds_of(case_call(function, inputs,
                                                                                         fraction, dev))}
    totals = {"kernel": 0.0, **dict.fromkeys(libraries, 0.0)}
    values = {"prunelab": 0.0, **dict.fromkeys(libraries, 0.0)}
    picks: dict[str, set[int]] = {"prunelab": set(ours.tolist()), **{library: set() for library in libraries}}
    gc.collect()
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        quota = int(np.isin(ours, members).sum())
        clock, kernel = _timed(lambda members=members: cosine_kernel(vectors[members]))
        totals["kernel"] += clock
        values["prunelab"] += objective(function, kernel, np.flatnonzero(np.isin(members, ours)).tolist())
        for library in libraries:
            seconds, chosen = _timed(peer_call(library, function, kernel, quota))
            totals[library] += clock + seconds
            values[library] += objective(function, kernel, chosen)
            picks[library] |= set(members[chosen].tolist())
    row["prunelab_seconds"] = round(row["prunelab_seconds"], 3)
    row["kernel_seconds"] = round(totals["kernel"], 3)
    for library in libraries:
        row[f"{library}_seconds"] = round(totals[library], 3)
        row[f"{library}_speedup"] = round(totals[library] / max(row["prunelab_seconds"], 1e-9), 2)
        row[f"{library}_objective_vs_prunelab"] = float(  # > 0: the peer's value is higher
            f"{(values[library] - values['prunelab']) / abs(values['prunelab']):.3g}")
        row[f"{library}_jaccard"] = round(len(picks[library] & picks["prunelab"]) /
                                          len(picks[library] | picks["prunelab"]), 4)
    return row


def bench_peers(n: int = 50000, fraction: float = 0.1, device: str = "auto", data_dir: str | None = None,
                surrogate_samples: int = 10000, libraries: list[str] | None = None) -> dict[str, Any]:
    """Facility location, graph cut and log-determinant: prunelab beside apricot-select and submodlib-py (those
    installed, or those of `libraries`) on the same real gradient embeddings, per class, the same quotas;
    seconds, objective and overlap."""
    if not 0 < fraction < 1:
        raise ConfigError(f"--fraction {fraction} is out of range; use a number with 0 < fraction < 1")
    unknown = sorted(set(libraries or ()) - set(PEER_LIBRARIES))
    if unknown:
        raise ConfigError(f"--libraries {','.join(unknown)}: unknown; use some of {', '.join(PEER_LIBRARIES)}")
    libraries = [name for name in PEER_LIBRARIES if installed(name) and (libraries is None or name in libraries)]
    dev = resolve_device(device)
    load_before = os.getloadavg()[0]
    inputs = real_inputs(n, 128, data_dir, surrogate_samples)
    rows = [_peer_row(f, inputs, fraction, dev, [lib for lib in libraries if f in PEER_LIBRARIES[lib]])
            for f in PEER_FUNCTIONS]
    overhead = {}
    if "apricot" in libraries:  # apricot compiles its numba gain functions on every fit: its fixed cost per call
        tiny = cosine_kernel(inputs["gradients"][:50])
        overhead["apricot_seconds_per_call"] = round(_timed(peer_call("apricot", "facility_location", tiny, 5))[0], 3)
    return {"samples": n, "real_samples": inputs["real_samples"], "dataset": inputs["dataset"], "model": "cnn",
            "space": "gradients", "gradient_dim": inputs["gradients"].shape[1], "fraction": fraction,
            "classes": len(np.unique(inputs["labels"])), "device": device_label(dev),
            "torch_threads": torch.get_num_threads(), "libraries": libraries,
            "missing": [name for name in PEER_LIBRARIES if not installed(name)], "functions": rows, **overhead,
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
