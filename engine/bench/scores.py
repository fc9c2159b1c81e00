"""`prunelab bench scores`: the cost of every scorer in training epochs, against a naive per-sample loop and
torch.func vmap(grad), with peak memory measured in fresh subprocesses; the checkpoint scores (tracin,
gradient_alignment, moso) per checkpoint against their per-sample loops, and their inner products against a
forward-mode JVP."""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from statistics import median

import torch
from torch import nn
from torch.func import functional_call, grad, jvp, vmap

from ..architectures import build_model
from ..config import TrainConfig
from ..data.dataset import load_dataset
from ..device import resolve_device
from ..errors import UnknownNameError
from ..registry import Ref
from ..scoring.batch import score_model
from ..scoring.influence import gradient_products, mean_gradient
from ..scoring.registry import SCORERS
from ..scoring.surrogate import random_scores
from ..train_hooks import TrainHook, TrainStart, as_hook
from ..trainer import autocast, make_optimizer, prepare_model, to_model_layout, train
from .common import NO_EVAL, device_label, rss_kib, tiled, timed_seconds


def bench_scorer_names() -> list[str]:
    """Every registered scorer: the built-ins and any registered before the bench runs."""
    return list(SCORERS)


def _load(obj):
    return obj.load() if isinstance(obj, Ref) else obj


ONE_PASS = ("loss", "grad_norm", "input_grad_norm", "el2n")


def _naive_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, wrt_input: bool) -> torch.Tensor:
    """The textbook per-sample loop: one forward and backward per sample, norms from .grad."""
    params = [p for p in model.parameters() if p.requires_grad]
    out = torch.empty(len(y))
    for i in range(len(y)):
        xi = x[i:i + 1].detach().requires_grad_(wrt_input)
        loss = nn.functional.cross_entropy(model(xi), y[i:i + 1])
        grads = torch.autograd.grad(loss, [xi] if wrt_input else params)
        out[i] = torch.sqrt(sum(g.square().sum() for g in grads))
    return out


def _vmap_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, wrt_input: bool, chunk: int) -> torch.Tensor:
    """torch.func's recipe: vmap(grad(loss of one sample)) over chunks of the batch."""

    params = {k: p.detach() for k, p in model.named_parameters()}
    buffers = {k: b.detach() for k, b in model.named_buffers()}

    def loss(p, xi, yi):
        logits = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return nn.functional.cross_entropy(logits, yi.unsqueeze(0))

    per_sample = vmap(grad(loss, argnums=1 if wrt_input else 0), in_dims=(None, 0, 0))
    out = []
    for s in range(0, len(y), chunk):
        grads = per_sample(params, x[s:s + chunk], y[s:s + chunk])
        grads = [grads] if wrt_input else list(grads.values())
        out.append(torch.sqrt(sum(g.flatten(1).square().sum(1) for g in grads)))
    return torch.cat(out)


def _naive_checkpoint(model: nn.Module, x: torch.Tensor, y: torch.Tensor, with_mean: bool) -> None:
    """A checkpoint score the textbook way: per-sample gradients one sample at a time (as MoSo's reference, with a
    batch-size-1 loader), their mean first when the score needs it, then ‖g_n‖² and g_n · ḡ."""
    params = [p for p in model.parameters() if p.requires_grad]

    def flat(i: int) -> torch.Tensor:
        loss = nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1])
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])

    mean = sum(flat(i) for i in range(len(y))) / len(y) if with_mean else None
    for i in range(len(y)):
        g = flat(i)
        g.square().sum()
        if mean is not None:
            g @ mean


def _jvp_products(model: nn.Module, x: torch.Tensor, y: torch.Tensor, vector: dict[str, torch.Tensor],
                  chunk: int) -> torch.Tensor:
    """g_n · v for every sample by a forward-mode JVP of the per-sample losses along v (the alternative to the
    per-layer inner-product forms)."""
    params = {k: p.detach() for k, p in model.named_parameters()}
    buffers = {k: b.detach() for k, b in model.named_buffers()}
    tangents = {k: vector.get(k, torch.zeros_like(p)) for k, p in params.items()}
    out = []
    for s in range(0, len(y), chunk):
        xb, yb = x[s:s + chunk], y[s:s + chunk]

        def losses(p, xb=xb, yb=yb):
            return nn.functional.cross_entropy(functional_call(model, (p, buffers), (xb,)), yb, reduction="none")

        out.append(jvp(losses, (params,), (tangents,))[1])
    return torch.cat(out)


def is_checkpoint_score(name: str) -> bool:
    """A training scorer whose observer is a trainer hook with passes of its own (influence.py)."""
    s = SCORERS[name]
    made = _load(s.observer) if s.kind == "training" else None
    return isinstance(made, type) and issubclass(made, TrainHook)


def score_memory_probe(kind: str, dataset: str, data_dir: str | None, batch_size: int, model_name: str = "cnn",
                       device: str = "auto") -> dict:
    """Peak memory growth of one training step (kind='train') or one scoring batch (kind=scorer list).

    On CUDA: torch.cuda.max_memory_allocated over the step, minus what was allocated
    before. On the CPU: the process's peak RSS (VmHWM) over the step minus its RSS
    before, after resetting the peak by writing 5 to /proc/self/clear_refs. Run it in
    a fresh process with MALLOC_MMAP_THRESHOLD_ set low (as `bench_scores` does), so
    freed tensors go back to the OS and RSS follows live memory; each kind runs once
    before the measured run, so one-off library set-up is not counted.
    """
    dev = resolve_device(device)
    ds = load_dataset(dataset, data_dir)
    ds = ds.subset(train_size=max(batch_size, ds.num_classes)).to(dev)  # one batch (a subset holds every class)
    model = prepare_model(build_model(model_name, ds.input_shape, ds.num_classes, seed=0), dev)
    optimizer = make_optimizer(model, TrainConfig())

    def train_step() -> None:  # as the trainer takes it (bf16 autocast on CUDA)
        x = to_model_layout(ds.normalize(ds.x_train[:batch_size]))
        with autocast(dev, TrainConfig().amp):
            logits = model(x)
        loss = nn.functional.cross_entropy(logits.float(), ds.y_train[:batch_size])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def scoring() -> None:
        score_model(model, ds, kind.split(","), batch_size=batch_size)

    step = train_step if kind == "train" else scoring
    model.train()
    step()
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return {"peak_bytes": torch.cuda.max_memory_allocated() - before, "method": "cuda"}
    before = rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    step()
    return {"peak_bytes": (rss_kib("VmHWM") - before) * 1024, "method": "rss"}


def _probe_in_subprocess(kind: str, dataset: str, data_dir: str | None, batch_size: int, model_name: str,
                         device: str) -> dict:
    code = ("import json, sys; from engine.bench.scores import score_memory_probe as p; "
            "print(json.dumps(p(*json.loads(sys.argv[1]))))")
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    done = subprocess.run([sys.executable, "-c", code, json.dumps([kind, dataset, data_dir, batch_size, model_name, device])],
                          capture_output=True, text=True, env=env, cwd=str(Path(__file__).resolve().parents[2]),
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe {kind!r} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_scores(data_dir: str | None = None, samples: int | None = None, device: str = "auto",
                 batch_size: int = 256, naive_samples: int = 256, vmap_samples: int = 2048, rounds: int = 3,
                 memory: bool = True, dataset: str | None = None, model: str | None = None,
                 tile_to: int | None = None, scorers: list[str] | None = None) -> dict:
    """Scoring cost per scorer, measured in one run: by default MNIST `cnn` (mnist-mini
    without `data_dir`); `dataset`/`model` pick others (CIFAR-10 defaults to `resnet18`).

    Each of `rounds` rounds times, back to back: one training epoch (engine.train's
    optimisation loop, no evaluation, same model, batch size and samples), each
    scorer alone, the four one-pass scorers together, a training epoch with the
    forgetting counter, a per-sample autograd loop on `naive_samples` samples and
    torch.func's vmap(grad) in chunks of the batch size on `vmap_samples` samples
    (both extrapolated per sample to all samples). Ratios are taken within a round
    and the median over rounds is reported, so a shared machine's changing load
    disturbs them far less than the absolute seconds (also reported, with the load
    average).

    - `epochs_equivalent`: scoring time over the training epoch's time.
    - `speedup_vs_naive` / `speedup_vs_vmap` (grad_norm, input_grad_norm).
    - `peak_memory_vs_train_step`: peak memory growth of scoring one batch over that
      of one training step, each in a fresh process (`score_memory_probe`).
    - training scorers (`forgetting`, `aum`, ...): the extra time of their observer during a training epoch.
    - checkpoint scores (`tracin`, `gradient_alignment`, `moso`): one checkpoint's passes (a run pays this at
      each checkpoint), beside the per-sample loop of the same quantities on `naive_samples` samples
      (extrapolated); `gradient_alignment` also times its inner-product pass alone against a forward-mode JVP
      of the per-sample losses along ḡ on `vmap_samples` samples (`speedup_vs_jvp`).

    `tile_to` repeats the training set to that many samples (see `tiled`); `scorers` times
    only those (default: every registered one), and the one-pass figure only when all
    four one-pass scorers are among them: a smoke test of one claim then costs seconds.
    """
    names = bench_scorer_names() if scorers is None else list(scorers)
    for scorer in names:
        if scorer not in SCORERS:
            raise UnknownNameError("scorer", scorer, SCORERS)
    bench = _ScoreBench(data_dir, samples, device, batch_size, naive_samples, vmap_samples, dataset, model, tile_to)
    samples_of: dict[str, list[dict[str, float]]] = {s: [] for s in names}
    train_times, all_ratios = [], []
    for _ in range(rounds):
        epoch = bench.train_epoch()
        train_times.append(epoch)
        for scorer in names:
            samples_of[scorer].append(bench.time_scorer(scorer, epoch))
        if set(ONE_PASS) <= set(names):
            all_ratios.append(bench.time_one_pass() / epoch)
        for scorer, wrt_input in (("grad_norm", False), ("input_grad_norm", True)):
            if scorer in names:
                samples_of[scorer][-1].update(bench.time_peers(wrt_input, samples_of[scorer][-1]["seconds"]))
        for scorer in [s for s in names if is_checkpoint_score(s)]:
            samples_of[scorer][-1].update(bench.time_checkpoint_peers(scorer, samples_of[scorer][-1]["seconds"]))
    result = {"dataset": bench.name, "model": bench.model_name, "samples": bench.n, "tiled_from": bench.tiled_from,
              "batch_size": batch_size, "device": device_label(bench.dev),
              "torch_threads": torch.get_num_threads(), "rounds": rounds,
              "train_epoch_seconds": round(median(train_times), 3), "scorers": _entries(samples_of, bench.n),
              "load_average": [round(bench.load_before, 2), round(os.getloadavg()[0], 2)]}
    if all_ratios:
        result.update(all_scorers=list(ONE_PASS), all_scorers_epochs_equivalent=round(median(all_ratios), 3))
    if memory:
        result.update(_memory(bench, names, result["scorers"], bool(all_ratios), data_dir))
    return result


class _ScoreBench:
    """The data, the scored model and the timed steps of one `bench_scores` run."""

    def __init__(self, data_dir: str | None, samples: int | None, device: str, batch_size: int, naive_samples: int,
                 vmap_samples: int, dataset: str | None, model: str | None, tile_to: int | None):
        self.dev = resolve_device(device)
        self.name = dataset or ("mnist" if data_dir else "mnist-mini")
        self.model_name = model or ("cnn" if self.name.startswith("mnist") else "resnet18")
        ds = load_dataset(self.name, data_dir, self.dev, train_size=samples)
        self.tiled_from = None
        if tile_to is not None:
            self.tiled_from, ds = len(ds), tiled(ds, tile_to)
        self.ds, self.n, self.batch_size = ds, len(ds), batch_size
        self.cfg = TrainConfig(epochs=1, batch_size=batch_size, schedule="constant")
        self.load_before = os.getloadavg()[0]
        warm_up = ds.subset(train_size=min(self.n, max(4 * batch_size, ds.num_classes)))
        train(self.model_name, warm_up, self.cfg, seed=1, **NO_EVAL)
        self.model = train(self.model_name, ds, self.cfg, seed=0, **NO_EVAL).model  # the model scored: 1 epoch
        score_model(self.model, ds.subset(train_size=min(self.n, max(batch_size, ds.num_classes))), ONE_PASS,
                    batch_size=batch_size)  # warm-up
        self.subsets = {peer: (to_model_layout(ds.normalize(ds.x_train[:m])), ds.y_train[:m])
                        for peer, m in (("naive", min(self.n, naive_samples)), ("vmap", min(self.n, vmap_samples)))}
        x, y = self.subsets["vmap"]
        _vmap_scores(self.model.eval(), x[:batch_size], y[:batch_size], False, batch_size)
        self.labels = ds.y_train.cpu().numpy()

    def train_epoch(self, observer=None) -> float:
        """Seconds of one training epoch (the optimisation loop alone), with `observer` counting if given."""
        hooks = [as_hook(observer)] if observer is not None else []
        return train(self.model_name, self.ds, self.cfg, seed=0, hooks=hooks, **NO_EVAL).train_seconds

    def time_scorer(self, scorer: str, epoch: float) -> dict[str, float]:
        """One scorer's seconds (a training scorer's: the extra time of observing an epoch; a checkpoint score's:
        one checkpoint's passes) beside the epoch's."""
        s = SCORERS[scorer]
        if is_checkpoint_score(scorer):
            hook = _load(s.observer)(self.n, self.dev)
            hook.start(TrainStart(self.model, self.ds, torch.arange(self.n, device=self.dev), 1, lambda e: 1.0))
            return {"seconds": timed_seconds(partial(hook.at_checkpoint, self.model)), "epoch": epoch}
        if s.kind == "training":
            counted = self.train_epoch(_load(s.observer)(self.n, self.dev))
            return {"seconds": max(counted - epoch, 0.0), "epoch": epoch}
        if scorer == "random":
            return {"seconds": timed_seconds(partial(random_scores, self.n, 0)), "epoch": epoch}
        if s.kind == "embedding":  # the pass that captures the embeddings, then the score over the whole set
            return {"seconds": timed_seconds(partial(self._embedding_score, s)), "epoch": epoch}
        return {"seconds": timed_seconds(partial(score_model, self.model, self.ds, [scorer],
                                                 batch_size=self.batch_size)), "epoch": epoch}

    def _embedding_score(self, s) -> None:
        embeddings = score_model(self.model, self.ds, [], batch_size=self.batch_size, embeddings=True).embeddings
        _load(s.fn)(self.model, embeddings, self.labels)

    def time_one_pass(self) -> float:
        return timed_seconds(partial(score_model, self.model, self.ds, ONE_PASS, batch_size=self.batch_size))

    def time_peers(self, wrt_input: bool, ours: float) -> dict[str, float]:
        """The naive loop's and vmap's seconds, extrapolated to all samples, and our speed-up over each."""
        self.model.eval()
        out = {}
        for peer in ("naive", "vmap"):
            x, y = self.subsets[peer]
            if peer == "naive":
                run = partial(_naive_scores, self.model, x, y, wrt_input)
            else:
                run = partial(_vmap_scores, self.model, x, y, wrt_input, self.batch_size)
            extrapolated = timed_seconds(run) / len(y) * self.n
            out[f"{peer}_seconds"], out[f"speedup_vs_{peer}"] = extrapolated, extrapolated / ours
        return out


    def time_checkpoint_peers(self, scorer: str, ours: float) -> dict[str, float]:
        """A checkpoint score's per-sample loop (extrapolated to all samples) and our speed-up over it; for
        gradient_alignment also its inner-product pass against a forward-mode JVP."""
        model = self.model.eval()
        x, y = self.subsets["naive"]
        naive = timed_seconds(partial(_naive_checkpoint, model, x, y, scorer != "tracin")) / len(y) * self.n
        out = {"naive_seconds": naive, "speedup_vs_naive": naive / ours}
        if scorer == "gradient_alignment":
            mean = mean_gradient(model, self.ds, self.batch_size)
            dots = timed_seconds(partial(gradient_products, model, self.ds, [mean], False, self.batch_size))
            x, y = self.subsets["vmap"]
            _jvp_products(model, x[:self.batch_size], y[:self.batch_size], mean, self.batch_size)  # warm-up
            forward = timed_seconds(partial(_jvp_products, model, x, y, mean, self.batch_size)) / len(y) * self.n
            out.update(inner_products_seconds=dots, jvp_seconds=forward, speedup_vs_jvp=forward / dots)
        return out


def _entries(samples_of: dict[str, list[dict[str, float]]], n: int) -> dict[str, dict]:
    """Each scorer's medians over the rounds."""
    entries: dict[str, dict] = {}
    for scorer, runs in samples_of.items():
        seconds = median([r["seconds"] for r in runs])
        entry = {"seconds": round(seconds, 3),
                 "samples_per_second": round(n / seconds, 1) if seconds > 0 else None,
                 "epochs_equivalent": round(median([r["seconds"] / r["epoch"] for r in runs]), 3)}
        for key in ("naive_seconds", "vmap_seconds", "speedup_vs_naive", "speedup_vs_vmap", "inner_products_seconds",
                    "jvp_seconds", "speedup_vs_jvp"):
            if key in runs[0]:
                entry[key] = round(median([r[key] for r in runs]), 2)
        if is_checkpoint_score(scorer):
            entry["note"] = "one checkpoint's passes (a run pays them at each checkpoint)"
        elif SCORERS[scorer].kind == "training":
            entry["note"] = "extra time of observing one training epoch"
        entries[scorer] = entry
    return entries


def _memory(bench: _ScoreBench, names: list[str], entries: dict[str, dict], one_pass: bool,
            data_dir: str | None) -> dict:
    """Peak memory of scoring one batch over a training step's, each in a fresh process; fills `entries` too."""
    probe = partial(_probe_in_subprocess, dataset=bench.name, data_dir=data_dir, batch_size=bench.batch_size,
                    model_name=bench.model_name, device=str(bench.dev))
    train_peak = probe("train")
    out = {}
    for scorer in [s for s in ("loss", "el2n", "grad_norm", "input_grad_norm") if s in names]:
        entries[scorer]["peak_memory_vs_train_step"] = round(probe(scorer)["peak_bytes"] /
                                                             max(1, train_peak["peak_bytes"]), 3)
    if one_pass:
        peak = probe(",".join(ONE_PASS))["peak_bytes"]
        out["all_scorers_peak_memory_vs_train_step"] = round(peak / max(1, train_peak["peak_bytes"]), 3)
    out.update(train_step_peak_bytes=train_peak["peak_bytes"],
               memory_method=("torch.cuda.max_memory_allocated" if train_peak["method"] == "cuda" else
                              "peak RSS growth (VmHWM after clear_refs) in fresh processes"))
    return out
