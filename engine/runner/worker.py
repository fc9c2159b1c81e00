"""The worker side of a trial: run its task and log its child run from start to end, in any process."""
from __future__ import annotations

import os
import socket
import traceback

from .. import names
from ..cancel import CancelToken
from ..config import config_from_dict
from ..errors import PrunelabError
from ..store.events import EventCallback, StageStarted, TrialFinished, emit
from ..store.runs import TrialRecord
from ..store.tracking import TrackingError, tracker
from .tasks import TRIAL_TASKS
from .trials import TrialJob


def trial_run_tags(job: TrialJob) -> dict:
    """The tags that make a child run a trial's: its role, kind, key and grid cell."""
    return {names.ROLE: names.TRIAL_ROLE, names.KIND: job.config.get("kind"), names.TRIAL_KEY: job.trial.key,
            **job.trial.tags()}


def execute_trial(job: TrialJob, on_event: EventCallback | None = None,
                  cancel: CancelToken | None = None) -> TrialRecord:
    """Run the job's task and log its child run, start to end. Runs in any process (a Ray worker too).

    A trial that fails (a PrunelabError such as a diverged loss, or a bug) ends FAILED with
    its reason and the sweep goes on; a cancel (`cancel`, polled by the task's training)
    or Ctrl-C ends it KILLED and propagates.
    """
    config = config_from_dict(job.config)  # imports the config's plugins here first
    trial = job.trial
    track = tracker(job.tracking_uri, job.workdir)
    tags = {**trial_run_tags(job), names.HOST: socket.gethostname(), names.PID: os.getpid()}  # where it ran
    name = job.run_name
    child = track.start_run(job.experiment, name, tags, parent_id=job.parent_id)
    emit(on_event, StageStarted(stage=job.task, detail=name, trial=job.index, trials=job.total))
    status, message, metrics = names.FINISHED, "", {}
    try:
        metrics = TRIAL_TASKS[job.task](job, config, track, child, on_event, cancel)
    except TrackingError:  # the store cannot be used (full, locked, gone): the run ends, not only this trial
        raise
    except PrunelabError as exc:
        status, message = names.FAILED, str(exc) or type(exc).__name__  # never FAILED without a reason
    except KeyboardInterrupt:
        track.set_tags(child, {names.ERROR: "interrupted"})
        track.end_run(child, names.KILLED)
        raise
    except Exception as exc:  # noqa: BLE001  (a bug in one trial must not sink the sweep; the message says what)
        status, message = names.FAILED, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        track.set_tags(child, {names.TRACEBACK: traceback.format_exc()[-4000:]})
    if message:
        track.set_tags(child, {names.ERROR: message})
    track.end_run(child, status)
    record = TrialRecord(trial.key, trial.tags(), status, metrics, child, message)
    emit(on_event, TrialFinished(trial=job.index, trials=job.total, status=status, params=trial.tags(),
                                 metrics=metrics, message=message, child_run_id=child, name=name))
    return record
