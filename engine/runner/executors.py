"""Executors run trial jobs: locally in this process, or on Ray (optional extra).

Ray is an optional extra, so it is imported inside the functions that use it.
An executor takes picklable `TrialJob`s and yields `TrialRecord`s as they
finish; events from the trials reach the caller's `on_event`. Shared work
(surrogates, scores, selection) already ran in the driver, so a job only
retrains on its kept indices and logs its own child run.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterable, Iterator

import torch

from .. import names
from ..cancel import CancelToken
from ..cancel import check as check_cancel
from ..errors import UnknownNameError, UserError
from ..store.events import EventCallback, LogLine, TrialFinished, emit
from ..store.runs import TrialRecord
from ..store.tracking import TrackingError, tracker
from .worker import execute_trial, trial_run_tags

RAY_INSTALL = "pip install 'prunelab[ray]'"


class LocalExecutor:
    """Runs trials one after another in this process (they share its device)."""

    name = "local"

    def run(self, jobs: Iterable, on_event: EventCallback | None = None,
            cancel: CancelToken | None = None) -> Iterator:
        for job in jobs:
            check_cancel(cancel)
            yield execute_trial(job, on_event, cancel)


class RayNotInstalled(UserError):
    """`--executor ray` without the extra: say how to install it (exit 2)."""

    def __init__(self):
        super().__init__(f"the Ray executor needs Ray, which is not installed; install it with {RAY_INSTALL}")


class RayExecutor:
    """Runs trials as Ray tasks on a local Ray instance or an existing cluster.

    Each trial asks Ray for `cpus_per_trial` CPUs and `gpus_per_trial` GPUs
    (fractions share a GPU; None: one GPU when the cluster has any, else none).
    A trial whose worker or node dies is resubmitted up to `max_retries` times,
    and the dead attempt's child run is ended KILLED so the retry's run counts.
    Workers push their events to a small actor that the driver drains while it
    waits, so the progress file and the CLI bars see them as with the local executor.

    It connects when made, so a missing or too small cluster fails before any
    surrogate trains; a local instance it started lives until `close()` or exit.
    """

    name = "ray"

    def __init__(self, address: str | None = None, gpus_per_trial: float | None = None,
                 cpus_per_trial: float = 1.0, max_retries: int = 2, poll_interval: float = 0.25):
        try:
            import ray
        except ImportError:
            raise RayNotInstalled() from None
        if gpus_per_trial is not None and (gpus_per_trial < 0 or (gpus_per_trial > 1 and gpus_per_trial % 1)):
            raise UserError(f"--ray-gpus-per-trial {gpus_per_trial:g} is not valid: use a fraction in (0, 1] "
                            "to share a GPU, a whole number of GPUs, or 0 for CPU-only trials")
        if cpus_per_trial <= 0:
            raise UserError(f"--ray-cpus-per-trial {cpus_per_trial:g} must be > 0")
        if max_retries < 0:
            raise UserError(f"--ray-max-retries {max_retries} must be >= 0")
        self.address = address or None
        self.cpus_per_trial = cpus_per_trial
        self.max_retries = max_retries
        self.poll_interval = poll_interval
        self._check_local_cpus(ray)
        self.started = self._connect(ray)
        self.gpus_per_trial = self._check_resources(ray, gpus_per_trial)

    def close(self) -> None:
        """Stop the local Ray instance this executor started (a cluster it joined is left running)."""
        import ray

        if self.started and ray.is_initialized():
            ray.shutdown()
        self.started = False

    def _connect(self, ray) -> bool:
        """Join the cluster (or start a local one); keep the SIGTERM handler, which ray.init replaces."""
        if ray.is_initialized():
            return False
        self._check_reachable()
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM) if in_main else None
        try:
            ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = f"at {self.address!r}" if self.address else "(RAY_ADDRESS or a local `ray start`)"
            raise UserError(f"cannot reach the Ray cluster {where}: {exc}; check the address, and for a cluster "
                            "with token authentication set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN") from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return True

    def _check_local_cpus(self, ray) -> None:
        """A local Ray this executor would start has this machine's CPUs: an ask above them fails before Ray
        starts (and says its warnings first), in one line."""
        local = not (self.address or os.environ.get("RAY_ADDRESS") or ray.is_initialized())
        have = os.cpu_count() or 1
        if local and self.cpus_per_trial > have:
            raise UserError(f"each trial asks for {self.cpus_per_trial:g} CPUs but this machine has {have} for a "
                            "local Ray; lower --ray-cpus-per-trial, or join a larger cluster with --ray-address")

    def _check_reachable(self) -> None:
        """Fail in seconds on a HOST:PORT nobody listens on (ray.init retries for about a minute)."""
        host, _, port = (self.address or "").rpartition(":")
        if "://" in (self.address or "") or not host or not port.isdigit():
            return  # auto, local, ray://…: Ray resolves those itself
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            raise UserError(f"cannot reach the Ray cluster at {self.address!r} ({exc.strerror or exc}); start it "
                            "with `ray start --head --port PORT`, or drop --ray-address for a local Ray") from None

    def _check_resources(self, ray, gpus: float | None) -> float:
        """GPUs per trial (None: 1 if the cluster has any); refuse asks the cluster can never meet."""
        total = ray.cluster_resources()
        if gpus is None:
            gpus = 1.0 if total.get("GPU", 0) > 0 else 0.0
        for name, want, flag in (("GPU", gpus, "--ray-gpus-per-trial"),
                                 ("CPU", self.cpus_per_trial, "--ray-cpus-per-trial")):
            have = total.get(name, 0)
            if want > have:  # Ray would queue such a task forever
                raise UserError(f"each trial asks for {want:g} {name}s but the Ray cluster has {have:g}; "
                                f"lower {flag}")
        return gpus

    # ------------------------------------------------------------ driver side
    def run(self, jobs: Iterable, on_event: EventCallback | None = None,
            cancel: CancelToken | None = None) -> Iterator:
        """Submit every job, yield their records as they finish; `cancel` is polled at each poll of the cluster."""
        import ray

        jobs = list(jobs)
        if not jobs:  # a resume with every trial done
            return
        if not ray.is_initialized():  # shut down since we were made: join again
            self.started = self._connect(ray) or self.started
        yield from _RaySubmission(ray, self, on_event, cancel).run(jobs)


class _RaySubmission:
    """One `RayExecutor.run`: the trials in flight, their attempts, and the event box they report to."""

    def __init__(self, ray, executor: RayExecutor, on_event: EventCallback | None, cancel: CancelToken | None):
        self.ray, self.executor, self.on_event, self.cancel = ray, executor, on_event, cancel
        self.remote, box_cls = _ray_remotes(ray)
        self.box = _make_box(ray, box_cls)
        # retries are ours (logged, dead attempts' runs cleaned), so Ray's are off
        self.options = {"num_cpus": executor.cpus_per_trial, "num_gpus": executor.gpus_per_trial, "max_retries": 0}
        self.threads = max(1, int(executor.cpus_per_trial))
        self.attempts: dict[str, int] = {}
        self.pending: dict = {}

    def submit(self, job) -> None:
        self.pending[self.remote.options(**self.options).remote(job, self.box, self.threads)] = job

    def run(self, jobs: list) -> Iterator:
        from ray.exceptions import RayError

        for job in jobs:
            self.submit(_for_resources(job, self.executor.gpus_per_trial))
        try:
            while self.pending:
                check_cancel(self.cancel)
                ready, _ = self.ray.wait(list(self.pending), num_returns=len(self.pending),
                                         timeout=self.executor.poll_interval)
                _drain(self.ray, self.box, self.on_event)
                for ref in ready:
                    record = self.collect(ref, self.pending.pop(ref))
                    if record is not None:
                        yield record
        except BaseException:  # a cancel, Ctrl-C or the caller closing us: stop the cluster's work too
            self.stop_pending()
            raise
        finally:
            try:
                _drain(self.ray, self.box, self.on_event)
                self.ray.kill(self.box)
            except RayError as exc:  # the cluster or the box is gone: nothing left to drain
                self.warn(f"the trials' last events were lost ({type(exc).__name__}: {_first_line(exc)})")

    def collect(self, ref, job):
        """The record of a finished task; None when its worker died and the trial was submitted again."""
        from ray.exceptions import RayError, RayTaskError

        try:
            return self.ray.get(ref)
        except RayTaskError as exc:  # the trial's own code raised past execute_trial: no retry
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            return _failed(job, f"{type(cause).__name__}: {cause}", self.on_event,
                           record=isinstance(cause, Exception))  # an interrupt ended its child KILLED
        except RayError as exc:
            if not _system_failure(exc):
                return _failed(job, f"{type(exc).__name__}: {_first_line(exc)}", self.on_event, record=True)
            return self.retry(job, exc)

    def retry(self, job, exc: BaseException):
        """A trial whose worker died: submitted again (None), or FAILED after `max_retries` attempts."""
        _end_stale_children(job)
        tries = self.attempts.get(job.trial.key, 0)
        reason = f"its Ray worker died ({type(exc).__name__})"
        if tries >= self.executor.max_retries:
            return _failed(job, f"{reason}; gave up after {tries + 1} attempts", self.on_event)
        self.attempts[job.trial.key] = tries + 1
        self.warn(f"trial {job.index + 1}/{job.total} ({job.trial.name}): {reason}; retry {tries + 1} of "
                  f"{self.executor.max_retries}")
        self.submit(job)
        return None

    def stop_pending(self) -> None:
        """Cancel the tasks still in flight and end their children KILLED; what fails here a resume marks later."""
        from mlflow.exceptions import MlflowException
        from ray.exceptions import RayError

        try:
            for ref in self.pending:
                self.ray.cancel(ref, force=True)
            for job in self.pending.values():
                _end_stale_children(job)
        except (RayError, MlflowException, TrackingError, OSError) as exc:
            self.warn(f"could not stop every running trial ({type(exc).__name__}: {_first_line(exc)}); a resume "
                      "marks what is left KILLED")

    def warn(self, message: str) -> None:
        emit(self.on_event, LogLine(message=message, level="warning"))


def _for_resources(job, gpus: float):
    """Fit the trial's device to what Ray gives it: CPU without GPUs, Ray's own GPU (cuda) with them."""
    device = str(job.config.get("device", "auto"))
    if gpus == 0 and device == "auto":
        device = "cpu"
    elif gpus > 0 and device.startswith("cuda:"):  # Ray sets CUDA_VISIBLE_DEVICES to the GPUs it assigned
        device = "cuda"
    if device == job.config.get("device"):
        return job
    return dataclasses.replace(job, config={**job.config, "device": device})


def _system_failure(exc: BaseException) -> bool:
    """A dead worker, node or object: worth running the trial again."""
    import ray.exceptions as rex

    names = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError",
             "OutOfMemoryError", "RaySystemError", "OwnerDiedError")
    return isinstance(exc, tuple(getattr(rex, n) for n in names if hasattr(rex, n)))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _failed(job, message: str, on_event: EventCallback | None, record: bool = False):
    """The record (and event) of a trial whose worker never reported back.

    With `record`, the store gets it too: the child run the worker left RUNNING, or a new one
    if it failed before starting one, ends FAILED with the error tag, so `show`, the TUI and a
    resume (`--retry-failed`) see the failure and why. A worker that died is not recorded so:
    its child is KILLED (`_end_stale_children`) and a resume runs the trial again.
    """
    child = _record_failure(job, message) if record else ""
    emit(on_event, TrialFinished(trial=job.index, trials=job.total, status=names.FAILED, params=job.trial.tags(),
                                 message=message, child_run_id=child, name=job.run_name))
    return TrialRecord(job.trial.key, job.trial.tags(), names.FAILED, {}, child, message)


def _record_failure(job, message: str) -> str:
    """End the trial's RUNNING child FAILED with `message` as its error tag (start one if there is none)."""
    track = tracker(job.tracking_uri, job.workdir)
    children = [run.info.run_id for run in _running_children(track, job)]
    if not children:
        children = [track.start_run(job.experiment, job.run_name, trial_run_tags(job), parent_id=job.parent_id)]
    for run_id in children:
        track.set_tags(run_id, {names.ERROR: message})
        track.end_run(run_id, names.FAILED)
    return children[-1]


def _running_children(track, job) -> list:
    experiment_id = track.get_run(job.parent_id).info.experiment_id
    query = (f"tags.`{names.PARENT}` = '{job.parent_id}' and tags.`{names.TRIAL_KEY}` = '{job.trial.key}' "
             f"and attributes.status = '{names.RUNNING}'")
    return track.search([experiment_id], query)


def _end_stale_children(job) -> None:
    """End KILLED the child runs a dead attempt left RUNNING, so only a finished retry counts."""
    track = tracker(job.tracking_uri, job.workdir)
    for run in _running_children(track, job):
        track.set_tags(run.info.run_id, {names.ERROR: "its Ray worker died"})
        track.end_run(run.info.run_id, names.KILLED)


def _drain(ray, box, on_event: EventCallback | None) -> None:
    for event in ray.get(box.drain.remote()):
        emit(on_event, event)


class _EventBox:
    """A Ray actor holding the events workers push until the driver drains them."""

    def __init__(self):
        self.events: list = []

    def push(self, event) -> None:
        self.events.append(event)

    def drain(self) -> list:
        events, self.events = self.events, []
        return events

    def ping(self) -> bool:
        return True


def _make_box(ray, box_cls):
    """The event box, pinned to the driver's node so events travel once and die with the driver."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    return box_cls.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True)).remote()


_REMOTES: dict = {}


def _ray_remotes(ray):
    """The Ray task and actor, made on first use (this module imports without Ray)."""
    if not _REMOTES:
        _REMOTES["task"] = ray.remote(_ray_trial)
        _REMOTES["box"] = ray.remote(_EventBox)
    return _REMOTES["task"], _REMOTES["box"]


# ------------------------------------------------------------ worker side
def _ray_trial(job, box, threads: int):
    """A Ray task: run one trial as the driver would, from its working directory, events to the box.

    No cancel token here: the driver stops a task by `ray.cancel(force=True)`, which ends its worker."""
    import ray

    if os.path.isdir(job.workdir):  # relative data paths and the default store resolve as in the driver
        os.chdir(job.workdir)
    _check_store_reachable(job)
    torch.set_num_threads(threads)
    try:
        return execute_trial(job, box.push.remote)
    finally:
        ray.get(box.ping.remote())  # actor calls run in order: every event is in the box before we return


def _check_store_reachable(job) -> None:
    """A SQLite store lives on the driver's disk: on another node, fail the trial with the fix, not a new store."""
    uri = job.tracking_uri
    if uri.startswith("sqlite:///") and not os.path.exists(uri[len("sqlite:///"):]):
        raise TrackingError(f"the tracking store {uri} is not on Ray node {socket.gethostname()}; on a cluster, "
                            "start `mlflow server` and pass --tracking-uri http://HOST:PORT")


EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}


def make_executor(name: str = "local", **options):
    if name not in EXECUTORS:
        raise UnknownNameError("executor", name, EXECUTORS)
    return EXECUTORS[name](**options)
