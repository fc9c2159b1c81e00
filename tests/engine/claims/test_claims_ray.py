"""docs/guide/ray.md's claim from the command line: `prunelab run --resume RUN_ID --executor ray`, with no Ray
running, starts its own local Ray instance, runs only the missing trials on its workers, and stops it again.

One test covers both claims (Ray's start-up is the cost): a run interrupted after its first trial, resumed
by the CLI in a fresh process with no RAY_ADDRESS. `import ray` fails the test where ray is missing (a dev
dependency), it never skips.
"""
import json
import os
import subprocess
import sys

import pytest

import engine
from engine.names import TRIAL_KEY
from engine.store.events import TrialFinished
from engine.store.tracking import tracker
from tests.polling import wait_until


@pytest.mark.slow
def test_cli_resume_on_its_own_local_ray_runs_only_the_missing_trials(in_tmp):
    import ray  # noqa: F401  (installed with '.[dev]')

    cfg = engine.load_config("quick", {"name": "ray-cli", "model": "mlp", "data.train_size": 600,
                                       "data.test_size": 200, "train.epochs": 1, "sweep.methods": ["random"],
                                       "sweep.keep_ratios": [0.5], "sweep.seeds": [0, 1], "sweep.full_data": False})

    def interrupt_after_the_first_trial(event):
        if isinstance(event, TrialFinished):
            raise KeyboardInterrupt  # as Ctrl-C: the run ends KILLED with one trial done

    with pytest.raises(KeyboardInterrupt):
        engine.run(cfg, on_event=interrupt_after_the_first_trial)
    track = tracker(None, str(in_tmp))
    (parent,) = track.client.search_runs([track.client.get_experiment_by_name("ray-cli").experiment_id],
                                         "tags.`prunelab.role` = 'parent'")
    run_id = parent.info.run_id
    assert parent.info.status == "KILLED"
    (first,) = track.children(run_id)
    assert first.info.status == "FINISHED"

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # no address: prunelab starts Ray
    env.update(RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", "--resume", run_id, "--executor", "ray",
                             "--json"], cwd=in_tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    result = json.loads(out)
    assert result["status"] == "FINISHED" and result["run_id"] == run_id

    children = track.children(run_id)
    assert sorted(c.data.tags["seed"] for c in children) == ["0", "1"]  # each trial once
    assert all(c.info.status == "FINISHED" for c in children)
    assert len({c.data.tags[TRIAL_KEY] for c in children}) == 2
    resumed = [c for c in children if c.info.run_id != first.info.run_id]
    assert len(resumed) == 1  # only the missing one ran, and the finished one was kept
    pids = {c.data.tags["prunelab.pid"] for c in resumed}
    assert pids and not pids & {str(proc.pid), str(os.getpid())}  # in Ray's workers, not in the CLI's process
    assert track.get_run(run_id).info.status == "FINISHED"
    # the local instance it started is stopped with it: its worker processes are gone
    wait_until(lambda: not [p for p in pids if os.path.exists(f"/proc/{p}")], timeout=30, what="Ray's workers to exit")
