"""engine/cli/common.py: the plain progress lines a log file gets when stderr is not a terminal (issue 26, item 3)."""
import io
import re

from engine.cli.common import PlainProgress, ProgressBars, duration
from engine.store import events as ev
from tests.builders import as_set_args, cli, tiny_run


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def plain(every: float = 10.0, heartbeat: float = 30.0) -> tuple[PlainProgress, Clock, io.StringIO]:
    clock, out = Clock(), io.StringIO()
    return PlainProgress(out, every=every, heartbeat=heartbeat, clock=clock), clock, out


def test_duration_reads_at_a_glance():
    assert [duration(s) for s in (0, 4.4, 59.6, 65, 3599, 3600, 7325)] == \
        ["0 s", "4 s", "1 min 00 s", "1 min 05 s", "59 min 59 s", "1 h 00 min", "2 h 02 min"]


def test_stages_epochs_and_trials_are_one_line_each_with_elapsed_time_and_eta():
    sink, clock, out = plain()
    sink(ev.RunStarted(run_id="abc", experiment="quick", kind="prune", trials=4, pid=7))
    sink(ev.StageStarted(stage="surrogate", detail="1 x cnn"))
    clock.t += 6
    sink(ev.EpochEnd(epoch=1, epochs=2, metrics={"train_loss": 0.5}))  # 6 s for 1 of 2: eta 6 s
    clock.t += 6
    sink(ev.EpochEnd(epoch=2, epochs=2, metrics={"train_loss": 0.25}))  # within 10 s, but a surrogate's last epoch
    clock.t += 1
    for i in range(3):  # repeats of one stage: the first, then one per 10 s
        sink(ev.StageStarted(stage="selecting", detail=f"{i + 1} of 3"))
        clock.t += 5
    sink(ev.StageStarted(stage="retrain", detail="loss / hardest / keep 0.5 / seed 0 / e2", trial=1, trials=4))
    clock.t += 10
    sink(ev.EpochEnd(epoch=1, epochs=4, metrics={"train_loss": 1.0, "test_accuracy": 0.5}, trial=1))
    clock.t += 1
    sink(ev.EpochEnd(epoch=2, epochs=4, metrics={"train_loss": 0.9}, trial=1))  # 1 s after the last: not shown
    clock.t += 9
    sink(ev.TrialFinished(trial=1, trials=4, status="FINISHED", metrics={"test_accuracy": 0.875},
                          name="loss / hardest / keep 0.5 / seed 0 / e2"))
    sink(ev.TrialFinished(trial=2, trials=4, status="FAILED", message="out of memory", name="x"))
    lines = out.getvalue().splitlines()
    assert lines == [
        "[0 s] run abc (prune quick): 4 trials, pid 7",
        "[0 s] surrogate 1 x cnn",
        "[6 s] surrogate · epoch 1/2, train loss 0.5000, eta 6 s",
        "[12 s] surrogate · epoch 2/2, train loss 0.2500",
        "[13 s] selecting 1 of 3",
        "[23 s] selecting 3 of 3",
        # 10 s for a quarter of trial 2 of 4: the trial's eta 30 s; the run's 10 s for 1/16 of it: 150 s
        ("[38 s] trial 2/4 loss / hardest / keep 0.5 / seed 0 / e2 · epoch 1/4, train loss 1.0000, test acc 50.00%, "
         "eta 30 s · run eta 2 min 30 s"),
        "[48 s] trial 1/4 done: loss / hardest / keep 0.5 / seed 0 / e2 87.50% · run eta 1 min 00 s",
        "[48 s] trial 2/4 done: x FAILED (out of memory) · run eta 20 s",
    ]


def test_a_studys_parts_count_against_the_runs_trials():
    """A study's parts number their trials (and their totals) on their own: the lines count the run's."""
    sink, clock, out = plain()
    sink(ev.RunStarted(run_id="abc", experiment="seed", kind="study", trials=5, pid=7))
    for part, total in (("prune", 3), ("epochs", 2)):
        for trial in range(total):
            sink(ev.StageStarted(stage="retrain", detail=f"{part} {trial}", trial=trial, trials=total))
            clock.t += 1
            sink(ev.TrialFinished(trial=trial, trials=total, status="FINISHED", metrics={"test_accuracy": 0.5},
                                  name=f"{part} {trial}"))
    done = [line.split(" done:")[0].split("] ")[1] for line in out.getvalue().splitlines() if " done:" in line]
    assert done == ["trial 1/5", "trial 2/5", "trial 3/5", "trial 4/5", "trial 5/5"]
    bars = ProgressBars(enabled=False)
    bars(ev.RunStarted(run_id="abc", experiment="seed", kind="study", trials=5, pid=7))
    bars(ev.TrialFinished(trial=0, trials=2, status="FINISHED", metrics={}, name="epochs 0"))
    assert bars.task("trials").total == 5


def test_a_long_epoch_gets_a_heartbeat_and_no_line_holds_a_control_character():
    sink, clock, out = plain(heartbeat=30)
    sink(ev.StageStarted(stage="retrain", detail="full-data / seed 0", trial=0, trials=1))
    for batch in range(1, 61):  # one batch a second: a line 30 s after the last line, not one per batch
        clock.t += 1
        sink(ev.BatchProgress(epoch=1, epochs=1, batch=batch, batches=60, trial=0))
    sink(ev.LogLine(message="\x1b[31mred\r\n"))
    sink(ev.LogLine(message="a warning, on stderr already", level="warning"))
    text = out.getvalue()
    assert text.splitlines() == ["[30 s] trial 1/1 full-data / seed 0 · epoch 1/1 batch 30/60",
                                 "[1 min 00 s] trial 1/1 full-data / seed 0 · epoch 1/1 batch 60/60",
                                 "[1 min 00 s]  [31mred "]
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", text)


def test_progress_bars_hand_events_to_plain_lines_when_stderr_is_not_a_terminal():
    assert ProgressBars().plain is not None  # under pytest stderr is captured: not a terminal
    assert ProgressBars(enabled=False).plain is None  # asked for nothing: nothing


def test_a_run_with_stderr_in_a_file_logs_stages_trials_and_epochs(in_tmp):
    overrides = tiny_run(**{"sweep.methods": ["loss"], "sweep.keep_ratios": [0.5], "sweep.seeds": [0]})
    result = cli(["run", "--preset", "quick", *as_set_args(overrides)])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert re.fullmatch(r"\[\d+ s\] run [0-9a-f]{32} \(prune quick\): 2 trials, pid \d+", lines[0]), lines
    assert any(re.fullmatch(r"\[\d+ s\] surrogate 1 x mlp, 1 epochs, scores at epochs 1", line) for line in lines)
    done = [line for line in lines if " done: " in line]
    assert len(done) == 2 and re.search(r" · run eta \d+ s$", done[0]) and "eta" not in done[1], done
    assert re.search(r"trial 2/2 done: loss / hardest / keep 0.5 / seed 0 / e1 \d+\.\d\d%$", done[1]), done
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", result.stderr)
