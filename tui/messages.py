"""What thread workers hand back to the UI: one typed Message per result, and the one handler for failures.

Why messages: `post_message` is thread-safe, and a screen handles its results in
`on_<message>` methods on the UI thread, like any other event; a screen that has
gone away just never reads them. Why one error handler: a worker lets its error
raise, and `WorkerErrors.on_worker_state_changed` reports it, the same way everywhere.
"""
from __future__ import annotations

from typing import Any

from textual.message import Message
from textual.worker import Worker, WorkerState


class Loaded(Message, bubble=False):
    """A worker's result; the subclasses say which (their handler is on_<snake_case_name>)."""


class RunsLoaded(Loaded):
    def __init__(self, runs: list[Any]) -> None:
        super().__init__()
        self.runs = runs  # engine.api.RunInfo, newest first


class ProgressPolled(Loaded):
    def __init__(self, runs: list[Any], now: float) -> None:
        super().__init__()
        self.runs = runs  # engine.api.RunProgress, live ones first
        self.now = now


class EstimateReady(Loaded):
    def __init__(self, run_id: str, seconds: float | None) -> None:
        super().__init__()
        self.run_id, self.seconds = run_id, seconds  # a run's estimated seconds (its preview), None if none


class RunLoaded(Loaded):
    def __init__(self, run: Any) -> None:
        super().__init__()
        self.run = run  # one engine.api.RunInfo


class DetailLoaded(Loaded):
    def __init__(self, detail: Any, live: dict[int, Any], seen: dict[str, list] | None = None) -> None:
        super().__init__()
        self.detail = detail  # engine.api.RunDetail
        self.live = live  # engine.api.live_curves
        self.seen = seen  # engine.api.samples_seen_curves, for the dynamic and online kinds


class HistoryLoaded(Loaded):
    def __init__(self, name: str, history: dict[str, list[tuple[int, float]]]) -> None:
        super().__init__()
        self.name = name
        self.history = history


class DetailsLoaded(Loaded):
    """Several runs' details, for compare."""

    def __init__(self, details: list[Any]) -> None:
        super().__init__()
        self.details = details


class BenchmarkLoaded(Loaded):
    def __init__(self, report: dict[str, Any] | None) -> None:
        super().__init__()
        self.report = report  # a benchmark run's benchmark.json, None when it has none (yet)


class ScoresListed(Loaded):
    """A run's score names, its logged overlap matrices per k, and how many samples the scores cover."""

    def __init__(self, names: list[str], logged: dict[int, dict[str, Any]], n: int) -> None:
        super().__init__()
        self.names, self.logged, self.n = names, logged, n


class OverlapComputed(Loaded):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__()
        self.result = result


class SamplesLoaded(Loaded):
    def __init__(self, names: list[str], samples: Any) -> None:
        super().__init__()
        self.names = names
        self.samples = samples  # tui.backend.SampleSet, None when the run has no scores


class TilesRanked(Loaded):
    def __init__(self, tiles: list[Any]) -> None:
        super().__init__()
        self.tiles = tiles


class SchemaLoaded(Loaded):
    def __init__(self, specs: list[Any], presets: list[str], start: str | None, values: dict[str, Any],
                 kinds: dict[str, list[str]] | None = None) -> None:
        super().__init__()
        self.specs, self.presets, self.start, self.values = specs, presets, start, values
        self.kinds = kinds or {}  # kind -> the registered sections it reads (engine.api.kind_sections)


class PresetLoaded(Loaded):
    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__()
        self.values = values


class ConfigValidated(Loaded):
    def __init__(self, config: Any, error: str | None, sections: list[str] | None = None) -> None:
        super().__init__()
        self.config = config  # an engine Config, None when invalid
        self.error = error  # the validator's one-line message
        self.sections = sections  # the registered sections its kind reads (a plugin's kind too), when valid


class PreviewReady(Loaded):
    def __init__(self, key: str, preview: Any, error: str | None = None) -> None:
        super().__init__()
        self.key = key  # which config it previews (its JSON), so a stale one is not shown
        self.preview = preview  # an engine.api.Preview, None when it failed
        self.error = error


class LaunchAsked(Loaded):
    """The launch worker counted more trials than a launch goes ahead with unasked."""

    def __init__(self, config: Any, trials: int) -> None:
        super().__init__()
        self.config, self.trials = config, trials


class RunLaunched(Loaded):
    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__()
        self.info = info  # engine.api.launch_detached's {"run_id", "pid", ...}


class CancelSent(Loaded):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message  # what happened, in words


def error_text(worker: Worker) -> str:
    """What failed (the worker's description) and why, on one line."""
    error = worker.error
    why = str(error) or type(error).__name__
    return f"{worker.description}: {why}" if worker.description else why


class WorkerErrors:
    """Mixed into the app and every screen: the one place a failed worker is reported.

    A notice says what failed; the same failure again (a timer retrying a store that
    is down) does not pile up notices until that group succeeds once. `worker_failed`
    lets a screen also show the error in place (a status line).
    """

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        failing: dict[str, str] = self.__dict__.setdefault("_failing", {})
        if event.state is WorkerState.SUCCESS:
            failing.pop(worker.group, None)
        if event.state is not WorkerState.ERROR:
            return
        text = error_text(worker)
        if failing.get(worker.group) != text:
            failing[worker.group] = text
            self.app.notify(text, severity="error", timeout=8, markup=False)
        self.worker_failed(worker)

    def worker_failed(self, worker: Worker) -> None:
        """Show a failed worker's error in place too (besides the notice); nothing by default."""
