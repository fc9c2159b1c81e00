"""Launch previews: what a config will run (trials, surrogates, selections) and about how long, before it runs.

Why: switching the TUI form's kind to `benchmark` quietly asks for hundreds of trials, and nothing said so
before the run began. A preview counts the work from the same plans the kinds execute (their trial lists and
the scoring plan), checks the cache for surrogates already trained, and estimates the time from this
machine's measured throughput, saying what the estimate rests on:

- **throughput**: training and evaluation samples per second of the config's model on its device, measured
  once by the trainer itself on a few batches of the config's data (about two seconds) and cached for a week
  beside the store (`<cache>/calibration/`), keyed by model, data shape, device, batch sizes, threads and host;
- **overheads**: per trial (MLflow's child run, logging, the data look-up), per selection, and per run (data,
  parent run, summary and figures), the medians of the store's recent progress files; assumed values when the
  store has none yet, and said so.

The estimate is the sum of surrogate training, scoring passes, selections, trials (samples trained and
evaluated over the throughput) and the overheads. The CLI (`prunelab run --dry-run`) and the TUI's form show
it; both ask before launching more than `CONFIRM_TRIALS` trials. Nothing here prints or logs.
"""
from __future__ import annotations

import json
import math
import os
import socket
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import names

CONFIRM_TRIALS = 100  # above this many trials the CLI and the TUI ask before launching
CALIBRATION_MAX_AGE_S = 7 * 24 * 3600  # a cached measurement older than this is measured again
CALIBRATION_TARGET_S = 1.5  # how long the timed training of the calibration runs, about
HISTORY_RUNS = 20  # the newest progress files read for the overheads
# what is assumed when the store has no finished trials to read overheads from (measured on a 2-core CPU with a
# SQLite store: the quick preset's trials, at load 1-2)
ASSUMED_TRIAL_OVERHEAD_S = 1.0
ASSUMED_SELECTION_S = 0.05
ASSUMED_RUN_OVERHEAD_S = 10.0
RETRAIN_KINDS = ("prune", "score-epochs", "study", "noise", "benchmark")


@dataclass
class Throughput:
    """Samples per second of one model on one device: training (the optimiser loop, no evaluation) and
    evaluation (forward passes at the evaluation batch size)."""

    model: str
    device: str
    train_sps: float
    eval_sps: float
    measured_at: float  # time.time() of the measurement
    load: float | None  # the 1-minute load average then (None where the OS has none)
    cached: bool = False  # read from the calibration cache rather than measured now

    def describe(self, now: float) -> str:
        age = _ago(now - self.measured_at)
        load = f" at load {self.load:.1f}" if self.load is not None else ""
        return (f"{self.model} on {self.device} trains {self.train_sps:,.0f} and evaluates {self.eval_sps:,.0f} "
                f"samples/s (measured {age}{load}{', cached' if self.cached else ''})")


@dataclass
class History:
    """Overheads read from the store's recent progress files: medians, and how many values each rests on."""

    trial_s: float | None = None
    trials: int = 0
    selection_s: float | None = None
    selections: int = 0
    run_s: float | None = None
    runs: int = 0


@dataclass
class Preview:
    """What a config will run, before it runs (engine.api.preview)."""

    kind: str
    dataset: str
    model: str
    device: str
    train_samples: int
    test_samples: int
    trials: int
    selections: int  # subsets selected before their trials train (online and dynamic select as they train)
    surrogates: int  # surrogates to train (not in the cache)
    surrogates_cached: int  # surrogates the cache already holds (or holds the states of, to rescore)
    scoring_passes: int  # scoring passes to run over the training set
    seconds: float | None  # the estimate; None when it cannot be made (see basis)
    parts: dict[str, float] = field(default_factory=dict)  # surrogates, scoring, selection, trials, overheads
    basis: list[str] = field(default_factory=list)  # what the estimate rests on, in words

    @property
    def needs_confirmation(self) -> bool:
        return self.trials > CONFIRM_TRIALS

    def headline(self) -> str:
        """"375 trials, 1 surrogate, ~14 min" (surrogates only when there are some to train or load)."""
        parts = [plural(self.trials, "trial")]
        if self.surrogates or self.surrogates_cached:
            parts.append(plural(self.surrogates, "surrogate")
                         + (f" (+{self.surrogates_cached} cached)" if self.surrogates_cached else ""))
        if self.seconds is not None:
            parts.append(about(self.seconds))
        return ", ".join(parts)

    def lines(self) -> list[str]:
        """The preview in words, as `prunelab run --dry-run` prints it."""
        out = [(f"{self.kind} on {self.dataset} ({self.train_samples:,} training, {self.test_samples:,} test samples)"
               f" with {self.model} on {self.device}"),
               (f"trials: {self.trials}; selections: {self.selections}; surrogates to train: {self.surrogates}"
               f" ({self.surrogates_cached} cached); scoring passes: {self.scoring_passes}")]
        if self.seconds is not None:
            spent = ", ".join(f"{k} {_duration(v)}" for k, v in self.parts.items() if v >= 0.5)
            out.append(f"estimated time: {about(self.seconds)} ({spent})" if spent else
                       f"estimated time: {about(self.seconds)}")
        out += [f"basis: {line}" for line in self.basis]
        if self.needs_confirmation:
            out.append(f"more than {CONFIRM_TRIALS} trials: `prunelab run` asks before starting (--yes skips)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "headline": self.headline(), "needs_confirmation": self.needs_confirmation}


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def about(seconds: float) -> str:
    """A rough duration: "~40 s", "~14 min", "~2.5 h"."""
    if seconds < 60:
        return f"~{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"~{round(seconds / 60)} min"
    return f"~{seconds / 3600:.1f} h"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _ago(seconds: float) -> str:
    if seconds < 90:
        return "just now"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


# ---------------------------------------------------------------- what a config runs
def trial_plan(config: Any) -> list[Any] | None:
    """The trials a built-in kind runs, from its own plan; None for a plugin's kind (only its count is known)."""
    from .runner import steps

    kind = config.kind
    if kind in ("prune", "score-epochs"):
        return steps.sweep_trials(config)
    if kind == "study":
        from .kinds.study import part_configs

        return list({t.key: t for c in part_configs(config).values() for t in steps.sweep_trials(c)}.values())
    if kind == "noise":
        from .kinds.noise import plan

        return plan(config, config.noise.methods)
    if kind in ("benchmark", "online", "dynamic"):
        import importlib

        return importlib.import_module(f"engine.kinds.{kind}").plan(config)
    return None


def count_trials(config: Any) -> int:
    """The number of trials of a run of `config`, as its kind counts them (no data loaded)."""
    from .kinds import KINDS

    return int(KINDS[config.kind].count_trials(config))


@dataclass
class ScoringRequest:
    """The one scoring call a kind makes (engine/runner/steps.py: surrogate_scores)."""

    methods: list[str]
    epochs: list[int]
    embeddings: bool = False
    gradients: bool = False
    noisy: bool = False  # the noise kind scores the data with its flipped labels


def scoring_request(config: Any) -> ScoringRequest | None:
    """What a built-in kind scores, as its `execute` asks for it; None when it trains no surrogate (online,
    dynamic) or is a plugin's kind."""
    from .runner import steps

    kind = config.kind
    if kind in ("prune", "score-epochs"):
        return ScoringRequest(list(config.sweep.methods), list(config.sweep.score_epochs), *steps.needs(config))
    if kind == "overlap":
        return ScoringRequest(list(config.overlap.methods), [steps.overlap_epoch(config)])
    if kind == "noise":
        return ScoringRequest(list(config.noise.methods), [config.surrogate.epochs], noisy=True)
    if kind == "benchmark":
        from .kinds.benchmark import pairs

        compared = pairs(config)
        return ScoringRequest([m for m, _ in compared], [config.surrogate.epochs],
                              *steps.needs(config, [s for _, s in compared]))
    if kind == "study":
        return _study_request(config)
    return None


def _study_request(config: Any) -> ScoringRequest:
    from .kinds.study import scored_methods_and_epochs
    from .runner import steps

    return ScoringRequest(*scored_methods_and_epochs(config), *steps.needs(config))


@dataclass
class SurrogateWork:
    """The surrogates a run trains or loads, and the work each leaves to do."""

    train: int = 0  # surrogates trained
    cached: int = 0  # surrogates loaded (scores, or states to rescore)
    train_samples: int = 0  # samples the trained ones go through
    passes: int = 0  # scoring passes to run
    grad_passes: bool = False  # the passes back-propagate (per-sample gradient norms, input gradients)


def surrogate_work(config: Any, dataset: Any, request: ScoringRequest | None, cache: Any) -> SurrogateWork:
    """How many surrogates the run trains and how many scoring passes it runs, the cache consulted as the
    scoring step does (engine/scoring/surrogate.py: SurrogateRun.train_and_score)."""
    from .scoring.plan import PassOptions, plan_scores

    if request is None:
        return SurrogateWork()
    scorers = [m for m in dict.fromkeys(request.methods) if m != names.RANDOM]
    if not scorers and not request.embeddings and not request.gradients:
        return SurrogateWork()
    if request.noisy:
        from .data.noise import with_label_noise

        dataset, _ = with_label_noise(dataset, config.noise.fraction, config.noise.seed)
    from .runner.steps import map_wanted

    surrogate = config.surrogate
    embeddings = map_wanted(config, dataset, scorers or ["loss"], request.embeddings, request.gradients)
    extras = PassOptions(batch_size=surrogate.batch_size, embeddings=embeddings, gradients=request.gradients,
                         gradient_dtype=surrogate.gradient_dtype, gradient_mb=surrogate.gradient_mb)
    train_cfg = config.train.model_copy(update={"epochs": surrogate.epochs, "steps": None})
    plan = plan_scores(len(dataset), config.model, scorers or ["loss"], request.epochs, surrogate.inits, train_cfg,
                       config.seed, config.scorer_options(scorers), extras)
    out = SurrogateWork(grad_passes=any(s.needs_param_grads or s.needs_input_grad for s in plan.scorers))
    caches = _surrogate_caches(cache, dataset, plan)
    for work in plan.surrogates:
        until, passes = _work_left(caches(work), work, plan)
        out.passes += passes
        if until is None:
            out.cached += 1
        else:
            out.train += 1
            out.train_samples += until * len(dataset)
    return out


def _surrogate_caches(cache: Any, dataset: Any, plan: Any):
    """work -> its SurrogateCache, or None when there is no cache to consult."""
    if cache is None:
        return lambda work: None
    from .scoring.score_cache import ScoreCache

    scores = ScoreCache(cache, dataset, plan)
    return scores.surrogate


def _work_left(store: Any, work: Any, plan: Any) -> tuple[int | None, int]:
    """(the epoch surrogate `work` must be trained to, None when it need not be trained; how many scoring passes
    it needs), from which cache entries exist (files, not read: a preview stays cheap)."""
    observed = [t for t in plan.all_epochs if work.observed_at[t]]
    if store is None:
        return max([*work.passes, *observed], default=0), len(work.passes)
    from .scoring.score_cache import OBSERVER_VALUES, SCORES, STATES

    def exists(kind: str, key: str, suffix: str) -> bool:
        return store.cache._path(kind, key, suffix).exists()  # the entry's file; Cache has no public test for it

    missing = [t for t in work.passes if not exists(SCORES, store.scores_key(t), ".npz")]
    observed_missing = [t for t in observed
                        if any(not exists(OBSERVER_VALUES, store.observer_key(s, t), ".npz") for s in work.observed_at[t])]
    if observed_missing or any(not exists(STATES, store.state_key(t), ".pt") for t in missing):
        return max(missing + observed_missing), len(missing)  # as SurrogateRun._train: up to the last one needed
    return None, len(missing)


# ---------------------------------------------------------------- throughput, measured once
def calibration_key(config: Any, dataset: Any, device: Any) -> str:
    import torch

    from .store.cache import cache_key

    train = config.train
    return cache_key(model=config.model, shape=list(dataset.input_shape), classes=dataset.num_classes,
                     device=str(device), batch=train.batch_size, eval_batch=train.eval_batch_size, amp=train.amp,
                     augment=train.augment and dataset.augment != "none", tta=train.tta, torch=torch.__version__,
                     threads=torch.get_num_threads(), host=socket.gethostname())


def throughput(config: Any, dataset: Any, cache_dir: Path | None, measure: bool = True,
               now: float | None = None, device: Any = None) -> Throughput | None:
    """The model's samples/s on `device` (default: the dataset's): cached (under `cache_dir`/calibration, younger
    than a week), else measured now when `measure` (else None), the data moved to the device for it."""
    now = time.time() if now is None else now
    device = dataset.device if device is None else device
    path = Path(cache_dir) / "calibration" / f"{calibration_key(config, dataset, device)}.json" \
        if cache_dir is not None else None
    if path is not None and path.exists():
        try:
            found = Throughput(**{**json.loads(path.read_text()), "cached": True})
            if now - found.measured_at <= CALIBRATION_MAX_AGE_S:
                return found
        except (OSError, ValueError, TypeError):
            pass  # damaged: measure again
    if not measure:
        return None
    measured = measure_throughput(config, dataset.to(device, config.data.device_budget_mb))
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({k: v for k, v in asdict(measured).items() if k != "cached"}))
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache: measured again next time
    return measured


def measure_throughput(config: Any, dataset: Any) -> Throughput:
    """Train the config's model on a few batches of its data with the trainer itself (one warm-up batch, then
    about CALIBRATION_TARGET_S of batches) and time the evaluation of one or two evaluation batches."""
    import numpy as np

    from .trainer import evaluate, train

    cfg = config.train.model_copy(update={"epochs": 1, "steps": None, "compile": False})
    n, batch = len(dataset), cfg.batch_size
    warm = train(config.model, dataset, cfg, seed=config.seed, indices=np.arange(min(n, batch)),
                 evaluate_every_epoch=False, evaluate_at_end=False)
    guess = warm.samples / max(warm.train_seconds, 1e-6)
    batches = int(min(64, max(2, CALIBRATION_TARGET_S * guess / batch)))
    timed = train(config.model, dataset, cfg, seed=config.seed, indices=np.arange(min(n, batches * batch)),
                  evaluate_every_epoch=False, evaluate_at_end=False)
    test = dataset.subset(None, min(len(dataset.y_test), max(dataset.num_classes, 2 * cfg.eval_batch_size)))
    evaluate(timed.model, test, "test", cfg.eval_batch_size, cfg.amp, cfg.tta)  # warm-up
    start = time.perf_counter()
    evaluate(timed.model, test, "test", cfg.eval_batch_size, cfg.amp, cfg.tta)
    eval_s = max(time.perf_counter() - start, 1e-6)
    return Throughput(config.model, str(dataset.device), timed.samples / max(timed.train_seconds, 1e-6),
                      len(test.y_test) / eval_s, time.time(), _load())


# ---------------------------------------------------------------- overheads, from the store's recent runs
def history(progress_dir: Path | None, runs: int = HISTORY_RUNS) -> History:
    """Per-trial, per-selection and per-run overheads from the newest progress files (medians)."""
    from .store.progress import iter_progress_files, read_events

    trial, selection, fixed = [], [], []
    if progress_dir is not None:
        for path in list(iter_progress_files(progress_dir))[:runs]:
            t, s, f = _overheads(read_events(path))
            trial += t
            selection += s
            fixed += f
    med = statistics.median
    return History(med(trial) if trial else None, len(trial), med(selection) if selection else None, len(selection),
                   med(fixed) if fixed else None, len(fixed))


def _overheads(events: list[Any]) -> tuple[list[float], list[float], list[float]]:
    """One run's (per-trial overheads, per-selection times, run overhead): a trial's is the time between the end
    of the one before and its own end, less the trainer's own seconds; a selection's, the time to the next
    event after its stage began; the run's, from its start to its first stage plus from its last trial to its end."""
    from .store.events import EpochEnd, RunStarted, RunStatus, StageStarted, TrialFinished

    trial, selection = [], []
    started = first_stage = last_trial = ended = None
    seconds: dict[int, float] = {}
    selecting_since = None
    for event in events:
        if selecting_since is not None:
            selection.append(event.t - selecting_since)
            selecting_since = None
        if isinstance(event, RunStarted):
            started = event.t if started is None else started
        elif isinstance(event, StageStarted):
            first_stage = event.t if first_stage is None else first_stage
            selecting_since = event.t if event.stage == "selecting" else None
        elif isinstance(event, EpochEnd) and event.trial is not None:
            seconds[event.trial] = float(event.metrics.get("seconds", 0.0))
        elif isinstance(event, TrialFinished):
            if last_trial is not None and event.trial in seconds and event.status == names.FINISHED:
                trial.append(max(0.0, event.t - last_trial - seconds[event.trial]))
            last_trial = event.t
        elif isinstance(event, RunStatus) and event.status == names.FINISHED:
            ended = event.t
    fixed = []
    if None not in (started, first_stage, last_trial, ended):
        fixed.append((first_stage - started) + (ended - last_trial))
    return trial, selection, fixed


# ---------------------------------------------------------------- the estimate
@dataclass
class Costs:
    """Samples a run trains and evaluates, besides its surrogates: from its trial list."""

    trained: float = 0.0
    evaluated: float = 0.0
    scored: float = 0.0  # online: the drawn batches scored with the current model


def trial_costs(config: Any, trials: list[Any] | None, count: int, n: int, n_test: int) -> Costs:
    """The samples the trials train and evaluate; a plugin kind's trials are taken as full-data retrainings."""
    from .selection.base import keep_count

    epochs, costs = config.train.epochs, Costs()
    kind = config.kind
    for trial in trials if trials is not None else [None] * count:
        full = trial is None or trial.method == names.FULL
        if kind == "online" and not full:
            online = config.online
            steps = epochs * math.ceil(n / online.batch_size)
            costs.trained += steps * online.keep
            costs.scored += steps * online.batch_size
            costs.evaluated += (steps // online.eval_every + 1) * n_test
            continue
        if kind == "dynamic" and not full:  # about half the samples are below the mean loss; r of those go
            dyn = config.dynamic
            costs.trained += epochs * n * (1 - 0.5 * dyn.ratio * dyn.delta)
        else:
            same_steps = kind in RETRAIN_KINDS and config.sweep.budget == "steps"
            costs.trained += epochs * (n if full or same_steps else keep_count(trial.ratio, n))
        costs.evaluated += epochs * n_test
    return costs


def estimate(config: Any, tput: Throughput, work: SurrogateWork, costs: Costs, trials: int, selections: int,
             past: History, n: int) -> tuple[float, dict[str, float], list[str]]:
    """(seconds, the parts, the basis in words)."""
    pass_sps = tput.train_sps if work.grad_passes else tput.eval_sps
    parts = {"surrogates": work.train_samples / tput.train_sps,
             "scoring": work.passes * n / pass_sps,
             "trials": (costs.trained / tput.train_sps + costs.evaluated / tput.eval_sps
                        + costs.scored / tput.eval_sps)}
    basis = [tput.describe(time.time())]
    overheads = []
    for label, value, count, assumed, times in (
            ("per trial", past.trial_s, past.trials, ASSUMED_TRIAL_OVERHEAD_S, trials),
            ("per selection", past.selection_s, past.selections, ASSUMED_SELECTION_S, selections),
            ("per run", past.run_s, past.runs, ASSUMED_RUN_OVERHEAD_S, 1)):
        used = assumed if value is None else value
        key = {"per trial": "trial overhead", "per selection": "selection", "per run": "run overhead"}[label]
        parts[key] = used * times
        overheads.append(f"{label} {used:.2f} s (" + (f"median of {count} in this store's recent runs)"
                                                        if value is not None else "assumed: no finished runs here yet)"))
    basis.append("overheads: " + "; ".join(overheads))
    load = _load()
    if load is not None and tput.load is not None and load > 1.5 * max(tput.load, 1.0):
        basis.append(f"the load is {load:.1f} now, against {tput.load:.1f} when measured: expect longer")
    return sum(parts.values()), parts, basis


def preview(config: Any, cache_dir: str | Path | None = None, progress_dir: str | Path | None = None,
            measure: bool = True, check_cache: bool = True) -> Preview:
    """What `config` will run and about how long it takes (see the module's docstring); `cache_dir` is the store's
    cache (surrogates, calibration), `progress_dir` its progress files (overheads). `measure=False` never trains
    for the calibration: without a cached one the preview has counts but no time."""
    from .data.dataset import load_dataset
    from .device import resolve_device
    from .store.cache import Cache

    device = resolve_device(config.device)
    data = config.data  # on the CPU: counting and the cache's keys need no device, only a measurement does
    ds = load_dataset(data.dataset, data.data_dir, "cpu", data.train_size, data.test_size, data.options)
    n, n_test = len(ds), len(ds.y_test)
    trials = trial_plan(config)
    count = count_trials(config)
    selections = 0 if config.kind in ("online", "dynamic") else sum(
        t.method != names.FULL for t in trials or [])
    cache = Cache(cache_dir) if (check_cache and cache_dir is not None) else None
    work = surrogate_work(config, ds, scoring_request(config), cache)
    out = Preview(config.kind, data.dataset, config.model, str(device), n, n_test, count, selections, work.train,
                  work.cached, work.passes, None)
    if trials is None:
        out.basis.append(f"{config.kind} is a plugin's kind: its trials are counted as full-data retrainings and "
                         "its surrogates are not known")
    tput = throughput(config, ds, Path(cache_dir) if cache_dir is not None else None, measure, device=device)
    if tput is None:
        out.basis.insert(0, f"no throughput measured yet for {config.model} on {device}: no time estimate")
        return out
    costs = trial_costs(config, trials, count, n, n_test)
    past = history(Path(progress_dir) if progress_dir is not None else None)
    out.seconds, out.parts, basis = estimate(config, tput, work, costs, count, selections, past, n)
    out.basis = basis + out.basis
    return out
